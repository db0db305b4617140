"""The writer protocol shared by every output format.

A run of ``n`` samples is cut into chunks of consecutive indices ``[k * size, (k + 1) * size)``.
A worker renders one chunk and hands it to :meth:`SampleWriter.write_chunk`, which writes the
chunk's files atomically and returns one small JSON-serialisable *record* per sample (meta, image
size, COCO annotations). The driver (:mod:`synth.generate`) stores those records in the chunk's
done-marker, with the size and SHA-256 of every file :meth:`SampleWriter.chunk_files` lists, and, when every chunk is done, passes them in index order to
:meth:`SampleWriter.finalize` (e.g. to write ``annotations.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

__all__ = ["SampleWriter", "COCO_SEGMENTATIONS", "make_record"]

#: valid ``coco_segmentation`` values: polygons (RLE fallback for masks with holes) or RLE only.
COCO_SEGMENTATIONS = ("polygon", "rle")


def make_record(index: int, sample: dict, *, coco: bool, coco_segmentation: str) -> dict:
    """The record of one written sample: ``index``, ``height``, ``width``, ``meta`` and, when
    ``coco`` is on, ``annotations`` (COCO instance dicts without ``id``/``image_id``)."""
    height, width = sample["mask"].shape
    record: dict[str, Any] = {"index": int(index), "height": int(height), "width": int(width), "meta": sample["meta"]}
    if coco:
        from synth.writers.coco import instance_annotations

        instances = sample.get("instances")
        if instances is None:
            raise ValueError(
                f"sample {index}: the COCO output needs the renderer's 'instances' map (uint16 (H, W), "
                "k = k-th key); use a renderer that returns it or drop --coco/--format coco"
            )
        record["annotations"] = instance_annotations(instances, segmentation=coco_segmentation)
    return record


class SampleWriter:
    """Base class of the output formats (see the module docstring for the protocol).

    Writers are small picklable objects: they are shipped to every worker process (loky or Dask).

    Args:
        chunk_size: samples per work unit / done-marker (int >= 1).
        coco: also collect COCO instance annotations and write ``annotations.json``.
        coco_segmentation: ``"polygon"`` or ``"rle"`` (see :mod:`synth.writers.coco`).
    """

    name = "base"

    def __init__(self, *, chunk_size: int = 32, coco: bool = False, coco_segmentation: str = "polygon") -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk size must be an integer >= 1 (samples), got {chunk_size!r}")
        if coco_segmentation not in COCO_SEGMENTATIONS:
            raise ValueError(f"unknown COCO segmentation {coco_segmentation!r}; valid: {', '.join(COCO_SEGMENTATIONS)}")
        self._chunk_size = int(chunk_size)
        self.coco = bool(coco)
        self.coco_segmentation = coco_segmentation

    @property
    def chunk_size(self) -> int:
        """Samples per chunk (the unit of work, of resume and of the done-markers)."""
        return self._chunk_size

    def params(self) -> dict:
        """Run parameters of this writer, recorded in ``config.yaml`` and checked on resume."""
        return {
            "format": self.name,
            "chunk_size": self.chunk_size,
            "coco": self.coco,
            "coco_segmentation": self.coco_segmentation if self.coco else None,
        }

    def write_chunk(self, out_dir: Path, tmp_dir: Path, chunk_id: int, samples: Iterable[tuple[int, dict]]) -> list[dict]:
        """Write the samples of one chunk (atomically, file by file); return their records."""
        raise NotImplementedError

    def outputs_exist(self, out_dir: Path, chunk_id: int, indices: range) -> bool:
        """True when every file of a done chunk is still there (a resumed run redoes it if not)."""
        return all(p.is_file() for p in self.chunk_files(out_dir, chunk_id, indices))

    def chunk_files(self, out_dir: Path, chunk_id: int, indices: range) -> list[Path]:
        """Paths of every file :meth:`write_chunk` writes for chunk ``chunk_id`` (samples
        ``indices``); their sizes and SHA-256 go into the chunk's done-marker and are checked
        before a resumed run skips the chunk."""
        raise NotImplementedError

    def finalize(self, out_dir: Path, tmp_dir: Path, records: Callable[[], Iterator[dict]], n: int) -> list[str]:
        """Write run-level files once every chunk is done; returns their names (relative)."""
        if not self.coco:
            return []
        from synth.writers.coco import write_coco_json

        write_coco_json(out_dir / "annotations.json", records, file_name=self.file_name, tmp_dir=tmp_dir)
        return ["annotations.json"]

    def file_name(self, index: int) -> str:
        """Image path of sample ``index`` as written into ``annotations.json`` (relative to it)."""
        return f"images/{index:08d}.jpg"
