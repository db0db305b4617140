"""JSON-safe sample metadata: one cleaner for the scene, key and distractor meta."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["jsonable", "CleanDict", "fresh_copy", "round4"]


def round4(x: float) -> float:
    """``x`` rounded to 4 decimals: the double nearest to ``k / 10**4`` with ``k = floor(x * 10**4 +
    0.5)`` (halves up), as ``round(x, 4)`` but ~3x cheaper (that one rounds the exact decimal
    expansion; the two differ only within one ulp of a half, and both give the nearest double to a
    4-decimal number, so either is stable under re-rounding). Non-finite or huge values
    (|x| >= 1e11) go through ``round``. Meta floats and sampled material values use it."""
    y = x * 10000.0
    if -1e15 < y < 1e15:
        return math.floor(y + 0.5) / 10000.0
    return round(x, 4)

_PLAIN = frozenset((int, str, bool, type(None)))


class CleanDict(dict):
    """A dict that :func:`jsonable` produced: already JSON-safe, so a later ``jsonable`` over a
    structure holding it returns it as is instead of walking it again (the scene cleans its whole
    meta once per sample; the key / distractor parts inside are cleaned where they are made, and
    cached asset parameters once per asset). Treat it as read-only: a value put into it later is
    not cleaned."""

    __slots__ = ()


def jsonable(x):
    """Nested dicts/lists/tuples of Python and NumPy values -> JSON-safe Python values.

    NumPy scalars and arrays become Python numbers and lists, tuples become lists, dict keys
    become ``str``, and every float is rounded to 4 decimals (:func:`round4`) (meta records sampled parameters,
    not pixel data). Dicts come back as :class:`CleanDict` (a ``dict``), which later calls skip.
    Idempotent: cleaning cleaned meta changes nothing.
    """
    t = type(x)
    if t is float:  # fast paths for the common exact types (same result as the generic branches)
        return round4(x)
    if t is int or t is str or t is bool or x is None or t is CleanDict:
        return x
    if t is dict:  # leaf floats/ints/strs inline: one call per container, not per element
        return CleanDict({str(k): (round4(v) if type(v) is float else v if type(v) in _PLAIN else jsonable(v))
                          for k, v in x.items()})
    if t is list or t is tuple:
        return [round4(v) if type(v) is float else v if type(v) in _PLAIN else jsonable(v) for v in x]
    if isinstance(x, dict):
        return CleanDict({str(k): jsonable(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return round4(float(x))
    return x


def fresh_copy(x):
    """A new container tree (CleanDict / list) with the same leaves: hands out cached, already
    clean meta (an asset's shape parameters) without letting a caller's edit reach the cache."""
    t = type(x)
    if t is CleanDict or t is dict:
        return CleanDict({k: fresh_copy(v) if type(v) in (CleanDict, dict, list) else v for k, v in x.items()})
    if t is list:
        return [fresh_copy(v) if type(v) in (CleanDict, dict, list) else v for v in x]
    return x
