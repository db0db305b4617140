"""How keysynth compiles its per-pixel loops (Numba).

:func:`kernel` is ``numba.njit(cache=True, nogil=True)``: compiled on first use and kept on disk
(next to the source in ``__pycache__`` when that is writable, else in Numba's user-wide cache or
``NUMBA_CACHE_DIR``), so a worker process loads machine code instead of recompiling. Where no
cache location is writable (a read-only install without a home directory, e.g. some container or
Dask workers) Numba refuses ``cache=True`` at decoration time; the kernel is then compiled in
memory per process instead (a few seconds at the first sample), never an import error. ``nogil``
lets Dask's worker threads render in parallel. No ``fastmath``: results are IEEE float operations
in source order, the same on every machine.
"""

from __future__ import annotations

import numba

__all__ = ["kernel"]


def kernel(fn):
    """Decorate a per-pixel loop: cached, GIL-free Numba compilation (see the module doc)."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(fn)
