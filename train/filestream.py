"""Follow a directory that an external generator keeps refreshing (``keysynth synth`` output).

Layouts read (both may be present at once):

- folders: ``images/KEY.jpg`` (or .png) + ``masks/KEY.png`` (values 0/1, 255 = ignore) (+ ``meta.jsonl``);
- WebDataset shards ``shard-NNNNNN.tar`` with members ``KEY.jpg``, ``KEY.png`` (mask 0/1), ``KEY.json``.

Only complete samples are used: a folder sample needs its image AND its mask under final names
(names starting with ``.`` or containing ``.tmp`` are temp files of an atomic write and are
skipped), both files structurally complete (JPEG ends with the EOI marker ``FFD9``, PNG holds its
``IEND`` chunk) and both decodable; a shard is complete when its name is final (writers rename a
finished ``.tmp`` shard) and it opens as a tar. Incomplete samples are skipped silently and
picked up at a later rescan once complete. The directory is rescanned every ``rescan_s`` seconds.

Batches follow the same freshness policy as :class:`train.stream.ShmStream` (least-used samples
first, at most ``max_reuse`` draws while fresh samples exist, then "stalled-reuse"); order depends
on the scan timing, so this stream is reproducible in neither content nor order.
"""

from __future__ import annotations

import os
import re
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from keysynth.common import IMAGE_EXTENSIONS
from train.batches import Batch, ClosingStream, RateStats

__all__ = ["FileStream", "is_temp_name", "decode_complete_image", "scan_folder", "scan_shards"]

SHARD_RE = re.compile(r"^shard-\d+\.tar$")


def is_temp_name(name: str) -> bool:
    """True for temp names of atomic writers: ``.tmp-*``, ``.*`` (hidden), ``*.tmp*``."""
    return name.startswith(".") or ".tmp" in name


def _structurally_complete(data: bytes, ext: str) -> bool:
    ext = ext.lower()
    if ext in (".jpg", ".jpeg"):
        return data[:2] == b"\xff\xd8" and data.rstrip(b"\x00\r\n ")[-2:] == b"\xff\xd9"
    if ext == ".png":
        return data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" in data[-16:]
    return False


def decode_complete_image(data: bytes, ext: str, gray: bool = False) -> np.ndarray | None:
    """Decode JPEG/PNG bytes if the file is complete, else ``None``.

    Returns uint8 RGB (H, W, 3), or (H, W) when ``gray`` (masks are read unchanged, single channel).
    """
    if not _structurally_complete(data, ext):
        return None
    flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if arr is None:
        return None
    return arr if gray else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def scan_folder(root: Path) -> dict[str, tuple[str, str, str]]:
    """``{key: ("file", image_path, mask_path)}`` for pairs with final names (not yet decoded)."""
    img_dir, mask_dir = root / "images", root / "masks"
    if not img_dir.is_dir() or not mask_dir.is_dir():
        return {}
    masks = {Path(n).stem: n for n in os.listdir(mask_dir) if n.endswith(".png") and not is_temp_name(n)}
    out = {}
    for n in os.listdir(img_dir):
        stem, ext = os.path.splitext(n)
        if ext.lower() in IMAGE_EXTENSIONS and not is_temp_name(n) and stem in masks:
            out[f"f:{stem}"] = ("file", str(img_dir / n), str(mask_dir / masks[stem]))
    return out


def scan_shards(root: Path, known: set[str]) -> dict[str, tuple[str, str, str]]:
    """``{key: ("tar", shard_path, key)}`` for complete image+mask pairs in new final-named shards."""
    out = {}
    for n in sorted(os.listdir(root)):
        if not SHARD_RE.match(n) or n in known:
            continue
        path = root / n
        try:
            with tarfile.open(path) as tf:
                names = tf.getnames()
        except (tarfile.TarError, OSError, EOFError):
            continue  # not complete (or not a tar): try again at the next rescan
        known.add(n)
        members = {}
        for m in names:
            key, ext = os.path.splitext(os.path.basename(m))
            members.setdefault(key, set()).add(ext.lower())
        for key, exts in members.items():
            if ".png" in exts and (".jpg" in exts or ".jpeg" in exts):
                out[f"t:{n}:{key}"] = ("tar", str(path), key)
    return out


