"""Scaled-down soak: train on the live stream for N minutes, sample RSS, report memory growth.

    python bench/soak.py --minutes 3 --size 128 --workers 2 [--producer synth|toy]

Samples the resident set size (psutil) of the trainer process and of each generator worker every
``--every`` seconds, fits a least-squares line to the second half of the samples (after warm-up:
allocator pools and caches fill first) and prints the slope in MiB/min per process, flagging
``GROWS`` when it exceeds ``--tolerance`` MiB/min.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import numpy as np
import psutil


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--producer", choices=["synth", "toy"], default="synth")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--tolerance", type=float, default=2.0, help="MiB/min counted as growth")
    args = ap.parse_args(argv)

    import torch

    from train.config import TrainConfig
    from train.toy import ToyDiscRenderer
    from train.trainer import make_producer, train

    cfg = TrainConfig(out=tempfile.mkdtemp(prefix="keysynth-soak-"), image_size=args.size, encoder_name=args.encoder,
                      batch_size=args.batch, steps=10**9, num_workers=args.workers, buffer_size=64, eval_every=0,
                      val_size=0, checkpoint_every=0, log_every=20, progress=False)
    producer = make_producer(cfg) if args.producer == "synth" else ToyDiscRenderer(args.size)
    me = psutil.Process()
    samples: dict[str, list[tuple[float, float]]] = {}
    t0 = time.monotonic()
    deadline = t0 + 60 * args.minutes
    done = threading.Event()

    def sampler():
        while not done.is_set():
            now = time.monotonic() - t0
            procs = [("trainer", me)] + [(f"worker-{c.pid}", c) for c in me.children(recursive=True)]
            for name, p in procs:
                try:
                    samples.setdefault(name, []).append((now, p.memory_info().rss / 2**20))
                except psutil.Error:
                    pass
            done.wait(args.every)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    torch.set_num_threads(max(1, (psutil.cpu_count() or 2) - args.workers))
    summary = train(cfg, producer=producer, should_stop=lambda step: time.monotonic() > deadline)
    done.set()
    th.join()
    print(f"steps: {summary['step']} in {args.minutes:.1f} min; stream: "
          f"gen {summary['stream'].get('generated', 0)} samples, reuse {summary['stream'].get('mean_reuse', 0):.2f}")
    print(f"{'process':>16} {'n':>4} {'start MiB':>10} {'25%':>7} {'50%':>7} {'75%':>7} {'end MiB':>8} "
          f"{'slope MiB/min (2nd half)':>25}  verdict")
    grows = False
    for name, pts in samples.items():
        a = np.array(pts)
        if len(a) < 4:
            continue
        tail = a[len(a) // 2:]
        slope = np.polyfit(tail[:, 0] / 60, tail[:, 1], 1)[0] if len(tail) >= 2 else 0.0
        verdict = "GROWS" if slope > args.tolerance else "flat"
        grows |= verdict == "GROWS"
        q = [a[min(len(a) - 1, int(f * len(a))), 1] for f in (0.25, 0.5, 0.75)]
        print(f"{name:>16} {len(a):>4} {a[0, 1]:>10.1f} {q[0]:>7.1f} {q[1]:>7.1f} {q[2]:>7.1f} {a[-1, 1]:>8.1f} "
              f"{slope:>25.2f}  {verdict}")
    print("RESULT:", "memory grows" if grows else "no growth detected")
    return 1 if grows else 0


if __name__ == "__main__":
    raise SystemExit(main())
