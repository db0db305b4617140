"""JSON-safe sample metadata: one cleaner for the scene, key and distractor meta."""

from __future__ import annotations

import numpy as np

__all__ = ["jsonable", "CleanDict", "fresh_copy"]

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
    become ``str``, and every float is rounded to 4 decimals (meta records sampled parameters,
    not pixel data). Dicts come back as :class:`CleanDict` (a ``dict``), which later calls skip.
    Idempotent: cleaning cleaned meta changes nothing.
    """
    t = type(x)
    if t is float:  # fast paths for the common exact types (same result as the generic branches)
        return round(x, 4)
    if t is int or t is str or t is bool or x is None or t is CleanDict:
        return x
    if t is dict:  # leaf floats/ints/strs inline: one call per container, not per element
        return CleanDict({str(k): (round(v, 4) if type(v) is float else v if type(v) in _PLAIN else jsonable(v))
                          for k, v in x.items()})
    if t is list or t is tuple:
        return [round(v, 4) if type(v) is float else v if type(v) in _PLAIN else jsonable(v) for v in x]
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
        return round(float(x), 4)
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
