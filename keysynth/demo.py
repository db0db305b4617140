"""``keysynth demo``: the whole path once — synth -> live-stream training -> evaluation -> report.

Steps (each output written atomically under ``--out``):

1. ``preview.png`` — a grid of synthetic samples with mask contours (+ ``preview_params.png``,
   histograms of every sampled parameter);
2. ``synth_test/`` — a held-out synthetic set generated with a joblib worker pool
   (``keysynth synth`` format), used for evaluation when no real set is given;
3. ``train/`` — a small U-Net trained on the live generator stream for ``--steps`` steps or
   ``--minutes`` of wall time: without ``--steps`` the step count is fitted to the budget by timing
   a few training steps first, so the cosine schedule completes (re-running resumes from
   ``last.pt``);
4. ``eval_real/`` (with ``--real``) and ``eval_synth/`` — ``keysynth eval`` outputs;
5. ``predictions.png`` (real or held-out photos with predicted contours in red, ground truth in
   green) and ``report.md`` with every figure.

With no data at all it uses procedural keys over procedural and bundled backgrounds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from keysynth.common import atomic_write_text

__all__ = ["register", "run_demo"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate, train on the live stream, evaluate and report, in one go",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--real", default=None, metavar="DIR",
                   help="real annotated photos: DIR/images/* + DIR/masks/*.png with matching names")
    p.add_argument("--backgrounds", default=None, metavar="DIR|SPEC",
                   help="background photos folder, or default|procedural|bundled (default: procedural + bundled)")
    p.add_argument("--minutes", type=float, default=5.0, help="training wall-time budget, minutes (default 5)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (cosine schedule length; default: fitted to --minutes)")
    p.add_argument("--size", type=int, default=None, help="sample / model input side, px (default: train's, 192)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size (default: train's, 12)")
    p.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)),
                   help="generator worker processes (default: half the CPU cores, 1..4)")
    p.add_argument("--encoder", default=None, help="smp encoder name (default: train's default, small)")
    p.add_argument("--heldout", type=int, default=32, help="held-out synthetic test samples (default 32)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.set_defaults(func=run_demo)



def overlay_grid(model, model_spec: dict, samples: list, *, strategy: str, device: str, threshold: float = 0.5,
                 n: int = 8, tile: int = 320) -> np.ndarray:
    """uint8 RGB grid of up to ``n`` photos with predicted (red) and ground-truth (green) contours,
    each letterboxed into a ``tile`` x ``tile`` cell."""
    import cv2

    from real_eval.evaluate import make_overlay
    from real_eval.strategies import predict_probs

    cells = []
    for s in samples[:n]:
        prob = predict_probs(model, model_spec, s.image, strategy=strategy, device=device)
        ov = make_overlay(s.image, s.mask, prob >= threshold, max_side=tile)
        cell = np.full((tile, tile, 3), 24, np.uint8)
        h, w = ov.shape[:2]
        cell[(tile - h) // 2:(tile - h) // 2 + h, (tile - w) // 2:(tile - w) // 2 + w] = ov
        cv2.putText(cell, s.name[:28], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        cells.append(cell)
    cols = min(4, len(cells))
    rows = -(-len(cells) // cols)
    grid = np.full((rows * tile, cols * tile, 3), 24, np.uint8)
    for i, c in enumerate(cells):
        r, k = divmod(i, cols)
        grid[r * tile:(r + 1) * tile, k * tile:(k + 1) * tile] = c
    return grid


def steps_for_budget(*, encoder: str, size: int, batch_size: int, minutes: float, device: str,
                     share: float = 0.75) -> int:
    """Training steps that fit in ``minutes``: times 3 optimizer steps of the model on random data
    (the first is warm-up and discarded) and keeps ``share`` of the budget for training proper
    (the rest goes to generator workers competing for the CPU, evaluation and checkpoints)."""
    import torch
    import torch.nn.functional as F

    from real_eval.model_io import build_model, default_model_spec

    model = build_model(default_model_spec(encoder_name=encoder, image_size=size)).to(device)  # default decoder
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 3, size, size, device=device)
    y = torch.rand(batch_size, 1, size, size, device=device)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return max(10, int(minutes * 60.0 * share / min(times[1:])))


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _metrics_table(title: str, result: dict) -> list[str]:
    names = ("iou", "dice", "precision", "recall", "boundary_f1", "boundary_iou")
    micro, mean = result["overall"]["micro"], result["overall"]["mean"]
    ci = result["overall"].get("mean_ci", {})
    lines = [f"### {title} ({result['overall']['n_images']} images)", "",
             "| metric | micro (pooled pixels) | per-image mean | 95% CI of the mean |", "|---|---|---|---|"]
    for k in names:
        if k in micro or k in mean:
            lo_hi = ci.get(k)
            ci_txt = f"{lo_hi[0]:.3f} - {lo_hi[1]:.3f}" if lo_hi else ""
            lines.append(f"| {k} | {_fmt(micro.get(k, ''))} | {_fmt(mean.get(k, ''))} | {ci_txt} |")
    lines += ["", "| image | IoU | Dice | boundary F1 | key share of image |", "|---|---|---|---|---|"]
    for r in result["per_image"]:
        lines.append(f"| {r['name']} | {_fmt(r.get('iou'))} | {_fmt(r.get('dice'))} | "
                     f"{_fmt(r.get('boundary_f1'))} | {_fmt(r.get('key_share', ''))} |")
    return lines + [""]


def run_demo(args: argparse.Namespace) -> int:
    """preview -> held-out synthetic set (joblib pool) -> training on the live stream -> evaluation
    (synthetic, and ``--real`` if given, next to the shipped model) -> ``report.md``."""
    from backgrounds import make_backgrounds
    from synth import SynthConfig
    from synth.generate import generate_dataset
    from synth.preview import write_preview
    from train.config import TrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.size = args.size or TrainConfig().image_size
    args.batch_size = args.batch_size or TrainConfig().batch_size
    if args.real is not None and not Path(args.real).is_dir():
        raise FileNotFoundError(f"--real {args.real} is not a folder; it needs images/ and masks/ inside")
    bg_spec = args.backgrounds or "default"
    backgrounds = make_backgrounds(bg_spec)  # fails early with a clear error on a bad folder
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    config = SynthConfig.default().replace(size=args.size)
    t = time.perf_counter()
    write_preview(out / "preview.png", n=16, config=config, run_seed=args.seed, backgrounds=backgrounds,
                  hist_png=out / "preview_params.png")
    timings["preview_s"] = time.perf_counter() - t
    print(f"[demo] wrote {out / 'preview.png'}")

    t = time.perf_counter()
    gen = generate_dataset(out / "synth_test", n=args.heldout, run_seed=args.seed + 1_000_003, config=config,
                           backgrounds_spec=bg_spec, workers=args.workers, backend="loky", progress=True)
    timings["heldout_s"] = time.perf_counter() - t
    print(f"[demo] held-out synthetic set: {out / 'synth_test'}")

    t = time.perf_counter()
    summary, device = _demo_train(args, out / "train", bg_spec)
    timings["train_s"] = time.perf_counter() - t
    ckpt = Path(summary["best"] or summary["last"])
    print(f"[demo] trained {summary['step']} steps -> {ckpt}")

    t = time.perf_counter()
    spec, results, shipped = _demo_evaluate(args, out, ckpt, device)
    timings["eval_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all
    _demo_report(args, out, bg_spec, spec, ckpt, summary, gen, timings, results, shipped)
    print(f"[demo] wrote {out / 'report.md'} and {out / 'predictions.png'} in {timings['total_s']:.0f} s")
    return 0


def _demo_train(args: argparse.Namespace, train_dir: Path, bg_spec: str) -> tuple[dict, str]:
    """Train for ``--minutes`` (steps fitted to the budget; an interrupted run is resumed with its
    own schedule); returns the training summary and the device used."""
    from train.config import TrainConfig
    from train.trainer import train

    device = "cuda" if args.device in ("auto", "cuda") and _cuda() else "cpu"
    encoder = args.encoder or TrainConfig().encoder_name
    resuming = (train_dir / "checkpoints" / "last.pt").is_file()
    if resuming and not args.steps:  # keep the interrupted run's schedule
        steps = TrainConfig.from_yaml(train_dir / "config.yaml").steps
    else:
        steps = args.steps or steps_for_budget(encoder=encoder, size=args.size, batch_size=args.batch_size,
                                               minutes=args.minutes, device=device)
    tcfg = TrainConfig(
        out=str(train_dir), seed=args.seed, device=device, image_size=args.size, steps=steps, encoder_name=encoder,
        batch_size=args.batch_size, num_workers=args.workers, backgrounds=bg_spec, real_dir=args.real,
        warmup=max(1, min(100, steps // 10)), eval_every=max(1, steps // 3), val_size=32,
        checkpoint_every=max(1, steps // 3), resume="auto" if resuming else None)
    deadline = time.monotonic() + args.minutes * 60.0 * 1.25  # safety cap; steps fit the budget
    return train(tcfg, should_stop=lambda step: time.monotonic() > deadline), device


def _demo_evaluate(args: argparse.Namespace, out: Path, ckpt: Path, device: str) -> tuple[dict, dict, list[str]]:
    """Evaluate the demo model on the held-out synthetic set (and ``--real``), write
    ``predictions.png``; returns its spec, the results per set and the shipped-model comparison."""
    from real_eval.dataset import load_real_set
    from real_eval.evaluate import evaluate_model
    from real_eval.model_io import load_checkpoint
    from real_eval.predict import atomic_write_png
    from real_eval.strategies import DEFAULT_STRATEGY

    model, spec = load_checkpoint(ckpt, device)
    sets: dict[str, list] = {"synth": load_real_set(out / "synth_test")}
    if args.real:
        sets["real"] = load_real_set(args.real)
    threshold = float(spec.get("threshold", 0.5))  # read off its synthetic validation samples in training
    results = {name: evaluate_model(model, spec, samples, device=device, strategy=DEFAULT_STRATEGY,
                                    threshold=threshold, out_dir=out / f"eval_{name}",
                                    title=f"demo model on {name} set")
               for name, samples in sets.items()}
    shipped = _shipped_model_lines(sets, results, device)
    shown = "real" if args.real else "synth"
    atomic_write_png(out / "predictions.png",
                     overlay_grid(model, spec, sets[shown], strategy=DEFAULT_STRATEGY, device=device,
                                  threshold=threshold))
    return spec, results, shipped


def _demo_report(args, out: Path, bg_spec: str, spec: dict, ckpt: Path, summary: dict, gen: dict,
                 timings: dict, results: dict, shipped: list[str]) -> None:
    """``report.md`` (settings, timings, metric tables, the shipped-model comparison) and ``timings.json``."""
    from real_eval.strategies import DEFAULT_STRATEGY

    hist = summary.get("history") or []
    first_loss = next((r.get("loss") for r in hist if r.get("loss") not in (None, "")), None)
    last_loss = next((r.get("loss") for r in reversed(hist) if r.get("loss") not in (None, "")), None)
    lines = [
        "# keysynth demo report", "",
        f"- backgrounds: `{bg_spec}`; keys: procedural; sample size {args.size} px; seed {args.seed}",
        f"- model: {spec['arch']} / {spec['encoder_name']} at {spec['image_size']} px; checkpoint `{ckpt}`",
        f"- training: {summary['step']} steps of batch {args.batch_size} on the live stream "
        f"({args.workers} generator workers); loss {_fmt(first_loss)} -> {_fmt(last_loss)}",
        f"- held-out synthetic set: {args.heldout} samples with {args.workers} joblib workers in "
        f"{timings['heldout_s']:.1f} s ({gen['samples_per_s']:.1f} samples/s)",
        f"- inference strategy: `{DEFAULT_STRATEGY}`, threshold {float(spec.get('threshold', 0.5)):.2f} "
        "(read off the held-out synthetic validation samples during training)",
        "- wall time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items()), "",
        "![samples](preview.png)", "", "![predictions](predictions.png)", "",
        "## Metrics", "",
    ]
    if "real" in results:
        lines += _metrics_table(f"Real photos: `{args.real}`", results["real"])
    lines += _metrics_table("Held-out synthetic samples", results["synth"])
    lines += shipped
    lines += ["Boundary F1: Csurka et al., BMVC 2013 (tolerance 0.008 of the diagonal); "
              "Boundary IoU: Cheng et al., CVPR 2021. Full reports: `eval_*/report.html`.", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=2))


def _shipped_model_lines(sets: dict[str, list], results: dict[str, dict], device: str) -> list[str]:
    """Report lines comparing the demo model with the shipped one on the same sets (mean IoU,
    Dice, boundary F1, each at that model's own threshold and strategy); a note if none is installed."""
    from real_eval.calibrate import check_disjoint, photos_seen_by
    from real_eval.evaluate import evaluate_model
    from real_eval.model_io import load_checkpoint

    try:
        model, spec = load_checkpoint(None, device)
    except (FileNotFoundError, ValueError) as exc:
        return ["## Shipped model", "", f"Not compared: {exc}", ""]
    lines = ["## Demo model vs shipped model", "",
             f"Shipped model: `{spec.get('source')}` ({spec['encoder_name']} at {spec['image_size']} px, "
             f"strategy `{spec.get('strategy', 'coarse-to-fine')}`, threshold {spec.get('threshold', 0.5)}).", "",
             "| set | model | mean IoU | mean Dice | mean boundary F1 |", "|---|---|---|---|---|"]
    for name, samples in sets.items():
        res = evaluate_model(model, spec, samples, device=device, threshold=float(spec.get("threshold", 0.5)),
                             strategy=spec.get("strategy", "coarse-to-fine"), n_boot=200)
        seen = [how for _, how, hashes in photos_seen_by(spec) if check_disjoint(samples, hashes, "", allow=True)]
        note = f" ({seen[-1]} some of these photos: optimistic)" if seen else ""
        for who, r in (("demo", results[name]), ("shipped" + note, res)):
            m = r["overall"]["mean"]
            lines.append(f"| {name} | {who} | {m['iou']:.3f} | {m['dice']:.3f} | {m['boundary_f1']:.3f} |")
    return lines + [""]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
