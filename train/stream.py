"""The live data stream: generator processes -> shared-memory ring buffer -> trainer batches.

A *producer* is any picklable object with ``size`` (px) and ``render(index, run_seed) -> sample``
(the sample contract of docs/DESIGN.md; ``synth.SampleRenderer`` in production,
:class:`train.toy.ToyDiscRenderer` in tests). Sample ``index`` of run ``run_seed`` has fixed
content (kubric-style seeds), so the stream is reproducible in *content*.

Ring buffer (``multiprocessing.shared_memory``, one segment per array, created and unlinked by the
trainer process): ``S`` slots of image (H, W, 3) uint8, mask (H, W) uint8, optional signed distance
map (H, W) float16, and an int64 control block (per-slot state / sample index / use count and
per-worker counters). Slot states: FREE -> WRITING (worker) -> READY (worker, flipped *after* the
arrays are written) -> READING (trainer, while copying) -> READY/FREE. Every state flip happens
under one ``multiprocessing.Lock``, whose acquire/release are memory barriers, so a READY slot is
always fully written, also on weakly ordered CPUs. Image arrays are never pickled; only the
producer is, once per worker.

Worker ``w`` of ``W`` renders indices ``start + w, start + w + W, ...`` (deterministic assignment);
in ``fresh`` order, a producer with ``index_block = K > 1`` (``synth.SampleRenderer``: its
asset-bank generation length) gets whole blocks instead: worker ``w`` renders
``start + (j*W + w)*K ... + K-1`` for its ``j``-th block, so each worker stays inside one asset-bank
generation and its geometry cache keeps hitting whatever ``W`` is (:func:`worker_index`).

Two orders:

- ``fresh`` (default, asynchronous): the trainer draws each batch from READY slots, preferring the
  least-used ones; a sample is drawn at most ``max_reuse`` times while enough fresh (< max_reuse
  uses) samples exist. Workers write into FREE slots, then into exhausted ones, then (unless the
  refresh mode below is on) into already-used ones, most-used first, so with a fast generator each
  sample is used about once. When generation lags the trainer does not stall: it reuses samples
  beyond ``max_reuse`` ("stalled-reuse", counted in :meth:`ShmStream.stats` and logged).
  Reproducible in content, not in order (which sample lands in which batch depends on timing).
- ``ordered`` (``deterministic=True``): batch ``t`` is samples ``start + t*B ... start + t*B + B-1``,
  each used once; sample ``i`` goes to slot ``(i - start) % S``. Batches are a function of the
  step, so ``--resume`` reproduces an uninterrupted run exactly. :class:`SyncStream` is the same
  order rendered in the trainer process (``num_workers=0``, :mod:`train.batches`).

Refresh mode: ``refresh_fraction=f, refresh_every=K`` (with ``max_reuse=0``, unlimited):
a buffer of ``S`` samples, uniform draws, and every ``K`` batches the oldest ``round(f * S)`` samples
are retired; workers then only refill retired slots. ``max_reuse`` alone covers the continuous
form (a sample is replaced after at most ``max_reuse`` draws).
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from multiprocessing import get_context
from multiprocessing import shared_memory

import numpy as np

from keysynth.common import seed_rng
from synth.workers import tune_allocator
from train.batches import Batch, ClosingStream, RateStats, SyncStream, check_stream_sample, producer_size

__all__ = ["Batch", "ShmStream", "SyncStream", "check_stream_sample", "make_stream", "producer_size", "worker_index"]

log = logging.getLogger("keysynth.train")

FREE, WRITING, READY, READING = 0, 1, 2, 3
# control block columns (slot part) and worker part; _SEQ = write order (the total of the workers'
# generated counts at the write), so "oldest" never depends on how indices are dealt to workers
_STATE, _INDEX, _USES, _SEQ = 0, 1, 2, 3


# ------------------------------------------------------------------------------------------------
# shared memory layout
# ------------------------------------------------------------------------------------------------
def _layout(slots: int, size: int, workers: int, with_dist: bool) -> dict[str, tuple[tuple[int, ...], str]]:
    spec = {
        "image": ((slots, size, size, 3), "uint8"),
        "mask": ((slots, size, size), "uint8"),
        "ctl": ((slots, 4), "int64"),
        "wctl": ((max(workers, 1), 2), "int64"),  # per worker: generated count, next index
    }
    if with_dist:
        spec["dist"] = ((slots, size, size), "float16")
    return spec


def _attach(names: dict[str, str], spec: dict) -> tuple[dict[str, np.ndarray], list]:
    arrays, handles = {}, []
    for key, (shape, dtype) in spec.items():
        shm = shared_memory.SharedMemory(name=names[key])
        handles.append(shm)
        arrays[key] = np.ndarray(shape, dtype=dtype, buffer=shm.buf)
    return arrays, handles


def worker_index(start: int, w: int, n_workers: int, k: int, block: int = 1) -> int:
    """Index of the ``k``-th sample of worker ``w`` of ``n_workers``: blocks of ``block`` consecutive
    indices dealt round-robin (``block=1``: ``start + w + k * n_workers``)."""
    j, r = divmod(int(k), int(block))
    return int(start) + (j * int(n_workers) + int(w)) * int(block) + r


def _worker_main(producer, names, spec, w, n_workers, start, run_seed, order, lock, stop, errors,
                 with_dist, ignore_index, overwrite_used, max_reuse, parent_pid):
    """Generator process: render assigned indices and publish them into free ring slots."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer owns shutdown
    tune_allocator()  # generator process only: frame-sized buffers stay in its heap
    arrays, handles = _attach(names, spec)
    ctl, wctl = arrays["ctl"], arrays["wctl"]
    slots, size = ctl.shape[0], arrays["image"].shape[1]
    if with_dist:
        from train.distmaps import signed_distance_map
    try:
        k = 0
        block = max(1, int(getattr(producer, "index_block", 1) or 1)) if order != "ordered" else 1
        while not stop.is_set():
            index = worker_index(start, w, n_workers, k, block)
            image, mask = check_stream_sample(producer.render(index, run_seed), size, index)
            dist = signed_distance_map(mask, ignore_index) if with_dist else None
            slot, pause = -1, 0.0005
            while slot < 0:
                if stop.is_set() or os.getppid() != parent_pid:
                    return
                with lock:
                    state = ctl[:, _STATE]
                    if order == "ordered":
                        s = (index - start) % slots
                        slot = s if state[s] == FREE else -1
                    else:
                        slot = _pick_slot_to_write(state, ctl[:, _USES], ctl[:, _SEQ], max_reuse, overwrite_used)
                    if slot >= 0:
                        ctl[slot, _STATE] = WRITING
                if slot < 0:
                    time.sleep(pause)
                    pause = min(pause * 2, 0.01)
            arrays["image"][slot] = image
            arrays["mask"][slot] = mask
            if dist is not None:
                arrays["dist"][slot] = dist
            with lock:  # state written last, under the lock (barrier)
                ctl[slot, _INDEX] = index
                ctl[slot, _USES] = 0
                ctl[slot, _STATE] = READY
                wctl[w, 0] += 1
                ctl[slot, _SEQ] = wctl[:, 0].sum()
                wctl[w, 1] = worker_index(start, w, n_workers, k + 1, block)
            k += 1
    except BaseException:  # report to the trainer, which re-raises
        try:
            errors.put((w, traceback.format_exc()))
        except Exception:
            pass
    finally:
        del arrays, ctl, wctl
        for h in handles:
            h.close()


