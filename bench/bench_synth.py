"""Throughput of the scene renderer: samples/s per worker at 256 and 512 px, 1 and 2 workers
(joblib loky), in memory and writing jpg+png files, plus CPU ms/sample of each camera effect (both
camera backends: native and imgaug), of key rendering, and single-process CPU ms/sample
(time.process_time: robust on a shared machine) with the ratio to the goal.

Usage: .venv/bin/python bench/bench_synth.py [--seconds 6] [--sizes 256 512]
Goal (per core, default config, in memory): >= 150 samples/s at 256 px, >= 60 at 512 px.
Runtime < 3 minutes with the defaults. Run on an idle machine for real figures.
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


def _work(size: int, start: int, seconds: float, write_dir: str | None) -> tuple[int, float]:
    cv2.setNumThreads(1)
    from synth import SampleRenderer, SynthConfig

    r = SampleRenderer(SynthConfig.default().replace(size=size))
    for i in range(5):  # warm caches (backgrounds, noise bank, imports)
        r.render(10_000_000 + start + i, 1)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = r.render(start + n, 0)
        if write_dir:
            cv2.imwrite(os.path.join(write_dir, f"{start + n:08d}.jpg"), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(os.path.join(write_dir, f"{start + n:08d}.png"), s["mask"])
        n += 1
    return n, time.perf_counter() - t0


def bench_throughput(size: int, workers: int, seconds: float, write: bool) -> float:
    from joblib import Parallel, delayed

    with tempfile.TemporaryDirectory() as d:
        wd = d if write else None
        if workers == 1:
            res = [_work(size, 0, seconds, wd)]
        else:
            res = Parallel(n_jobs=workers, backend="loky")(
                delayed(_work)(size, k * 1_000_000, seconds, wd) for k in range(workers))
    return float(np.mean([n / dt for n, dt in res]))  # per worker


def bench_effects(size: int, reps: int = 30) -> dict:
    from synth import SynthConfig
    from synth.effects import EFFECTS

    rng = np.random.default_rng(0)
    img8 = cv2.resize(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (size, size))
    imgf = img8.astype(np.float32)
    out = {}
    for name, cls in EFFECTS.items():
        eff = cls.from_config(SynthConfig())
        params = [eff.sample_params(np.random.default_rng(i), img8.shape) for i in range(reps)]
        src = img8 if name in ("color", "jpeg", "imgaug_camera") else imgf
        cls.apply(src, **params[0])  # lazy imports / banks
        t0 = time.process_time()
        for p in params:
            cls.apply(src, **p)
        out[name] = (time.process_time() - t0) / reps * 1e3
    return out


def bench_keys(size: int, reps: int = 40) -> float:
    """CPU ms per procedural key at the default size distribution (typical 0.1-0.6 x frame)."""
    from synth.keys import ProceduralKeys

    cv2.setNumThreads(1)
    k, rng = ProceduralKeys(), np.random.default_rng(0)
    lens = np.exp(rng.uniform(np.log(0.1), np.log(0.6), reps)) * size
    t0 = time.process_time()
    for i, L in enumerate(lens):
        k.sample_layers(rng, length_px=max(24.0, float(L)), angle_deg=7.0 * i, light_dir=(0.3, 0.4, 0.8))
    return (time.process_time() - t0) / reps * 1e3


def bench_cpu(size: int, n: int = 60, backend: str = "native") -> float:
    """Single-process CPU ms/sample of the full default renderer."""
    from synth import SampleRenderer, SynthConfig

    cv2.setNumThreads(1)
    r = SampleRenderer(SynthConfig.default().replace(size=size, camera_backend=backend))
    for i in range(5):
        r.render(10_000_000 + i, 1)
    t0 = time.process_time()
    for i in range(n):
        r.render(i, 0)
    return (time.process_time() - t0) / n * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per configuration")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args(argv)
    print(f"cpu count {os.cpu_count()}; goal per core: " + ", ".join(f"{k}px >= {v:.0f}/s" for k, v in GOAL.items()))
    for size in a.sizes:
        goal = GOAL.get(size)
        for backend in ("native", "imgaug"):
            ms = bench_cpu(size, backend=backend)
            ratio = f"  ({1e3 / ms / goal:.2f}x goal)" if goal else ""
            print(f"size {size:4d}  camera_backend {backend:6s}  {ms:6.2f} CPU ms/sample = {1e3 / ms:6.1f}/s per core{ratio}",
                  flush=True)
        print(f"size {size}: key rendering {bench_keys(size):.2f} CPU ms/key", flush=True)
        for w in a.workers:
            for write in (False, True):
                sps = bench_throughput(size, w, a.seconds, write)
                goal = GOAL.get(size)
                ratio = f"  ({sps / goal:.2f}x goal)" if goal else ""
                print(f"size {size:4d}  workers {w}  {'files ' if write else 'memory'}  {sps:7.1f} samples/s per worker{ratio}",
                      flush=True)
        eff = bench_effects(size)
        print(f"size {size}: CPU ms/sample per effect (when applied): " + ", ".join(f"{k} {v:.2f}" for k, v in eff.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