class FileStream(ClosingStream):
    """Draw batches from a directory that keeps receiving complete samples (see module docstring).

    Args:
        root: directory holding ``images/`` + ``masks/`` and/or ``shard-*.tar``.
        batch_size: B. image_size: side length, px; other sizes are resized (image INTER_AREA,
            mask INTER_NEAREST). max_reuse: freshness limit (0 = unlimited). with_dist: compute
            signed distance maps (surface loss). rescan_s: seconds between directory scans.
        threads: decoding threads. seed: draw-order seed. wait_timeout_s: raise ``TimeoutError``
            when no complete sample shows up in that time.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """

    def __init__(self, root, *, batch_size: int, image_size: int, max_reuse: int = 4, with_dist: bool = False,
                 ignore_index: int = 255, rescan_s: float = 5.0, threads: int = 4, seed: int = 0,
                 wait_timeout_s: float = 600.0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data_dir {self.root} does not exist; run `keysynth synth --out {self.root}` first")
        self.batch_size, self.size, self.max_reuse = int(batch_size), int(image_size), int(max_reuse)
        self.with_dist, self.ignore_index, self.rescan_s = bool(with_dist), int(ignore_index), float(rescan_s)
        self.wait_timeout_s = float(wait_timeout_s)
        self._rng = np.random.default_rng(seed)
        self._entries: dict[str, tuple[str, str, str]] = {}
        self._keys: list[str] = []
        self._uses: dict[str, int] = {}
        self._known_shards: set[str] = set()
        self._last_scan = -1e9
        self._pool = ThreadPoolExecutor(max(1, threads))
        self.stats_ = RateStats()
        self.order = "fresh"

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def rescan(self) -> int:
        """Index new complete-looking samples; returns how many are known."""
        found = scan_folder(self.root)
        found.update(scan_shards(self.root, self._known_shards))
        for k, v in found.items():
            if k not in self._entries:
                self._entries[k] = v
                self._keys.append(k)
                self._uses[k] = 0
        self._last_scan = time.monotonic()
        return len(self._keys)

    def _load(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        kind, a, b = self._entries[key]
        try:
            if kind == "file":
                img_b, mask_b = Path(a).read_bytes(), Path(b).read_bytes()
                img = decode_complete_image(img_b, os.path.splitext(a)[1])
                mask = decode_complete_image(mask_b, ".png", gray=True)
            else:
                with tarfile.open(a) as tf:
                    members = {os.path.splitext(os.path.basename(m.name)): m for m in tf.getmembers()}
                    jpg = members.get((b, ".jpg")) or members.get((b, ".jpeg"))
                    png = members.get((b, ".png"))
                    img = decode_complete_image(tf.extractfile(jpg).read(), ".jpg")
                    mask = decode_complete_image(tf.extractfile(png).read(), ".png", gray=True)
        except (OSError, tarfile.TarError, AttributeError):
            return None
        if img is None or mask is None or img.shape[:2] != mask.shape[:2]:
            return None
        if img.shape[:2] != (self.size, self.size):
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        bad = ~np.isin(mask, (0, 1, self.ignore_index))
        if bad.any():
            raise ValueError(f"{b if kind == 'file' else a + ':' + b}: mask values must be 0/1 (and "
                             f"{self.ignore_index} = ignore), found {np.unique(mask[bad])[:5]}; "
                             f"convert 0/255 masks with mask // 255")
        return img, mask

    def next_batch(self) -> Batch:
        """Decode a batch of complete samples (least-used first; see module docstring)."""
        from train.distmaps import signed_distance_map

        t0 = time.perf_counter()
        deadline = time.monotonic() + self.wait_timeout_s
        chosen: list[tuple[str, np.ndarray, np.ndarray]] = []
        while len(chosen) < self.batch_size:
            if time.monotonic() - self._last_scan > self.rescan_s or not self._keys:
                self.rescan()
            taken = {c[0] for c in chosen}
            live = [k for k in self._keys if k not in taken]
            if not live and chosen:  # fewer complete samples than B: repeat some
                chosen += [chosen[i % len(chosen)] for i in range(self.batch_size - len(chosen))]
                break
            if not live:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no complete sample appeared in {self.root} within {self.wait_timeout_s:.0f} s")
                time.sleep(min(0.2, self.rescan_s))
                self._last_scan = -1e9
                continue
            uses = np.array([self._uses[k] for k in live])
            order = np.lexsort((self._rng.random(len(live)), uses))
            need = self.batch_size - len(chosen)
            cand = [live[i] for i in order[: need + 2]]
            for key, res in zip(cand, self._pool.map(self._load, cand)):
                if res is None:
                    self._entries.pop(key, None)  # incomplete now: a later rescan re-adds it
                    self._keys.remove(key)
                    self._uses.pop(key, None)
                elif len(chosen) < self.batch_size:
                    chosen.append((key, *res))
        keys = [c[0] for c in chosen]
        uses = np.array([self._uses[k] + 1 for k in keys], np.int64)
        for k in keys:
            self._uses[k] += 1
        image = np.stack([c[1] for c in chosen])
        mask = np.stack([c[2] for c in chosen])
        dist = np.stack([signed_distance_map(m, self.ignore_index) for m in mask]) if self.with_dist else None
        index = np.array([zlib_key(k) for k in keys], np.int64)
        out = Batch(image, mask, dist, index, uses, wait_s=time.perf_counter() - t0)
        out.stalled = self.max_reuse > 0 and bool((uses > self.max_reuse).any())
        self.stats_.wait_s += out.wait_s
        self.stats_.consumed += len(keys)
        self.stats_.distinct += int((uses == 1).sum())
        self.stats_.stalled_batches += int(out.stalled)
        self.last_keys = keys
        return out

    def stats(self) -> dict[str, float]:
        out = self.stats_.window(len(self._keys))
        out["ready"] = len(self._keys)
        return out

    def state_dict(self) -> dict:
        return {"order": "fresh", "position": 0, "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore the draw rng of a :meth:`state_dict`."""
        if state and state.get("rng"):
            self._rng.bit_generator.state = state["rng"]


def zlib_key(key: str) -> int:
    """Stable int id of a sample key (crc32), used as ``Batch.index`` for file samples."""
    import zlib

    return zlib.crc32(key.encode())

