"""Copy-paste of real cut-outs vs procedural keys only, judged with grouped folds on a real set.

Every variant trains the same model for the same steps (optionally starting from ``--init``, a
synthetic-only checkpoint, so a short CPU budget measures what the variant adds):

- ``synthetic``       procedural keys only (uses no real photo: one run, scored on every photo);
- ``mixed``           each key is procedural or a real cut-out, 50/50;
- ``mixed_uncapped``  ``mixed`` with cut-outs enlarged to any drawn length (``cutout_max_upscale`` off);
- ``cutouts_only``    real cut-outs only;
- ``mixed_hard``      ``mixed`` with hard-edged pastes only (no feathering, motion or Poisson);
- ``mixed_no_relight``  ``mixed`` without re-lighting the cut-outs to the scene;
- ``mixed_gaussian``, ``mixed_motion``, ``mixed_poisson``: ``mixed`` with one blend mode only;
- ``mixed_real``      ``mixed`` plus augmented crops of the fold's training photos, 25 % of each batch
                      (``--real-train``, ``--real-fraction``);
- ``synthetic_flat``  ``synthetic`` with 30 % of scenes in flat material colours (``flat_shading_prob``);
- ``mixed_flat``      ``mixed`` with the same;
- ``synthetic_closeup``  ``synthetic`` with 30 % crop-like samples whose key is 0.45-2x the frame side
  (close-ups: a key longer than the frame shows only part of itself, as in native-resolution tiles);
- ``synthetic_closeup_lite``  the same lengths at the default 20 % crop-like share;
- ``synthetic_negatives``  ``synthetic`` with 1-6 distractor objects (hard negatives) per scene instead of 0-4;
- ``synthetic_lovasz``  ``synthetic`` with the Lovasz hinge (an IoU surrogate, weight 1) added to the loss;
- ``synthetic_ball_chain``  ``synthetic`` with every distractor kind, ball chains included;
- ``old_defaults``    ``synthetic`` with the scene defaults used before they were matched to real
                      key statistics (more tiny keys, shorter typical keys, more sensor noise).

The cut-out variants run once per fold (:func:`real_eval.folds.grouped_folds`): the cut-outs come
from the photos of the other groups (``keysynth cutouts``), and only the held-out group is scored,
so a key is never scored on a photo of itself. Each photo is scored three ways (the default
strategy at 0.5; ``tiles`` at 0.5; ``tiles`` at the run's own synthetic-validation threshold, the
setting a freshly trained model predicts with) and pooled over folds; one table per scoring gives
the mean over photos and seeds with a bootstrap interval, and the paired-bootstrap interval of the
difference to ``synthetic``. Finished runs keep
their ``result.json``, so a killed bench resumes.

Usage::

    python bench/copy_paste_folds.py --real ../shared/data/real_keys_dev \\
        --backgrounds ../shared/data/backgrounds --init models/keysynth-unet --steps 600
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
    "synthetic": {"source": None},
    "mixed": {"source": 0.5},
    "mixed_uncapped": {"source": 0.5, "synth": {"cutout_max_upscale": 100.0}},
    "cutouts_only": {"source": 1.0},
    "mixed_hard": {"source": 0.5, "synth": {"cutout_blend_weights": (1.0, 0.0, 0.0, 0.0)}},
    "mixed_no_relight": {"source": 0.5, "synth": {"cutout_relight": False}},
    "mixed_gaussian": {"source": 0.5, "synth": {"cutout_blend_weights": (0.0, 1.0, 0.0, 0.0)}},
    "mixed_motion": {"source": 0.5, "synth": {"cutout_blend_weights": (0.0, 0.0, 1.0, 0.0)}},
    "mixed_poisson": {"source": 0.5, "synth": {"cutout_blend_weights": (0.0, 0.0, 0.0, 1.0)}},
    "mixed_real": {"source": 0.5, "real_fraction": 0.25},
    "synthetic_flat": {"source": None, "synth": {"flat_shading_prob": 0.3}},
    "mixed_flat": {"source": 0.5, "synth": {"flat_shading_prob": 0.3}},
    "synthetic_closeup": {"source": None, "synth": {"crop_like_prob": 0.3, "crop_like_length_range": (0.45, 2.0)}},
    "synthetic_closeup_lite": {"source": None, "synth": {"crop_like_length_range": (0.45, 2.0)}},
    "synthetic_negatives": {"source": None, "synth": {"n_distractors_range": (1, 6)}},
    "synthetic_lovasz": {"source": None, "train": {"lovasz_weight": 1.0}},
    "synthetic_ball_chain": {"source": None, "synth": {"distractor_kinds": None}},
    "old_defaults": {"source": None, "synth": {"key_length_typical_range": (0.1, 0.6), "tiny_key_prob": 0.3,
                                               "read_noise_range": (0.3, 6.0)}},
}


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_one(variant: str, fold: str, held: list[str], train_names: list[str], samples: dict, seed: int, args) -> dict:
    from real_eval.evaluate import evaluate_model
    from real_eval.convert import write_mask_folder
    from real_eval.extract_cutouts import extract_cutouts
    from real_eval.metrics import image_metrics
    from real_eval.model_io import load_checkpoint
    from real_eval.strategies import predict_probs
    from synth import SynthConfig
    from train.config import TrainConfig
    from train.trainer import train

    out = Path(args.out) / f"{variant}-s{seed}" / fold
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    spec = VARIANTS[variant]
    key_source = "procedural"
    if spec["source"] is not None:
        cuts = out / "cutouts"
        if not (cuts / "cutouts.jsonl").is_file():
            extract_cutouts([samples[n] for n in train_names], cuts, overwrite=True)
        w = spec["source"]
        key_source = str(cuts) if w >= 1.0 else f"procedural:{1 - w},{cuts}:{w}"
    real_train, real_fraction = None, spec.get("real_fraction", 0.0)
    if real_fraction:
        real_train = out / "real_train"
        if not (real_train / "masks").is_dir():
            write_mask_folder([samples[n] for n in train_names], real_train)
    synth_yaml = out / "synth.yaml"
    SynthConfig.default().replace(size=args.size, key_source=key_source, **spec.get("synth", {})).to_yaml(synth_yaml)
    cfg = TrainConfig(out=str(out), seed=seed, device="cpu", image_size=args.size, steps=args.steps,
                      batch_size=args.batch_size, lr=args.lr, warmup=max(1, args.steps // 10), num_workers=1,
                      backgrounds=args.backgrounds, synth_config=str(synth_yaml), eval_every=0, val_size=args.val_size,
                      checkpoint_every=max(50, args.steps // 4), progress=False, init=args.init,
                      real_train=str(real_train) if real_train else None, real_fraction=real_fraction,
                      resume="auto" if (out / "checkpoints" / "last.pt").is_file() else None, **spec.get("train", {}))
    t0, c0 = time.perf_counter(), _cpu_s()
    summary = train(cfg)
    model, mspec = load_checkpoint(summary["last"], "cpu")
    held_samples = [samples[n] for n in held]
    res = evaluate_model(model, mspec, held_samples, device="cpu", n_boot=0)
    row = {"variant": variant, "seed": seed, "fold": fold, "held_out": held, "steps": summary["step"],
           "wall_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0, "key_source": key_source,
           "iou": {r["name"]: r["iou"] for r in res["per_image"]},
           "boundary_f1": {r["name"]: r["boundary_f1"] for r in res["per_image"]}}
    # the same model scored with tiles (predicted once), at 0.5 and at its own synthetic-validation threshold
    row["synthetic_threshold"] = float(mspec.get("threshold", 0.5))
    probs = [predict_probs(model, mspec, s.image, strategy="tiles") for s in held_samples]
    for key, thr in (("tiles", 0.5), ("tiles_synthetic_threshold", row["synthetic_threshold"])):
        per = [image_metrics(p >= thr, s.mask) for p, s in zip(probs, held_samples)]
        row[key] = {m: {s.name: r[m] for s, r in zip(held_samples, per)} for m in ("iou", "dice", "boundary_f1")}
    tmp = done.with_name(".tmp-result.json")
    tmp.write_text(json.dumps(row, indent=2))
    os.replace(tmp, done)
    return row


SCORINGS = [  # (scoring, metric, row -> {metric: {photo: value}} or None)
    ("coarse-to-fine at 0.5", "iou", lambda r: {"iou": r["iou"]}),
    ("coarse-to-fine at 0.5", "boundary_f1", lambda r: {"boundary_f1": r["boundary_f1"]}),
    ("tiles at 0.5", "iou", lambda r: r.get("tiles")),
    ("tiles at the synthetic threshold", "iou", lambda r: r.get("tiles_synthetic_threshold")),
    ("tiles at the synthetic threshold", "dice", lambda r: r.get("tiles_synthetic_threshold")),
    ("tiles at the synthetic threshold", "boundary_f1", lambda r: r.get("tiles_synthetic_threshold")),
]


def _print_table(name: str, per_variant: dict, names: list[str], seeds: list[int]) -> None:
    """One markdown table per scoring: mean over photos and seeds, paired difference to ``synthetic``."""
    from real_eval.folds import mean_interval, paired_bootstrap

    have = {v: d for v, d in per_variant.items() if name in d["scores"]}
    print(f"\n### {name}\n")
    print("| variant | mean over photos and seeds [95% CI] | difference to synthetic [paired 95% CI] | CPU-min |")
    print("|---|---|---|---|")
    base = have.get("synthetic")
    for variant, d in have.items():
        flat = [v for s in seeds for v in d["scores"][name][s]]
        m, lo, hi = mean_interval(flat)
        diff = ""
        if base is not None and variant != "synthetic":
            dm, dlo, dhi = paired_bootstrap(flat, [v for s in seeds for v in base["scores"][name][s]])
            diff = f"{dm:+.3f} [{dlo:+.3f}, {dhi:+.3f}]"
        print(f"| {variant} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {diff} | {d['cpu_s'] / 60:.0f} |")
    print("\n| photo | " + " | ".join(have) + " |")
    print("|---|" + "---|" * len(have))
    for i, n in enumerate(names):
        vals = [sum(d["scores"][name][s][i] for s in seeds) / len(seeds) for d in have.values()]
        print(f"| {n} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")


def main(argv: list[str] | None = None) -> int:
    from real_eval.dataset import load_real_set
    from real_eval.folds import grouped_folds

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True, help="real annotated set (any supported format)")
    shared_bg = ROOT.parent / "shared" / "data" / "backgrounds"
    p.add_argument("--backgrounds", default=str(shared_bg) if shared_bg.is_dir() else "default")
    p.add_argument("--init", default=None, help="checkpoint or model folder every run starts from (default: scratch)")
    p.add_argument("--out", default="runs/copy_paste_folds")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--val-size", type=int, default=32,
                   help="synthetic validation samples per run (they set the run's decision threshold)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variants", nargs="+", default=["synthetic", "mixed"], choices=list(VARIANTS))
    args = p.parse_args(argv)

    samples = {s.name: s for s in load_real_set(args.real)}
    names = sorted(samples)
    folds = grouped_folds(names)
    per_variant: dict[str, dict] = {}
    for variant in args.variants:
        for seed in args.seeds:
            per_fold = VARIANTS[variant]["source"] is not None or VARIANTS[variant].get("real_fraction")
            plan = folds if per_fold else [("all", names, [])]
            rows = []
            for fold, held, rest in plan:
                print(f"[folds] {variant} seed {seed} fold {fold} ({len(rest)} training photos) ...", flush=True)
                rows.append(run_one(variant, fold, held, rest, samples, seed, args))
            d = per_variant.setdefault(variant, {"cpu_s": 0.0, "scores": {}})
            d["cpu_s"] += sum(r["cpu_s"] for r in rows)
            for scoring, metric, get in SCORINGS:
                vals = {n: v for r in rows if get(r) is not None for n, v in get(r)[metric].items()}
                if len(vals) == len(names):
                    d["scores"].setdefault(f"{scoring} {metric}", {})[seed] = [vals[n] for n in names]
    print(f"\n{len(names)} photos in {len(folds)} groups; {args.steps} steps x batch {args.batch_size} at "
          f"{args.size} px per run, seeds {args.seeds}, init {args.init or 'scratch'}")
    for name in next(iter(per_variant.values()))["scores"]:
        _print_table(name, per_variant, names, args.seeds)
    (Path(args.out) / "summary.json").write_text(json.dumps(per_variant, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
