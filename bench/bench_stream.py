"""Train throughput fed by the live stream vs by a fixed in-memory batch (upper bound).

    python bench/bench_stream.py --sizes 256 512 --steps 6 --workers 2 [--producer toy|synth]

For each size: images/s of the same train step (model, AdamW, Dice+BCE+surface loss) fed (a) by one
fixed batch kept in memory, (b) by :class:`train.stream.ShmStream` with generator workers; prints
the ratio (b)/(a) and the data-wait share of step time. A ratio well below 1 means the generator
is the bottleneck (add workers: nnU-Net uses 20-32 augmentation processes per A100). On a CPU box
the workers compete with the trainer for cores, so read CPU figures as a lower bound; for a fair
CPU comparison give the trainer the same cores in both runs (``--threads 1 --workers 1`` on a
2-core machine: the fixed run leaves the second core idle, the stream run gives it to the worker).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from real_eval.model_io import build_model, default_model_spec
from train.distmaps import signed_distance_map
from train.losses import segmentation_loss
from train.stream import ShmStream


def make_producer(kind: str, size: int):
    if kind == "synth":
        try:
            from train.config import TrainConfig
            from train.trainer import make_producer as mp

            return mp(TrainConfig(image_size=size)), "synth"
        except Exception as exc:  # synth not available yet
            print(f"synth producer unavailable ({exc}); using the toy producer")
    from train.toy import ToyDiscRenderer

    return ToyDiscRenderer(size), "toy"


def step_fn(model, opt, spec, device):
    mean = torch.tensor(spec["mean"], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec["std"], device=device).view(1, 3, 1, 1) * 255

    def step(image, mask, dist):
        x = ((torch.from_numpy(image).to(device).permute(0, 3, 1, 2).float() - mean) / std).contiguous(
            memory_format=torch.channels_last)
        loss, _ = segmentation_loss(model(x).float(), torch.from_numpy(mask).to(device),
                                    torch.from_numpy(dist).to(device), boundary_weight=0.01)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def run(size: int, args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = default_model_spec(encoder_name=args.encoder, image_size=size)
    model = build_model(spec).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    step = step_fn(model, opt, spec, device)
    producer, kind = make_producer(args.producer, size)
    s0 = producer.render(0, 1)
    img = np.stack([s0["image"]] * args.batch)
    mask = np.stack([s0["mask"]] * args.batch)
    dist = np.stack([signed_distance_map(s0["mask"])] * args.batch)
    step(img, mask, dist)  # warm-up
    t = time.perf_counter()
    for _ in range(args.steps):
        step(img, mask, dist)
    fixed = args.steps * args.batch / (time.perf_counter() - t)
    with ShmStream(producer, batch_size=args.batch, num_workers=args.workers, buffer_size=max(64, 4 * args.batch),
                   run_seed=1, max_reuse=args.max_reuse, with_dist=True) as stream:
        b = stream.next_batch()  # start-up (spawn + first samples) is not counted
        step(b.image, b.mask, b.dist)
        stream.stats()
        wait, t = 0.0, time.perf_counter()
        for _ in range(args.steps):
            b = stream.next_batch()
            wait += b.wait_s
            step(b.image, b.mask, b.dist)
        el = time.perf_counter() - t
        st = stream.stats()
    streamed = args.steps * args.batch / el
    return {"size": size, "producer": kind, "fixed_img_s": fixed, "stream_img_s": streamed, "ratio": streamed / fixed,
            "data_wait_pct": 100 * wait / el, "gen_per_s": st["gen_per_s"], "mean_reuse": st["mean_reuse"],
            "stalled_batches": st["stalled_batches"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-reuse", type=int, default=4)
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--producer", choices=["synth", "toy"], default="synth")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{'size':>5} {'producer':>8} {'fixed img/s':>12} {'stream img/s':>13} {'ratio':>6} {'wait %':>7} "
          f"{'gen/s':>7} {'reuse':>6} {'stalled':>7}")
    for size in args.sizes:
        r = run(size, args)
        print(f"{r['size']:>5} {r['producer']:>8} {r['fixed_img_s']:>12.2f} {r['stream_img_s']:>13.2f} {r['ratio']:>6.2f} "
              f"{r['data_wait_pct']:>7.1f} {r['gen_per_s']:>7.1f} {r['mean_reuse']:>6.2f} {r['stalled_batches']:>7d}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
