"""Training recipes compared by real-photo IoU per CPU-minute.

Each candidate (encoder, training size, decoder width, batch, learning rate) trains on the live
synthetic stream for the same wall-clock budget with the same threads; the step count is fitted to
the budget by timing a few steps first, so every cosine schedule completes. Evaluations spread
over the run log the synthetic validation IoU (has the model learned the task at all?) next to
the real-set IoU (does it transfer? the gap is the domain gap), each against the CPU-minutes
spent so far (this process and its generator workers). Prints one table and writes
``recipe_curves.png`` (both IoUs against CPU-minutes per candidate).

Usage::

    python bench/recipe.py --real ../shared/data/real_keys_dev --minutes 10 --out runs/recipe
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CANDIDATES = {
    "mnv2-192-d128": {"encoder_name": "mobilenet_v2", "image_size": 192, "decoder_width": 128},
    "mnv2-256-d256": {"encoder_name": "mobilenet_v2", "image_size": 256, "decoder_width": 256, "batch_size": 8,
                      "lr": 1e-3},
    "mnv2-160-d128": {"encoder_name": "mobilenet_v2", "image_size": 160, "decoder_width": 128, "batch_size": 16},
    "r18-192-d128": {"encoder_name": "resnet18", "image_size": 192, "decoder_width": 128},
    "effb0-192-d128": {"encoder_name": "efficientnet-b0", "image_size": 192, "decoder_width": 128},
}


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _steps_for(cfg, minutes: float) -> int:
    """Steps of ``cfg``'s model that fit ``minutes`` (3 timed steps on random data, 70 % of the budget)."""
    import torch
    import torch.nn.functional as F

    from real_eval.model_io import build_model, default_model_spec

    model = build_model(default_model_spec(encoder_name=cfg.encoder_name, image_size=cfg.image_size,
                                           decoder_width=cfg.decoder_width))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    y = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return max(20, int(minutes * 60 * 0.7 / min(times[1:])))


def run_candidate(name: str, args) -> list[dict]:
    from train.config import TrainConfig
    from train.trainer import train

    out = Path(args.out) / name
    done = out / "curve.json"
    if done.is_file():
        return json.loads(done.read_text())
    base = dict(out=str(out), seed=args.seed, device="cpu", num_workers=1, threads=args.threads,
                backgrounds=args.backgrounds, real_dir=args.real, val_size=32, progress=False, overwrite=True,
                checkpoint_every=0, log_every=10)
    cfg = TrainConfig(**{**base, **CANDIDATES[name]})
    steps = _steps_for(cfg, args.minutes)
    cfg = TrainConfig(**{**base, **CANDIDATES[name], "steps": steps, "warmup": max(5, steps // 20),
                         "eval_every": max(1, steps // args.evals)})
    clock: dict[int, float] = {}
    c0 = _cpu_s()
    deadline = time.monotonic() + args.minutes * 60 * 1.3

    def note(step: int) -> bool:
        clock[step] = (_cpu_s() - c0) / 60
        return time.monotonic() > deadline

    train(cfg, should_stop=note)
    with open(out / "log.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("real_iou") or r.get("val_iou")]
    curve = [{"step": int(r["step"]), "cpu_min": clock.get(int(r["step"]), float("nan")),
              "val_iou": float(r["val_iou"] or "nan"), "real_iou": float(r["real_iou"] or "nan"),
              "img_per_s": float(r["img_per_s"] or "nan")} for r in rows]
    tmp = done.with_name(".tmp-curve.json")
    tmp.write_text(json.dumps(curve, indent=2))
    os.replace(tmp, done)
    return curve


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, curve in curves.items():
        x = [c["cpu_min"] for c in curve]
        axes[0].plot(x, [c["val_iou"] for c in curve], marker="o", label=name)
        axes[1].plot(x, [c["real_iou"] for c in curve], marker="o", label=name)
    for ax, title in zip(axes, ("synthetic validation IoU", "real-photo IoU (per-image mean)")):
        ax.set_title(title)
        ax.set_xlabel("training CPU-minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("IoU")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True, help="real annotated set for the real-photo IoU")
    shared_bg = ROOT.parent / "shared" / "data" / "backgrounds"
    p.add_argument("--backgrounds", default=str(shared_bg) if shared_bg.is_dir() else "default")
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget per candidate")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = cores minus workers)")
    p.add_argument("--evals", type=int, default=4, help="evaluations per run")
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/recipe")
    args = p.parse_args(argv)
    curves = {}
    for name in args.candidates:
        print(f"[recipe] {name} for {args.minutes:g} min ...", flush=True)
        curves[name] = run_candidate(name, args)
    print(f"\n{args.minutes:g} wall-minutes per candidate, seed {args.seed}\n")
    print("| candidate | steps | img/s | CPU-min | synthetic val IoU | real IoU (mean) |")
    print("|---|---|---|---|---|---|")
    for name, curve in curves.items():
        last = curve[-1] if curve else {}
        print(f"| {name} | {last.get('step', 0)} | {last.get('img_per_s', float('nan')):.1f} | "
              f"{last.get('cpu_min', float('nan')):.1f} | {last.get('val_iou', float('nan')):.3f} | "
              f"{last.get('real_iou', float('nan')):.3f} |")
    plot(curves, Path(args.out) / "recipe_curves.png")
    print(f"\nwrote {Path(args.out) / 'recipe_curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
