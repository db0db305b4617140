"""Generation throughput: samples/s for 1 and 2 workers under loky and under a local Dask cluster.

Usage::

    .venv/bin/python bench/bench_scale.py [--n 64] [--size 256] [--workers 1 2] [--format folder]

For every worker count it measures steady-state throughput of ``synth.generate.generate_dataset``
with the real ``synth.SampleRenderer`` (procedural backgrounds, so no data folder is needed):
- loky: one warm-up run (starts the reusable process pool), then the timed run;
- dask: a ``distributed.LocalCluster`` on 127.0.0.1 (processes, 1 thread each) started once, a
  warm-up run through its scheduler address, then the timed run; cluster start-up is reported
  separately and not counted in samples/s.
Each timed run writes a fresh output folder in a temporary directory (rendering + JPEG/PNG
encoding + atomic writes). Prints a table with the ratio dask/loky (goal >= 0.9). With the
defaults it takes about 1-2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synth import SynthConfig  # noqa: E402
from synth.generate import build_renderer, generate_dataset  # noqa: E402


def _timed(tmp: Path, name: str, **kw) -> dict:
    warm = generate_dataset(tmp / f"{name}-warm", progress=False, **{**kw, "n": max(2, kw["n"] // 8)})
    del warm
    return generate_dataset(tmp / name, progress=False, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="samples per timed run (default 64)")
    ap.add_argument("--size", type=int, default=256, help="sample side, px (default 256)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    ap.add_argument("--format", default="folder", help="folder | webdataset | coco (default folder)")
    ap.add_argument("--chunk-size", type=int, default=8, help="samples per task (default 8)")
    args = ap.parse_args(argv)

    from distributed import LocalCluster

    config = SynthConfig(size=args.size)
    renderer = build_renderer(config, "procedural")
    common = dict(n=args.n, run_seed=0, config=config, backgrounds_spec="procedural", renderer=renderer,
                  fmt=args.format, chunk_size=args.chunk_size, shard_size=args.chunk_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="keysynth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for w in args.workers:
            loky = _timed(tmp, f"loky{w}", workers=w, backend="loky", **common)
            t = time.perf_counter()
            cluster = LocalCluster(host="127.0.0.1", processes=True, n_workers=w, threads_per_worker=1,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            startup = time.perf_counter() - t
            try:
                dask = _timed(tmp, f"dask{w}", workers=w, backend="dask", scheduler=cluster.scheduler_address, **common)
            finally:
                cluster.close()
            ratio = dask["samples_per_s"] / loky["samples_per_s"]
            rows.append((w, loky["samples_per_s"], dask["samples_per_s"], ratio, startup))
            print(f"workers={w}: loky {loky['samples_per_s']:.1f}/s, dask {dask['samples_per_s']:.1f}/s", flush=True)

    print(f"\nkeysynth synth throughput: n={args.n}, {args.size} px, format={args.format}, chunk={args.chunk_size}")
    print(f"{'workers':>7} | {'loky samples/s':>14} | {'dask samples/s':>14} | {'dask/loky':>9} | {'dask start s':>12}")
    print("-" * 70)
    for w, lk, dk, ratio, startup in rows:
        flag = "" if ratio >= 0.9 else "  (< 0.9 goal)"
        print(f"{w:>7} | {lk:>14.1f} | {dk:>14.1f} | {ratio:>9.2f} | {startup:>12.1f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
