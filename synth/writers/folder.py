"""Plain folder format: ``images/NNNNNNNN.jpg`` + ``masks/NNNNNNNN.png`` (one pair per sample).

Images are RGB JPEG at a fixed quality (:data:`synth.writers.encoding.JPEG_QUALITY`); masks are
single-channel PNG holding the label values themselves (0 background, 1 key, 255 ignore band), so
``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` gives the training target directly. Each file is
written to a temporary name and ``os.replace``'d.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from keysynth.common import atomic_write_bytes
from synth.writers.base import SampleWriter, make_record
from synth.writers.encoding import encode_jpeg, encode_png

__all__ = ["FolderWriter", "image_path", "mask_path"]


def image_path(out_dir: Path, index: int) -> Path:
    """``out_dir/images/NNNNNNNN.jpg`` (8-digit zero-padded index)."""
    return Path(out_dir) / "images" / f"{index:08d}.jpg"


def mask_path(out_dir: Path, index: int) -> Path:
    """``out_dir/masks/NNNNNNNN.png`` (8-digit zero-padded index)."""
    return Path(out_dir) / "masks" / f"{index:08d}.png"


class FolderWriter(SampleWriter):
    """``images/`` + ``masks/`` folders; with ``coco=True`` also ``annotations.json``.

    Args: see :class:`synth.writers.base.SampleWriter` (``chunk_size`` default 32 samples).
    """

    name = "folder"

    def write_chunk(self, out_dir: Path, tmp_dir: Path, chunk_id: int, samples: Iterable[tuple[int, dict]]) -> list[dict]:
        out_dir = Path(out_dir)
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        (out_dir / "masks").mkdir(parents=True, exist_ok=True)
        records = []
        for index, sample in samples:
            atomic_write_bytes(image_path(out_dir, index), encode_jpeg(sample["image"]), tmp_dir)
            atomic_write_bytes(mask_path(out_dir, index), encode_png(sample["mask"]), tmp_dir)
            records.append(make_record(index, sample, coco=self.coco, coco_segmentation=self.coco_segmentation))
        return records

    def outputs_exist(self, out_dir: Path, chunk_id: int, indices: range) -> bool:
        return all(image_path(out_dir, i).is_file() and mask_path(out_dir, i).is_file() for i in indices)

    def chunk_files(self, out_dir: Path, chunk_id: int, indices: range) -> list[Path]:
        return [p for i in indices for p in (image_path(out_dir, i), mask_path(out_dir, i))]
