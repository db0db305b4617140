"""Throughput of the scene renderer: samples/s per worker at 256 and 512 px, 1 and 2 workers
(joblib loky), in memory and writing jpg+png files, plus CPU ms/sample of each camera effect (both
camera backends: native and imgaug), of key rendering (fresh and from the asset bank), and
single-process CPU ms/sample (time.process_time: robust on a shared machine) with the ratio to
the goal, with the asset bank on (default) and off, side by side.

The asset bank (``synth.keys.bank``) caches object geometry per renderer, so a worker reaches its
steady state once every bank slot it will be asked for is built: at 256 px 1.5% of the cache
lookups miss over samples 1,000-2,000, 0.3% over 2,000-3,000 and under 0.05% after 4,000 (each miss
builds an object, a few ms: ~2% of the time per sample at 1,500). Every timed renderer therefore
first renders blocks of 250 samples until one block has no miss (at most ``--warm`` samples): the
figures of a long training run or a large dataset. The cache hit rate during the timed part is printed. ``--warm 0`` shows the cold
start.

This machine's speed drifts by about +-10% between 20-second windows (a fixed reference workload
drifts with it), so one short run is a snapshot; ``--series-s 300`` adds the median of five minutes
of 100-sample blocks per size, the figure to hold against the goal, and the median over the
blocks timed next to the fastest quarter of the reference runs (the host least contended: on this
shared virtual machine the reference workload itself varies by up to 3x within minutes).

Usage: .venv/bin/python bench/bench_synth.py [--seconds 4] [--sizes 256 512] [--warm 8000] [--series-s 0]
Goal (per core, default config, in memory): >= 150 samples/s at 256 px, >= 60 at 512 px.
Runtime ~4 minutes with the defaults. Run on an idle machine for real figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

GOAL = {256: 150.0, 512: 60.0}


WARM_BLOCK = 250
WORK_BASE = 10_000  # first timed index of the throughput runs (warm-up indices stay below it)
LAST_INDEX = 19_000  # timed indices stay below the default asset_bank_refresh (20,000): one bank generation


def _settle(r, start: int, max_n: int) -> int:
    """Render samples ``start, start + 1, ...`` with renderer ``r`` in blocks of ``WARM_BLOCK`` until a
    block makes no asset-cache miss (the steady state), at most ``max_n`` samples (at least 5).
    Returns how many were rendered."""
    n, top = 0, max(5, max_n)
    while n < top:
        m0 = r.asset_cache.misses
        k = min(WARM_BLOCK, top - n)
        for i in range(k):
            r.render(start + n + i, 0)
        n += k
        if r.asset_cache.misses == m0:
            break
    return n


def _work(size: int, start: int, seconds: float, write_dir: str | None, warm: int) -> tuple[int, float, float]:
    """Warm a fresh renderer's asset cache on indices from 0 (``_settle``, at most ``warm`` samples),
    then render from ``start`` for ``seconds`` s. Returns (samples, seconds, cache hit rate)."""
    cv2.setNumThreads(1)
    from synth import SampleRenderer, SynthConfig

    r = SampleRenderer(SynthConfig.default().replace(size=size))
    _settle(r, 0, warm)
    h0, m0 = r.asset_cache.hits, r.asset_cache.misses
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = r.render(start + n, 0)
        if write_dir:
            cv2.imwrite(os.path.join(write_dir, f"{start + n:08d}.jpg"), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(os.path.join(write_dir, f"{start + n:08d}.png"), s["mask"])
        n += 1
    dt = time.perf_counter() - t0
    h1, m1 = r.asset_cache.hits, r.asset_cache.misses
    return n, dt, (h1 - h0) / max(1, (h1 - h0) + (m1 - m0))


def bench_throughput(size: int, workers: int, seconds: float, write: bool, warm: int) -> tuple[float, float]:
    """(samples/s per worker, asset-cache hit rate). Worker k first fills its renderer's cache on
    indices from 0 (at most ``warm`` samples; the workers warm up alike, so their timed windows
    overlap), then times indices from ``WORK_BASE + 2000 k``: all of them in the run's first
    asset-bank generation (indices below ``asset_bank_refresh`` = 20,000), so the warm cache is
    the one the timed samples use."""
    from joblib import Parallel, delayed

    with tempfile.TemporaryDirectory() as d:
        wd = d if write else None
        if workers == 1:
            res = [_work(size, WORK_BASE, seconds, wd, warm)]
        else:
            par = Parallel(n_jobs=workers, backend="loky")
            res = par(delayed(_work)(size, WORK_BASE + k * 2_000, seconds, wd, warm) for k in range(workers))
    return float(np.mean([n / dt for n, dt, _ in res])), float(np.mean([h for _, _, h in res]))


def bench_effects(size: int, reps: int = 30) -> dict:
    from synth import SynthConfig
    from synth.effects import EFFECTS
    from synth.workers import tune_allocator

    tune_allocator()  # as in every renderer process
    rng = np.random.default_rng(0)
    img8 = cv2.resize(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (size, size))
    imgf = img8.astype(np.float32)
    out = {}
    for name, cls in EFFECTS.items():
        eff = cls.from_config(SynthConfig())
        params = [eff.sample_params(np.random.default_rng(i), img8.shape) for i in range(reps)]
        # as in the camera chain: effects with a gain map (vignette, lighting) act on the float
        # composite (and are fused into one pass there); everything else runs on uint8
        src = imgf if hasattr(cls, "gain") else img8
        cls.apply(src, **params[0])  # lazy imports / banks
        t0 = time.process_time()
        for p in params:
            cls.apply(src, **p)
        out[name] = (time.process_time() - t0) / reps * 1e3
    return out


def bench_keys(size: int, reps: int = 60) -> tuple[float, float]:
    """CPU ms per procedural key at the default size distribution (typical 0.1-0.6 x frame):
    (built afresh, from a warm asset bank)."""
    from backgrounds.cache import LRUCache
    from synth.keys import ProceduralKeys

    cv2.setNumThreads(1)
    k, rng = ProceduralKeys(), np.random.default_rng(0)
    lens = np.exp(rng.uniform(np.log(0.1), np.log(0.6), reps)) * size
    kw = dict(light_dir=(0.3, 0.4, 0.8), bank_seed=123, bank_size=4, cache=LRUCache(256))
    t0 = time.process_time()
    for i, L in enumerate(lens):
        k.sample_layers(rng, length_px=max(24.0, float(L)), angle_deg=7.0 * i, light_dir=(0.3, 0.4, 0.8))
    fresh = (time.process_time() - t0) / reps * 1e3
    for rep in range(2):  # first pass fills the bank slots, second is timed
        t0 = time.process_time()
        for i, L in enumerate(lens):
            k.sample_asset(rng, length_px=max(24.0, float(L)), angle_deg=7.0 * i, **kw)
    return fresh, (time.process_time() - t0) / reps * 1e3


def bench_cpu(size: int, n: int = 400, backend: str = "native", warm: int = 8000, bank: bool = True) -> float:
    """Single-process CPU ms/sample of the full default renderer once the asset cache has settled
    (``_settle``, at most ``warm`` samples; median of 4 blocks of ``n / 4`` samples: robust to a
    neighbour's burst on a shared machine)."""
    from synth import SampleRenderer, SynthConfig

    cv2.setNumThreads(1)
    over = {} if bank else {"asset_bank_size": 0, "distractor_bank_size": 0, "background_bank_size": 0}
    r = SampleRenderer(SynthConfig.default().replace(size=size, camera_backend=backend, **over))
    warm = _settle(r, 10_000_000, warm if bank else 0)  # bank off: 5 samples (lazy imports, compiled kernels)
    blocks, k = [], max(1, n // 4)
    for b in range(4):
        t0 = time.process_time()
        for i in range(b * k, (b + 1) * k):
            r.render(10_000_000 + warm + i, 0)
        blocks.append((time.process_time() - t0) / k * 1e3)
    return float(np.median(blocks))


def _reference_ms(img: np.ndarray, reps: int = 20) -> float:
    """CPU ms of a fixed reference workload (a Gaussian blur, a JPEG round trip and 300 dict
    entries, i.e. OpenCV + Python like the renderer): its drift is the machine's, not the code's."""
    t0 = time.process_time()
    for _ in range(reps):
        y = cv2.imdecode(cv2.imencode(".jpg", cv2.GaussianBlur(img, (0, 0), 2.0))[1], cv2.IMREAD_COLOR)
        d = {str(i): float(i) * 0.5 for i in range(300)}
        sum(d.values()) + int(y[0, 0, 0])
    return (time.process_time() - t0) / reps * 1e3


def bench_series(size: int, seconds: float, warm: int = 8000, block: int = 100) -> dict:
    """CPU ms/sample of the default renderer in blocks of ``block`` samples for ``seconds`` s (after
    ``_settle``), each block followed by the reference workload (``_reference_ms``). This machine's
    speed drifts by +-10% between 20-s windows, so the median of a few minutes of blocks is the
    figure to compare with the goal. Indices cycle within the first asset-bank generation."""
    from synth import SampleRenderer, SynthConfig

    cv2.setNumThreads(1)
    r = SampleRenderer(SynthConfig.default().replace(size=size))
    _settle(r, 0, warm)
    ref_img = np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8)
    ms, ref, i = [], [], WORK_BASE
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        if i + block > LAST_INDEX:
            i = WORK_BASE
        t0 = time.process_time()
        for k in range(block):
            r.render(i + k, 0)
        ms.append((time.process_time() - t0) / block * 1e3)
        ref.append(_reference_ms(ref_img))
        i += block
    a, b = np.array(ms), np.array(ref)
    quiet = b <= np.percentile(b, 25)  # blocks next to the fastest quarter of reference runs
    return {"blocks": len(a), "median": float(np.median(a)), "q25": float(np.percentile(a, 25)),
            "q75": float(np.percentile(a, 75)), "ref_median": float(np.median(b)), "ref_min": float(b.min()),
            "ref_max": float(b.max()), "corr": float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 else float("nan"),
            "quiet_median": float(np.median(a[quiet])), "quiet_ref": float(np.median(b[quiet])),
            "quiet_blocks": int(quiet.sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per configuration")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--series-s", type=float, default=0.0,
                    help="also time blocks of 100 samples for this many seconds per size (median, IQR) "
                         "next to a fixed reference workload: the drift-robust CPU figure (e.g. 300)")
    ap.add_argument("--warm", type=int, default=8000,
                    help="most samples rendered per process before timing (stops once the asset cache settles)")
    a = ap.parse_args(argv)
    if not 0 <= a.warm <= WORK_BASE:
        ap.error(f"--warm must be in [0, {WORK_BASE}] (warm-up indices stay below the timed ones), got {a.warm}")
    print(f"cpu count {os.cpu_count()}; goal per core: " + ", ".join(f"{k}px >= {v:.0f}/s" for k, v in GOAL.items())
          + f"; warm-up per process: until a block of {WARM_BLOCK} samples has no asset-cache miss, "
            f"at most {a.warm} samples")
    for size in a.sizes:
        goal = GOAL.get(size)
        ms = {}
        for backend, bank in (("native", True), ("native", False), ("imgaug", True)):
            ms[(backend, bank)] = m = bench_cpu(size, backend=backend, warm=a.warm, bank=bank)
            ratio = f"  ({1e3 / m / goal:.2f}x goal)" if goal else ""
            print(f"size {size:4d}  camera_backend {backend:6s} asset bank {'on ' if bank else 'off'} "
                  f"{m:6.2f} CPU ms/sample = {1e3 / m:6.1f}/s per core{ratio}", flush=True)
        print(f"size {size}: asset bank speed-up {ms[('native', False)] / ms[('native', True)]:.2f}x", flush=True)
        if a.series_s > 0:
            sr = bench_series(size, a.series_s, a.warm)
            ratio = f"  ({1e3 / sr['median'] / goal:.2f}x goal)" if goal else ""
            print(f"size {size}: series of {sr['blocks']} blocks over {a.series_s:.0f} s: median {sr['median']:.2f} CPU "
                  f"ms/sample = {1e3 / sr['median']:.1f}/s per core{ratio} (IQR {1e3 / sr['q75']:.1f}-{1e3 / sr['q25']:.1f}/s); "
                  f"reference workload {sr['ref_median']:.2f} ms (range {sr['ref_min']:.2f}-{sr['ref_max']:.2f}), "
                  f"correlation with the sample time {sr['corr']:.2f}", flush=True)
            qr = f" ({1e3 / sr['quiet_median'] / goal:.2f}x goal)" if goal else ""
            print(f"size {size}: the {sr['quiet_blocks']} blocks next to the fastest quarter of reference runs "
                  f"(median {sr['quiet_ref']:.2f} ms): median {sr['quiet_median']:.2f} CPU ms/sample = "
                  f"{1e3 / sr['quiet_median']:.1f}/s per core{qr}", flush=True)
        fresh, banked = bench_keys(size)
        print(f"size {size}: key rendering {fresh:.2f} CPU ms/key afresh, {banked:.2f} from the bank "
              f"({fresh / banked:.2f}x)", flush=True)
        for w in a.workers:
            for write in (False, True):
                sps, hit = bench_throughput(size, w, a.seconds, write, a.warm)
                ratio = f"  ({sps / goal:.2f}x goal)" if goal else ""
                print(f"size {size:4d}  workers {w}  {'files ' if write else 'memory'}  {sps:7.1f} samples/s per worker"
                      f"{ratio}  (asset cache hits {100 * hit:.0f}%)", flush=True)
        eff = bench_effects(size)
        print(f"size {size}: CPU ms/sample per effect (when applied): " + ", ".join(f"{k} {v:.2f}" for k, v in eff.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