def _pick_slot_to_write(state, uses, seq, max_reuse: int, overwrite_used: bool) -> int:
    """Slot a worker may overwrite: FREE, else exhausted (uses >= max_reuse), else most-used; ties go
    to the oldest write (``seq``)."""
    free = np.flatnonzero(state == FREE)
    if len(free):
        return int(free[0])
    ready = state == READY
    if max_reuse > 0:
        ex = np.flatnonzero(ready & (uses >= max_reuse))
        if len(ex):
            return int(ex[np.lexsort((seq[ex], -uses[ex]))[0]])
    if overwrite_used:
        used = np.flatnonzero(ready & (uses >= 1))
        if len(used):
            return int(used[np.lexsort((seq[used], -uses[used]))[0]])
    return -1


# ------------------------------------------------------------------------------------------------
# trainer side
# ------------------------------------------------------------------------------------------------
class ShmStream(ClosingStream):
    """Generator worker processes feeding a shared-memory ring; see the module docstring.

    Args:
        producer: picklable object with ``size`` and ``render(index, run_seed)``.
        batch_size: samples per batch (B).
        num_workers: generator processes (>= 1).
        buffer_size: ring slots S (fresh order: S >= B + num_workers).
        run_seed: the run seed passed to ``render``.
        start: first sample index (resume: ``state_dict()["position"]``, or ``step * B`` ordered).
        max_reuse: draws per sample while fresh samples exist (0 = unlimited).
        refresh_fraction, refresh_every: refresh mode (see module docstring).
        deterministic: ``ordered`` mode (batch is a function of the step).
        with_dist: compute signed distance maps in the workers (surface loss).
        ignore_index: mask value passed to the distance-map function.
        mp_context: "spawn" (default) or "forkserver".
        selection_seed: seeds the trainer-side draw order (fresh mode).

    Use as a context manager or call :meth:`close`; shared memory is unlinked and workers are
    stopped (terminated if they do not exit) on close, on exceptions and at interpreter exit.
    """

    def __init__(self, producer, *, batch_size: int, num_workers: int = 2, buffer_size: int = 256, run_seed: int = 0,
                 start: int = 0, max_reuse: int = 4, refresh_fraction: float = 0.0, refresh_every: int = 0,
                 deterministic: bool = False, with_dist: bool = False, ignore_index: int = 255,
                 mp_context: str = "spawn", selection_seed: int | None = None, start_timeout_s: float = 600.0):
        if num_workers < 1:
            raise ValueError(f"ShmStream needs num_workers >= 1 (got {num_workers}); use SyncStream for 0")
        size = producer_size(producer)
        self.order = "ordered" if deterministic else "fresh"
        if self.order == "fresh" and buffer_size < batch_size + num_workers:
            raise ValueError(f"buffer_size={buffer_size} too small: needs >= batch_size + num_workers "
                             f"= {batch_size + num_workers}")
        self.batch_size, self.size, self.num_workers = int(batch_size), size, int(num_workers)
        self.slots = int(buffer_size)
        self.start, self.run_seed, self.max_reuse = int(start), int(run_seed), int(max_reuse)
        self.refresh_fraction, self.refresh_every = float(refresh_fraction), int(refresh_every)
        self.with_dist = bool(with_dist)
        self.start_timeout_s = float(start_timeout_s)
        self._rng = seed_rng(self.run_seed, 0x5EED, self.start) if selection_seed is None else seed_rng(selection_seed)
        self._next_ordered = self.start  # ordered mode: next index to hand out
        self._batches = 0
        self._closed = False
        self.stats_ = RateStats()
        self._shms: list[shared_memory.SharedMemory] = []
        self._procs = []
        spec = _layout(self.slots, size, self.num_workers, self.with_dist)
        try:
            names = {}
            for key, (shape, dtype) in spec.items():
                nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
                shm = shared_memory.SharedMemory(create=True, size=max(nbytes, 1))
                self._shms.append(shm)
                names[key] = shm.name
            self._arr = {k: np.ndarray(shape, dtype=dtype, buffer=shm.buf)
                         for (k, (shape, dtype)), shm in zip(spec.items(), self._shms)}
            self._arr["ctl"][:] = 0
            self._arr["wctl"][:] = 0
            ctx = get_context(mp_context)
            self._lock, self._stop, self._errors = ctx.Lock(), ctx.Event(), ctx.Queue()
            overwrite_used = self.refresh_every == 0
            for w in range(self.num_workers):
                p = ctx.Process(target=_worker_main, name=f"keysynth-gen-{w}", daemon=True,
                                args=(producer, names, spec, w, self.num_workers, self.start, self.run_seed, self.order,
                                      self._lock, self._stop, self._errors, self.with_dist, ignore_index,
                                      overwrite_used, self.max_reuse, os.getpid()))
                p.start()
                self._procs.append(p)
        except BaseException:
            self.close()
            raise

    # -- context manager / cleanup -----------------------------------------------------------
    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop workers (join, then terminate/kill), release and unlink the shared memory."""
        if self._closed:
            return
        self._closed = True
        if hasattr(self, "_stop"):
            self._stop.set()
        deadline = time.monotonic() + timeout_s
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        if hasattr(self, "_errors"):
            self._errors.close()
            self._errors.join_thread()
        self._arr = {}
        for shm in self._shms:
            try:
                shm.close()
            except BufferError:  # a view is still alive somewhere; unlink anyway
                pass
            try:
                shm.unlink()
            except FileNotFoundError:
                pass
        self._shms = []

    # -- trainer API ------------------------------------------------------------------------------
    def _check_workers(self) -> None:
        if not self._errors.empty():
            w, tb = self._errors.get()
            raise RuntimeError(f"generator worker {w} failed:\n{tb}")
        dead = [p for p in self._procs if not p.is_alive()]
        if dead:
            time.sleep(0.05)  # give its error report time to arrive
            if not self._errors.empty():
                w, tb = self._errors.get()
                raise RuntimeError(f"generator worker {w} failed:\n{tb}")
            raise RuntimeError(f"generator worker {dead[0].name} exited with code {dead[0].exitcode}")

    def next_batch(self) -> Batch:
        """Block until a batch can be formed (see module docstring for the policy) and return it."""
        if self._closed:
            raise RuntimeError("stream is closed")
        t0 = time.perf_counter()
        pick = self._wait_and_pick()
        try:
            arr = self._arr
            out = Batch(image=arr["image"][pick], mask=arr["mask"][pick],
                        dist=arr["dist"][pick] if self.with_dist else None,
                        index=arr["ctl"][pick, _INDEX].copy(), uses=arr["ctl"][pick, _USES].copy() + 1)
        finally:
            self._release(pick)
        out.wait_s = time.perf_counter() - t0
        out.stalled = self.order == "fresh" and self.max_reuse > 0 and bool((out.uses > self.max_reuse).any())
        self.stats_.wait_s += out.wait_s
        self.stats_.consumed += len(pick)
        self.stats_.distinct += int((out.uses == 1).sum())
        if out.stalled:
            self.stats_.stalled_batches += 1
        self._batches += 1
        if self.refresh_every and self._batches % self.refresh_every == 0:
            self._refresh()
        return out

    def _wait_and_pick(self) -> np.ndarray:
        """Choose slots and mark them READING (under the lock), waiting while too few are READY."""
        pause = 0.0005
        deadline = time.monotonic() + self.start_timeout_s
        ctl = self._arr["ctl"]
        while True:
            with self._lock:
                pick = self._pick_ordered(ctl) if self.order == "ordered" else self._pick_fresh(ctl)
                if pick is not None:
                    ctl[np.unique(pick), _STATE] = READING
                    return pick
            self._check_workers()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no batch from {self.num_workers} generator workers in {self.start_timeout_s:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def _pick_ordered(self, ctl) -> np.ndarray | None:
        idx = np.arange(self._next_ordered, self._next_ordered + self.batch_size)
        slots = (idx - self.start) % self.slots
        if self.batch_size > self.slots:
            raise ValueError(f"deterministic mode needs buffer_size >= batch_size ({self.batch_size})")
        if np.all((ctl[slots, _STATE] == READY) & (ctl[slots, _INDEX] == idx)):
            self._next_ordered += self.batch_size
            return slots
        return None

    def _pick_fresh(self, ctl) -> np.ndarray | None:
        B = self.batch_size
        ready = np.flatnonzero(ctl[:, _STATE] == READY)
        if len(ready) == 0 or (self.stats_.consumed == 0 and len(ready) < min(B, self.slots)):
            return None  # start-up: wait for a first full batch
        uses = ctl[ready, _USES]
        tiebreak = self._rng.random(len(ready))
        if self.refresh_every:  # refresh mode: uniform draws from the buffer
            order = np.argsort(tiebreak)
        else:  # least-used first, random among equals
            order = np.lexsort((tiebreak, uses))
        if len(ready) >= B:
            pick = ready[order[:B]]
        else:  # fewer READY than B (workers rewriting many slots): repeat some
            pick = ready[order[np.arange(B) % len(ready)]]
        if self.max_reuse > 0 and (ctl[pick, _USES] >= self.max_reuse).any():
            n_fresh = int((uses < self.max_reuse).sum())
            log.debug("stalled-reuse: %d fresh samples for a batch of %d", n_fresh, B)
        return pick

    def _release(self, pick: np.ndarray) -> None:
        ctl = self._arr["ctl"]
        with self._lock:
            for s in pick:  # duplicates count once per draw
                ctl[s, _USES] += 1
            u = np.unique(pick)
            ctl[u, _STATE] = FREE if self.order == "ordered" else READY

    def _refresh(self) -> None:
        """Refresh mode: retire the oldest ``round(refresh_fraction * S)`` READY samples."""
        n = int(round(self.refresh_fraction * self.slots))
        ctl = self._arr["ctl"]
        with self._lock:
            ready = np.flatnonzero(ctl[:, _STATE] == READY)
            old = ready[np.argsort(ctl[ready, _SEQ], kind="stable")[:n]]
            ctl[old, _STATE] = FREE

    def stats(self) -> dict[str, float]:
        """Rates since the last call: gen_per_s, consumed_per_s, wait_s, window_s; totals: generated,
        consumed, mean_reuse (draws / distinct samples), stalled_batches; ready (READY slots now)."""
        with self._lock:
            generated = int(self._arr["wctl"][:, 0].sum())
            ready = int((self._arr["ctl"][:, _STATE] == READY).sum())
        out = self.stats_.window(generated)
        out["ready"] = ready
        return out

    def state_dict(self) -> dict:
        """Resume state: ``position`` (first index a resumed stream should render) and rng."""
        with self._lock:
            wc = self._arr["wctl"]
            pos = int(wc[:, 1].max()) if wc[:, 0].any() else self.start
        if self.order == "ordered":
            pos = self._next_ordered
        return {"order": self.order, "position": max(pos, self.start), "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore the draw rng of a :meth:`state_dict` (the position is the ``start`` argument)."""
        if state and state.get("rng"):
            self._rng.bit_generator.state = state["rng"]


def make_stream(producer, *, batch_size: int, num_workers: int, **kwargs):
    """``SyncStream`` when ``num_workers == 0`` else ``ShmStream`` (same keyword arguments)."""
    if num_workers == 0:
        return SyncStream(producer, batch_size=batch_size, **kwargs)
    return ShmStream(producer, batch_size=batch_size, num_workers=num_workers, **kwargs)
