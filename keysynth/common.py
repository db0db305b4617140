"""Small helpers every keysynth package may import (a leaf module: it imports no other package
module): seed derivation, atomic file writes and the image file extensions keysynth reads.

Seeds: :func:`derive_seed` (a 63-bit int) and :func:`seed_rng` (a generator) from a seed and tags,
both through ``np.random.SeedSequence`` (NumPy's hash-based entropy mixing: distinct tuples give
independent streams); strings are tags by their crc32. The per-sample streams of the renderer
build on them (:mod:`synth.seeding`).

Atomic writes: every output file is written to a temporary name, then ``os.replace``'d.
A reader (or a resumed run) therefore sees either the complete old file, the complete new file or
no file, never half a file. Temporary files live in one folder per output run (``.keysynth/tmp``
inside the output folder, same file system as the outputs, so ``os.replace`` is an atomic rename),
which lets a resumed run delete the leftovers of a killed run in one place.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

__all__ = ["derive_seed", "seed_rng", "atomic_write_bytes", "atomic_write_text", "atomic_open", "clean_tmp_dir",
           "TMP_PREFIX", "IMAGE_EXTENSIONS", "CUTOUT_INDEX"]

TMP_PREFIX = ".tmp-"
_MASK63 = 2**63 - 1


def _words(seed: int, tags) -> list[int]:
    return [int(seed)] + [zlib.crc32(t.encode()) if isinstance(t, str) else int(t) for t in tags]


def _entropy(values: list[int]) -> np.ndarray:
    """Non-negative ints -> the uint32 words ``SeedSequence(values)`` makes of them (each int split
    little-endian into 32-bit words, at least one). ``SeedSequence(_entropy(v))`` has the same
    state as ``SeedSequence(v)`` without coercing a list of Python ints (an ``np.errstate`` per call)."""
    words = []
    for v in values:
        v = int(v)
        while True:
            words.append(v & 0xFFFFFFFF)
            v >>= 32
            if not v:
                break
    return np.array(words, np.uint32)


def derive_seed(seed: int, *tags: int | str) -> int:
    """Seed in [0, 2**63) from ``(seed, *tags)``: ``SeedSequence([seed, *tags])``, two 32-bit words
    joined (strings as crc32). Non-negative ints only."""
    hi, lo = np.random.SeedSequence(_entropy(_words(seed, tags))).generate_state(2, dtype=np.uint32)
    return ((int(hi) & 0x7FFFFFFF) << 32) | int(lo)


def seed_rng(seed: int, *tags: int | str) -> np.random.Generator:
    """``np.random.default_rng(SeedSequence([seed mod 2**63, *tags]))`` (strings as crc32): an
    independent generator per tuple, e.g. the geometry of one asset or one real-photo crop."""
    return np.random.default_rng(np.random.SeedSequence(_words(int(seed) & _MASK63, tags)))


#: provenance index of a cut-out folder: one JSON object per line (``file``, ``source``,
#: ``source_hash``, ``box``, ``area``, ``truncated``), written by ``keysynth cutouts``
CUTOUT_INDEX = "cutouts.jsonl"
#: image files keysynth reads (photos, backgrounds, cut-outs, datasets): every format OpenCV decodes
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> Iterator[BinaryIO]:
    """Open a binary file for writing that appears at ``path`` only when the block ends cleanly.

    The data go to ``tmp_dir`` (default: the folder of ``path``) under a unique ``.tmp-*`` name, are
    flushed, then renamed onto ``path`` with ``os.replace`` (atomic on POSIX within one file
    system). On an exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: final file path.
        tmp_dir: folder for the temporary file; must be on the same file system as ``path``.
    """
    path = Path(path)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    # O_EXCL with a unique name (like mkstemp) but mode 0o666 & ~umask, so outputs get the usual
    # permissions instead of mkstemp's 0o600.
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, tmp_dir: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temporary name + ``os.replace``); see :func:`atomic_open`."""
    with atomic_open(path, tmp_dir) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, tmp_dir: str | os.PathLike | None = None) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically; see :func:`atomic_open`."""
    atomic_write_bytes(path, text.encode("utf-8"), tmp_dir)


def clean_tmp_dir(tmp_dir: str | os.PathLike) -> int:
    """Delete leftover ``.tmp-*`` files of killed writers in ``tmp_dir``; returns how many were removed.

    Call only while no writer of this output folder is running (start and end of a run).
    """
    folder = Path(tmp_dir)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(folder):
        if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed
