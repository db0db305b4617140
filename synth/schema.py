"""One declarative schema for flat dataclass configs (``SynthConfig``, ``TrainConfig``).

Each field is declared once with :func:`knob`: default, help text, unit and bounds. From that one
declaration come the validation of YAML and CLI values (:func:`check_fields`: type coercion,
finiteness, bounds, ``low <= high`` for ``*_range`` pairs), the ``--help`` line of a generated
CLI flag (:func:`knob_help`) and the reference table in ``docs/CONFIG.md``
(:func:`markdown_table`). Errors name the field, the value, the valid range and its unit.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

__all__ = ["knob", "coerce", "check_fields", "knob_help", "schema_rows", "markdown_table"]

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def knob(default: Any, help: str, *, unit: str = "", low: float | None = None, high: float | None = None,
         choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its help text, unit and bounds (inclusive) as metadata.

    For a ``*_range`` pair the bounds apply to both ends; ``choices`` lists the valid strings.
    """
    meta = {"help": help, "unit": unit, "low": low, "high": high, "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


def coerce(name: str, value: Any, hint: Any, source: str = "value") -> Any:
    """Convert ``value`` (YAML scalar or CLI string) to the field type ``hint``.

    ``"none"``/``"null"``/``""`` become ``None`` for optional fields; booleans accept
    true/false/yes/no/on/off/1/0 (a string such as ``"no"`` is never read as true). Other types
    (tuples, lists) pass through for :func:`check_fields`.

    Raises:
        ValueError: names the field and the value when it cannot be converted.
    """
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if optional:
            return None
        raise ValueError(f"{source}: field {name!r} cannot be empty/None")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError("expected true/false")
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError("expected a string")
            return str(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{source}: field {name!r} got {value!r}: {exc}") from None
    return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _bounds_text(meta: dict) -> str:
    lo, hi = meta.get("low"), meta.get("high")
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f">= {_num(lo)}"
    if lo is None:
        return f"<= {_num(hi)}"
    return f"[{_num(lo)}, {_num(hi)}]"


def _check_number(where: str, v: Any, meta: dict, *, integer: bool) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise ValueError(f"{where}: {v!r} is not {'an integer' if integer else 'a number'}")
    if not math.isfinite(float(v)):
        raise ValueError(f"{where}: {v!r} is not finite")
    lo, hi = meta.get("low"), meta.get("high")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        unit = f" {meta['unit']}" if meta.get("unit") else ""
        raise ValueError(f"{where}: {v!r} is outside the valid range {_bounds_text(meta)}{unit}")


def _check_range(where: str, v: Any, meta: dict, integer: bool) -> tuple:
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise ValueError(f"{where}: {v!r} must be a (low, high) pair of numbers")
    for x in v:
        _check_number(where, x, meta, integer=integer)
    if v[0] > v[1]:
        raise ValueError(f"{where}: low > high in {list(v)!r}; swap the values")
    return tuple(int(x) for x in v) if integer else tuple(v)


def check_fields(obj: Any) -> None:
    """Coerce and check every :func:`knob` field of the dataclass instance ``obj`` in place.

    Raises:
        ValueError: ``"<Class>.<field>=<value>: <why>"`` for the first invalid field.
    """
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        where = f"{cls.__name__}.{f.name}"
        v = getattr(obj, f.name)
        if f.name.endswith("_range"):
            integer = isinstance(f.default, tuple) and all(isinstance(x, int) for x in f.default)
            setattr(obj, f.name, _check_range(f"{where}={v!r}", v, meta, integer))
            continue
        v = coerce(f.name, v, hints[f.name], source=cls.__name__)
        setattr(obj, f.name, v)
        if v is None:
            continue
        base = next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
        if base in (int, float):
            _check_number(f"{where}={v!r}", v, meta, integer=base is int)
        elif meta.get("choices") and v not in meta["choices"]:
            raise ValueError(f"{where}={v!r}: valid names: {', '.join(map(str, meta['choices']))}")


def knob_help(f: dataclasses.Field) -> str:
    """One help line for a field: its text, then unit and valid range where declared."""
    meta = f.metadata
    rng = _bounds_text(meta)
    extra = ", ".join(x for x in (meta.get("unit", ""), f"range {rng}" if rng else "") if x)
    return f"{meta.get('help', '')}" + (f"; {extra}" if extra else "")


def schema_rows(cls: type) -> list[dict[str, str]]:
    """``[{"name", "type", "default", "unit", "range", "help"}]`` for every field of ``cls``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        hint = hints[f.name]
        typ = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        rng = _bounds_text(meta) or (", ".join(map(str, meta["choices"])) if meta.get("choices") else "")
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        rows.append({"name": f.name, "type": typ, "default": repr(default), "unit": meta.get("unit", ""),
                     "range": rng, "help": meta.get("help", "")})
    return rows


def markdown_table(cls: type) -> str:
    """Markdown reference table of ``cls``'s fields (the ``docs/CONFIG.md`` sections)."""
    lines = ["| field | type | default | unit | valid | meaning |", "|---|---|---|---|---|---|"]
    for r in schema_rows(cls):
        cells = [f"`{r['name']}`", r["type"], f"`{r['default']}`", r["unit"], r["range"], r["help"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
