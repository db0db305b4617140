"""The in-process parts of the training stream: the :class:`Batch` a stream hands the trainer,
its rate counters, the cheap shape check of a producer's sample, and :class:`SyncStream`, the
ordered stream rendered in the trainer process (``num_workers=0``; the multi-process ring buffer
is :class:`train.stream.ShmStream`).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Batch", "ClosingStream", "RateStats", "SyncStream", "check_stream_sample", "producer_size"]


@dataclass
class Batch:
    """One training batch (NumPy, host memory).

    image uint8 (B, H, W, 3) RGB; mask uint8 (B, H, W) {0, 1, 255}; dist float16 (B, H, W) px or
    None; index int64 (B,) sample indices; uses int64 (B,) draws of each sample including this
    one; wait_s: seconds the trainer waited for data; stalled: some sample exceeded max_reuse.
    """

    image: np.ndarray
    mask: np.ndarray
    dist: np.ndarray | None
    index: np.ndarray
    uses: np.ndarray
    wait_s: float = 0.0
    stalled: bool = False

    @property
    def batch_id(self) -> int:
        """crc32 of the sample indices (identifies the batch in logs)."""
        return zlib.crc32(np.ascontiguousarray(self.index, dtype=np.int64).tobytes())


def producer_size(producer) -> int:
    """Side length (px) of a producer's samples: ``producer.size``, else ``producer.config.size``.

    Raises ``ValueError`` when neither is a positive int.
    """
    size = getattr(producer, "size", None) or getattr(getattr(producer, "config", None), "size", None)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"producer {type(producer).__name__} has no positive `size` (or `config.size`) attribute (px)")
    return int(size)


def check_stream_sample(sample: dict, size: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays a training stream carries, checked cheaply on the hot path: -> (image uint8
    (S, S, 3), mask uint8 (S, S)). The full sample contract (mask values, meta, instances) is
    :func:`synth.writers.encoding.check_sample`, run where samples are written.

    Raises ``ValueError`` naming the index and the expected shape/dtype.
    """
    if not isinstance(sample, dict) or "image" not in sample or "mask" not in sample:
        raise ValueError(f"sample {index}: producer must return a dict with 'image' and 'mask'")
    img, mask = np.asarray(sample["image"]), np.asarray(sample["mask"])
    if img.dtype != np.uint8 or img.shape != (size, size, 3):
        raise ValueError(f"sample {index}: image must be uint8 ({size}, {size}, 3), got {img.dtype} {img.shape}; "
                         f"set the producer's size to the training image_size")
    if mask.dtype != np.uint8 or mask.shape != (size, size):
        raise ValueError(f"sample {index}: mask must be uint8 ({size}, {size}), got {mask.dtype} {mask.shape}")
    return img, mask


class RateStats:
    """Draw counters of a stream and its rates over the window since the previous :meth:`window`."""

    def __init__(self):
        self.consumed = 0  # sample draws
        self.distinct = 0  # samples drawn at least once
        self.stalled_batches = 0
        self.wait_s = 0.0
        self.t0 = time.perf_counter()
        self._last = (self.t0, 0, 0, 0.0)

    def window(self, generated: int) -> dict[str, float]:
        """Rates since the previous call, plus totals."""
        now = time.perf_counter()
        t, g, c, wt = self._last
        dt = max(now - t, 1e-9)
        self._last = (now, generated, self.consumed, self.wait_s)
        return {"gen_per_s": (generated - g) / dt, "consumed_per_s": (self.consumed - c) / dt,
                "wait_s": self.wait_s - wt, "window_s": dt, "generated": generated, "consumed": self.consumed,
                "mean_reuse": self.consumed / max(self.distinct, 1), "stalled_batches": self.stalled_batches}


class ClosingStream:
    """``with stream: ...`` closes the stream (its workers, pools or shared memory) on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass


class SyncStream(ClosingStream):
    """In-process, ordered stream (``num_workers=0``): batch ``t`` = samples ``start + t*B ...``.

    Same batches as ``ShmStream(deterministic=True)`` for the same ``start``; no processes, so it is
    the simplest way to debug a producer.
    """

    def __init__(self, producer, *, batch_size: int, run_seed: int = 0, start: int = 0, with_dist: bool = False,
                 ignore_index: int = 255, **_ignored):
        self.producer, self.batch_size, self.run_seed = producer, int(batch_size), int(run_seed)
        self.size = producer_size(producer)
        self.start = self._next = int(start)
        self.with_dist, self.ignore_index = bool(with_dist), int(ignore_index)
        self.stats_ = RateStats()
        self.order = "ordered"

    def next_batch(self) -> Batch:
        from train.distmaps import signed_distance_map

        t0 = time.perf_counter()
        idx = np.arange(self._next, self._next + self.batch_size, dtype=np.int64)
        pairs = [check_stream_sample(self.producer.render(int(i), self.run_seed), self.size, int(i)) for i in idx]
        image = np.stack([p[0] for p in pairs])
        mask = np.stack([p[1] for p in pairs])
        dist = np.stack([signed_distance_map(m, self.ignore_index) for m in mask]) if self.with_dist else None
        self._next += self.batch_size
        wait = time.perf_counter() - t0
        self.stats_.wait_s += wait
        self.stats_.consumed += self.batch_size
        self.stats_.distinct += self.batch_size
        return Batch(image, mask, dist, idx, np.ones(self.batch_size, np.int64), wait_s=wait)

    def stats(self) -> dict[str, float]:
        out = self.stats_.window(self.stats_.consumed)
        out["ready"] = 0
        return out

    def state_dict(self) -> dict:
        return {"order": "ordered", "position": self._next, "rng": None}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore: an ordered stream is fully given by its ``start``."""
