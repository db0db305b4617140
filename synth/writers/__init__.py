"""Output formats of ``keysynth synth``: a registry of writers (see :mod:`synth.writers.base`).

``WRITERS`` maps a ``--format`` name to its writer class:
- ``folder``: ``images/NNNNNNNN.jpg`` + ``masks/NNNNNNNN.png`` (+ ``annotations.json`` with coco);
- ``webdataset``: ``shard-NNNNNN.tar`` with ``KEY.jpg`` / ``KEY.png`` / ``KEY.json`` members;
- ``coco``: the folder format plus a COCO instances ``annotations.json``.
"""

from __future__ import annotations

from synth.writers.base import COCO_SEGMENTATIONS, SampleWriter
from synth.writers.coco import CocoWriter
from synth.writers.folder import FolderWriter
from synth.writers.webdataset import WebDatasetWriter

__all__ = ["WRITERS", "COCO_SEGMENTATIONS", "SampleWriter", "make_writer", "FolderWriter", "CocoWriter", "WebDatasetWriter"]

WRITERS: dict[str, type[SampleWriter]] = {
    "folder": FolderWriter,
    "webdataset": WebDatasetWriter,
    "coco": CocoWriter,
}


def make_writer(fmt: str, *, chunk_size: int = 32, shard_size: int = 1000, coco: bool = False, coco_segmentation: str = "polygon") -> SampleWriter:
    """Build the writer of format ``fmt`` (a key of :data:`WRITERS`).

    Args:
        fmt: ``"folder"``, ``"webdataset"`` or ``"coco"``.
        chunk_size: samples per work unit for the folder formats (>= 1).
        shard_size: samples per tar shard for ``webdataset`` (>= 1).
        coco: write ``annotations.json`` too (folder format; implied by ``coco``).
        coco_segmentation: ``"polygon"`` or ``"rle"``.

    Raises:
        ValueError: unknown format (the message lists the valid names) or bad sizes.
    """
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r}; valid formats: {', '.join(WRITERS)}")
    if fmt == "webdataset":
        return WebDatasetWriter(shard_size=shard_size, coco=coco, coco_segmentation=coco_segmentation)
    return WRITERS[fmt](chunk_size=chunk_size, coco=coco, coco_segmentation=coco_segmentation)
