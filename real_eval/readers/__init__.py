"""Annotation-format readers: a registry of modules, each with ``NAME``, ``DESCRIPTION``,
``detect(path) -> bool`` and ``read(path, *, classes=None, **options) -> list[RealSample]``.

Registered formats (:data:`READERS`): ``masks`` (images/ + masks/ PNG folder), ``coco`` (COCO
JSON), ``cvat`` (CVAT for images 1.1 XML), ``supervisely`` (Supervisely project), ``labelme``
(labelme JSON). :func:`detect_format` tries them in the order cvat, supervisely, coco, labelme,
masks (most specific first).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from real_eval.readers import coco, cvat, labelme, mask_folder, supervisely
from real_eval.readers.base import AnnotationError, ClassFilter, is_key_class

READERS: dict[str, ModuleType] = {
    mask_folder.NAME: mask_folder,
    coco.NAME: coco,
    cvat.NAME: cvat,
    supervisely.NAME: supervisely,
    labelme.NAME: labelme,
}
_DETECT_ORDER = ("cvat", "supervisely", "coco", "labelme", "masks")

__all__ = ["READERS", "detect_format", "get_reader", "AnnotationError", "ClassFilter", "is_key_class"]


def get_reader(name: str) -> ModuleType:
    """Reader module by name. Raises ValueError listing the valid names."""
    try:
        return READERS[name]
    except KeyError:
        raise ValueError(f"unknown annotation format {name!r}; valid names: {', '.join(READERS)}") from None


def _raise_if_unparsable(path: Path) -> None:
    """Raise a ValueError naming the parse error when ``path`` (or, for a folder, one of its first
    20 JSON / XML files) is a JSON or XML file that does not parse (a truncated or garbled export)."""
    import json
    import xml.etree.ElementTree as ET

    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".xml"))[:20]
    for f in files:
        try:
            if f.suffix.lower() == ".json":
                with open(f, "rb") as fh:
                    json.load(fh)
            elif f.suffix.lower() == ".xml":
                ET.parse(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                             "the file may be truncated or garbled: export it again") from None
        except ET.ParseError as exc:
            raise ValueError(f"{f} is not valid XML ({exc}); the file may be truncated or garbled: export it again") from None
        except (OSError, UnicodeDecodeError, RecursionError):
            continue


def detect_format(path: str | Path) -> str:
    """Name of the first reader whose ``detect`` accepts ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no reader recognises it (the message lists valid names and what each expects).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    for name in _DETECT_ORDER:
        if READERS[name].detect(path):
            return name
    _raise_if_unparsable(path)
    expected = "; ".join(f"{n}: {READERS[n].DESCRIPTION}" for n in READERS)
    raise ValueError(f"cannot detect the annotation format of {path}; pass the format explicitly "
                     f"(--from / fmt=) with one of: {', '.join(READERS)} ({expected})")
