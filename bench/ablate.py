"""Ablation of the renderer's effect families, judged on real photos.

Trains the same small model with the same budget (steps, batch, seed) on the live stream of:

- ``full``            every family on, backgrounds = ``--backgrounds`` (real photos if given);
- ``no_shading``      keys drawn in flat material colour (no metal shading / reflections);
- ``no_shadows``      no cast or contact shadows;
- ``no_occluders``    no occluders, key rings, fobs or hard negatives;
- ``no_camera``       no camera chain (blur, vignette, noise, colour, JPEG);
- ``procedural_bg``   procedural backgrounds instead of ``--backgrounds``;
- ``no_asset_bank``   every key, distractor and procedural texture built afresh (no asset bank):
                      checks that the bank's speed costs no realism;

then evaluates each final checkpoint on the real set and prints IoU / Dice / boundary F1
(micro = pooled pixels, and the per-image mean). A finished variant is not re-run (its
``result.json`` is kept), so a killed ablation resumes.

Usage::

    python bench/ablate.py --real ../shared/data/real_keys_dev \
        --backgrounds ../shared/data/backgrounds --steps 300 --out runs/ablate
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "full": {},
    "no_shading": {"shading": False},
    "no_shadows": {"shadows": False},
    "no_occluders": {"occluders": False},
    "no_camera": {"camera": False},
    "procedural_bg": {"__backgrounds__": "procedural"},
    "no_asset_bank": {"asset_bank_size": 0, "distractor_bank_size": 0, "background_bank_size": 0},
}


def run_variant(name: str, changes: dict, args) -> dict:
    from real_eval.dataset import load_real_set
    from real_eval.evaluate import evaluate_model
    from real_eval.model_io import load_checkpoint
    from synth import SynthConfig
    from train.config import TrainConfig
    from train.trainer import train

    out = Path(args.out) / name
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    changes = dict(changes)
    backgrounds = changes.pop("__backgrounds__", args.backgrounds)
    synth_yaml = out / "synth.yaml"
    SynthConfig.default().replace(size=args.size, **changes).to_yaml(synth_yaml)
    cfg = TrainConfig(out=str(out), seed=args.seed, device="cpu", image_size=args.size, steps=args.steps,
                      batch_size=args.batch_size, num_workers=args.workers, backgrounds=backgrounds,
                      synth_config=str(synth_yaml), warmup=max(1, args.steps // 10), eval_every=0,
                      val_size=8, checkpoint_every=0, encoder_name=args.encoder, progress=False,
                      resume="auto" if (out / "checkpoints" / "last.pt").is_file() else None)
    t = time.perf_counter()
    summary = train(cfg)
    train_s = time.perf_counter() - t
    model, spec = load_checkpoint(summary["last"], "cpu")
    res = evaluate_model(model, spec, load_real_set(args.real), device="cpu", n_boot=200)
    row = {"variant": name, "steps": summary["step"], "train_s": train_s, "backgrounds": backgrounds,
           "micro": res["overall"]["micro"], "mean": res["overall"]["mean"],
           "best_threshold": res["sweep"]["best_threshold"], "best_micro_iou": res["sweep"]["best_micro_iou"],
           "per_image_iou": {r["name"]: r["iou"] for r in res["per_image"]}}
    tmp = result_path.with_name(".tmp-result.json")
    tmp.write_text(json.dumps(row, indent=2))
    os.replace(tmp, result_path)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True, help="real set folder (images/ + masks/)")
    shared_bg = ROOT.parent / "shared" / "data" / "backgrounds"
    p.add_argument("--backgrounds", default=str(shared_bg) if shared_bg.is_dir() else "default",
                   help="backgrounds spec of the 'full' variant (default: ../shared/data/backgrounds if present)")
    p.add_argument("--out", default="runs/ablate")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--encoder", default="mobilenet_v2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args(argv)

    rows = []
    for name in args.variants:
        print(f"[ablate] {name} ...", flush=True)
        rows.append(run_variant(name, VARIANTS[name], args))
        r = rows[-1]
        print(f"[ablate] {name}: IoU {r['micro']['iou']:.3f} ({r['train_s']:.0f} s)", flush=True)
    base = next((r for r in rows if r["variant"] == "full"), None)
    print(f"\nreal set: {args.real}; {args.steps} steps x batch {args.batch_size} at {args.size} px, "
          f"encoder {args.encoder}, seed {args.seed}\n")
    # IoU at the best threshold of the sweep is threshold-free: it still ranks variants whose
    # probabilities have not crossed 0.5 yet (short CPU budgets).
    print("| variant | IoU (micro, t=0.5) | Dice (micro) | boundary F1 (mean) | IoU (per-image mean) "
          "| best-threshold IoU (t) | delta IoU vs full |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        d = f"{r['micro']['iou'] - base['micro']['iou']:+.3f}" if base else ""
        print(f"| {r['variant']} | {r['micro']['iou']:.3f} | {r['micro']['dice']:.3f} | "
              f"{r['mean']['boundary_f1']:.3f} | {r['mean']['iou']:.3f} | "
              f"{r['best_micro_iou']:.3f} ({r['best_threshold']:.2f}) | {d} |")
    summary = Path(args.out) / "ablation.json"
    summary.write_text(json.dumps(rows, indent=2))
    print(f"\nwritten {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
