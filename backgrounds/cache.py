"""A byte-budget LRU cache for values that are pure functions of their key (asset and background
banks): a hit and a miss return equal values, so results never depend on what is cached.

Each cache has one owner (a background source, a renderer), never a module: a pickled or copied
cache arrives empty with the same budget, so a renderer sent to a worker process or thread starts
with its own cache instead of a copy of the sender's."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

__all__ = ["LRUCache"]


class LRUCache:
    """Thread-safe LRU of built values with a byte budget (``budget_mib``; 0 = keep nothing).

    ``get(key, build)`` returns ``build()``'s value, computing it only when ``key`` is not cached;
    the bytes of a value (or of the items of a tuple value) are their ``nbytes``; values must not
    be mutated.
    ``hits`` / ``misses`` count lookups (for benchmarks). Keys of banked values start with their
    bank generation (``enter_generation``).
    """

    #: bank generations kept by :meth:`enter_generation`
    KEEP_GENERATIONS = 2

    def __init__(self, budget_mib: float = 256.0) -> None:
        self.budget = int(budget_mib * 2**20)
        self._d: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._generations: list = []
        self.hits = self.misses = 0

    def __getstate__(self) -> dict:
        return {"budget": self.budget}  # a copy starts empty: cached values never travel

    def __setstate__(self, state: dict) -> None:
        self.__init__(0)
        self.budget = int(state["budget"])

    def enter_generation(self, generation) -> None:
        """Note that lookups now come from bank ``generation`` (the first item of their keys) and
        keep only entries of the :attr:`KEEP_GENERATIONS` most recent generations: a worker moves
        through generations in order (``train.stream.worker_index`` deals whole ones), so older
        entries are never asked for again and memory stays flat over hours, not just bounded by
        the budget. Two, so that interleaved indices near a boundary do not thrash."""
        if self._generations[-1:] == [generation]:  # the common case: one slice read, no lock
            return
        with self._lock:
            gens = self._generations
            if generation in gens:
                gens.remove(generation)
            gens.append(generation)
            if len(gens) > self.KEEP_GENERATIONS:
                del gens[0]
                self._drop_locked(lambda key: key[0] in gens)

    def set_budget(self, budget_mib: float) -> None:
        """Set the byte budget to ``budget_mib`` MiB, evicting least-recently-used entries over it."""
        with self._lock:
            self.budget = int(budget_mib * 2**20)
            self._evict()

    def clear(self) -> None:
        """Drop every entry and reset the hit / miss counters."""
        with self._lock:
            self._d.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def retain(self, keep) -> int:
        """Drop every entry whose key fails ``keep(key)`` (e.g. an asset bank generation that no
        sample will ask for again); returns how many were dropped."""
        with self._lock:
            return self._drop_locked(keep)

    def _drop_locked(self, keep) -> int:
        dead = [k for k in self._d if not keep(k)]
        for k in dead:
            self._bytes -= self._d.pop(k)[1]
        return len(dead)

    def __len__(self) -> int:
        return len(self._d)

    @property
    def nbytes(self) -> int:
        """Bytes held (the values' ``nbytes`` plus 256 per entry)."""
        return self._bytes

    def _evict(self) -> None:
        while self._bytes > self.budget and self._d:
            _, (_, nb) = self._d.popitem(last=False)
            self._bytes -= nb

    def get(self, key, build: Callable[[], object]):
        """``build()``'s value for ``key``: cached, or built (outside the lock) and cached when it fits
        the budget. ``build`` must be a pure function of ``key``."""
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
                self.hits += 1
                return hit[0]
            self.misses += 1
        value = build()  # outside the lock: another thread may build the same pure value meanwhile
        parts = value if isinstance(value, tuple) else (value,)
        nb = sum(int(getattr(p, "nbytes", 0)) for p in parts) + 256
        if nb <= self.budget:
            with self._lock:
                if key not in self._d:
                    self._d[key] = (value, nb)
                    self._bytes += nb
                    self._evict()
        return value
