"""WebDataset tar shards: ``shard-NNNNNN.tar`` holding ``KEY.jpg``, ``KEY.png``, ``KEY.json``.

``KEY`` is the 8-digit sample index; ``.jpg`` the RGB image (JPEG, fixed quality), ``.png`` the
mask (label values 0/1/255), ``.json`` the sample meta. Shard ``k`` holds exactly the indices
``[k * S, (k + 1) * S)`` (``S`` = shard size), so a shard is the unit of work and of resume.

Written with the standard library's ``tarfile`` (USTAR, mtime 0, uid/gid 0, mode 0444, fixed
member order), not ``webdataset.TarWriter``: importing ``webdataset`` pulls in ``torch``, which
the ``synth`` package must never load, and the fixed header fields make every shard
byte-identical across worker counts and backends. Readers: ``webdataset.WebDataset(urls)``,
``tarfile``, or ``train/filestream.py``. Each shard is written to a temporary name and renamed
(``os.replace``) only once complete.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterable

import numpy as np

from keysynth.common import atomic_open
from synth.writers.base import SampleWriter, make_record
from synth.writers.encoding import encode_jpeg, encode_json, encode_png

__all__ = ["WebDatasetWriter", "shard_path", "shard_pattern"]


def shard_path(out_dir: Path, shard: int) -> Path:
    """``out_dir/shard-NNNNNN.tar`` (6-digit zero-padded shard number)."""
    return Path(out_dir) / f"shard-{shard:06d}.tar"


def shard_pattern(n_shards: int) -> str:
    """Brace pattern for WebDataset URLs, e.g. ``shard-{000000..000009}.tar``."""
    return f"shard-{{000000..{n_shards - 1:06d}}}.tar"


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = "keysynth"
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


class WebDatasetWriter(SampleWriter):
    """WebDataset shards of ``shard_size`` samples each (the chunk size is the shard size).

    Args:
        shard_size: samples per shard (int >= 1, default 1000).
        chunk_size: ignored (the shard is the chunk); accepted for a uniform constructor.
        coco: must be False (COCO JSON needs image files; use ``--format coco``).
    """

    name = "webdataset"

    def __init__(self, *, shard_size: int = 1000, chunk_size: int | None = None, coco: bool = False, coco_segmentation: str = "polygon") -> None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
            raise ValueError(f"--shard-size must be an integer >= 1 (samples per shard), got {shard_size!r}")
        if coco:
            raise ValueError("COCO annotations are written with image files: use --format coco (or folder --coco), not webdataset")
        super().__init__(chunk_size=int(shard_size), coco=False, coco_segmentation=coco_segmentation)

    def params(self) -> dict:
        return {"format": self.name, "shard_size": self.chunk_size}

    def write_chunk(self, out_dir: Path, tmp_dir: Path, chunk_id: int, samples: Iterable[tuple[int, dict]]) -> list[dict]:
        records = []
        with atomic_open(shard_path(out_dir, chunk_id), tmp_dir) as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for index, sample in samples:
                    key = f"{index:08d}"
                    _add_member(tar, key + ".jpg", encode_jpeg(sample["image"]))
                    _add_member(tar, key + ".png", encode_png(sample["mask"]))
                    _add_member(tar, key + ".json", encode_json(sample["meta"]))
                    records.append(make_record(index, sample, coco=False, coco_segmentation=self.coco_segmentation))
        return records

    def outputs_exist(self, out_dir: Path, chunk_id: int, indices: range) -> bool:
        return shard_path(out_dir, chunk_id).is_file()

    def chunk_files(self, out_dir: Path, chunk_id: int, indices: range) -> list[Path]:
        return [shard_path(out_dir, chunk_id)]

    def finalize(self, out_dir: Path, tmp_dir: Path, records, n: int) -> list[str]:
        n_shards = -(-n // self.chunk_size)
        return [shard_pattern(n_shards)]
