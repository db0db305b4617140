"""Package a trained checkpoint as the shipped model folder, with honest real-photo figures.

1. Scores the checkpoint on the real set with every inference strategy at threshold 0.5.
2. Grouped cross-calibration (:func:`real_eval.folds.grouped_folds`): for each group of photos
   (frames of one video are one group), the threshold and strategy are calibrated on the other
   groups and the held-out group is scored with them, so no photo is scored with a setting tuned
   on itself. These per-photo figures (IoU, Dice, boundary F1, with bootstrap intervals) are the
   model's reported figures.
3. Calibrates on the whole set (the setting users get) and writes the model folder: weights as
   float16 safetensors (half the size; predictions are checked to match float32), ``config.json``
   (smp), ``keysynth.json`` (spec, threshold, strategy, calibration hashes, training command and
   configs, git commit, CPU-hours, figures) and the model card
   ``README.md``; overlays of every photo go to ``--overlays`` (outside the model folder).

A model trained on cut-outs of the real set itself (``--fold-runs DIR``) is not scored on those
photos: step 2 uses the same recipe's grouped-fold models instead (``DIR/<group>/checkpoints/last.pt``,
as ``bench/copy_paste_folds.py`` writes them), each with ``--strategy`` at its own synthetic
threshold; step 3 keeps the model's own synthetic threshold (it is not calibrated on photos whose
keys it trained on), and ``--cutouts`` records the source photos so that ``keysynth eval`` refuses
them.

Usage::

    python bench/ship_model.py --checkpoint runs/ship/checkpoints/last.pt --real ../shared/data/real_keys_dev \\
        --out models/keysynth-unet --command "keysynth train ..." --cpu-hours 3.1

A model folder as ``--checkpoint`` is re-scored (after a change to inference, say) and rewritten
with its training record unchanged: ``--checkpoint models/keysynth-unet --real ...``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _summary(rows: list[dict]) -> dict:
    from real_eval.folds import mean_interval

    out = {}
    for k in ("iou", "dice", "boundary_f1"):
        m, lo, hi = mean_interval([r[k] for r in rows])
        out[k] = {"mean": round(m, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    return out


def metrics_at(probs: dict, samples, strategy: str, threshold: float, names=None) -> list[dict]:
    """Per-photo metrics of cached probability maps at one setting (photos in ``names``, default all)."""
    from real_eval.metrics import image_metrics

    return [{"name": s.name, **image_metrics(np.asarray(probs[strategy][i], np.float32) >= threshold, s.mask)}
            for i, s in enumerate(samples) if names is None or s.name in names]


def cross_calibrated(probs: dict, samples) -> tuple[list[dict], list[dict]]:
    """Per-photo metrics with the threshold / strategy calibrated on the other groups; and the folds."""
    from real_eval.calibrate import calibrate_probs
    from real_eval.folds import grouped_folds

    rows, folds = [], []
    for group, held, rest in grouped_folds([s.name for s in samples]):
        idx = [i for i, s in enumerate(samples) if s.name in rest]
        cal = calibrate_probs({k: [v[i] for i in idx] for k, v in probs.items()}, [samples[i].mask for i in idx])
        rows += metrics_at(probs, samples, cal["strategy"], cal["threshold"], set(held))
        folds.append({"held_out": group, "threshold": cal["threshold"], "strategy": cal["strategy"]})
    return rows, folds


def fold_figures(fold_runs: str, samples, strategy: str) -> tuple[list[dict], list[dict]]:
    """Per-photo metrics of a model trained on cut-outs of ``samples``: each photo group is scored by
    the same recipe trained without that group's photos (``FOLD_RUNS/<group>/checkpoints/last.pt``,
    as ``bench/copy_paste_folds.py`` writes them), with ``strategy`` at that fold model's own
    synthetic-validation threshold, so no photo is scored by a model that saw its key or a setting
    tuned on it.

    Raises:
        FileNotFoundError: a fold's checkpoint is missing (the message names it).
    """
    from real_eval.folds import grouped_folds
    from real_eval.metrics import image_metrics
    from real_eval.model_io import load_checkpoint
    from real_eval.strategies import predict_probs

    rows, folds = [], []
    for group, held, _rest in grouped_folds([s.name for s in samples]):
        ckpt = Path(fold_runs) / group / "checkpoints" / "last.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"fold checkpoint {ckpt} is missing: train the recipe without the photos of "
                                    f"group {group!r} first (bench/copy_paste_folds.py)")
        model, spec = load_checkpoint(ckpt)
        thr = float(spec.get("threshold", 0.5))
        for s in samples:
            if s.name in held:
                prob = predict_probs(model, spec, s.image, strategy=strategy)
                rows.append({"name": s.name, **image_metrics(prob >= thr, s.mask)})
        folds.append({"held_out": group, "threshold": thr, "strategy": strategy, "checkpoint": str(ckpt)})
    rows.sort(key=lambda r: r["name"])
    return rows, folds


def _card(info: dict, per_photo: list[dict], table: dict) -> str:
    from real_eval.strategies import DEFAULT_TILE_MAX_SIDE

    f = info["figures"]
    cc = f["cross_calibrated"]
    folds = f.get("method") == "grouped folds"
    spec = info["model_spec"]
    decided = (f"read off the training run's {info['calibration'].get('n_samples')} synthetic validation samples "
               "(no real photo)" if folds else
               f"calibrated on the {info['calibration']['n_images']} photos below (mean IoU over photos)")
    data = (f"keysynth samples: {info['training']['keys']}, composited over the background photos named in the "
            "training command, with shadows, occluders, distractors and a camera chain. The cut-outs were made "
            "(`keysynth cutouts`) from the photos the figures below are measured on, so those figures come from "
            "grouped folds; `keysynth eval` refuses to score this model on them." if folds else
            f"Only keysynth samples: {info['training']['keys']}, composited over the background photos named in "
            "the training command, with shadows, occluders, distractors and a camera chain. "
            "No photo of a key was used for training.")
    method = ("grouped folds: each photo is scored by the same recipe trained without the cut-outs of its key "
              "(the frames of one video are one key), with the shipped strategy at that fold model's own "
              "synthetic threshold, so no photo is scored by a model that saw its key or by a setting tuned on it"
              if folds else
              "grouped cross-calibration (threshold and strategy picked on the other photo groups, so no photo is "
              "scored with a setting tuned on itself)")
    lines = [
        "# keysynth-unet: key segmentation trained on keysynth samples", "",
        "A U-Net that marks the metal of physical keys (house, padlock, car keys) in ordinary photos: "
        "a per-pixel probability, thresholded into a mask. Load it with `keysynth predict PHOTOS --out DIR` "
        "(the default model), `real_eval.model_io.load_checkpoint(None)`, or `smp.from_pretrained` on this folder.", "",
        "## Model", "",
        f"- {spec['arch']} with a {spec['encoder_name']} encoder (no pretrained weights), "
        f"decoder width {spec['decoder_width']}, input {spec['image_size']} px, "
        "ImageNet mean/std normalisation; weights stored as float16 safetensors.",
        f"- Inference: strategy `{info['strategy']}`, threshold {info['threshold']:.2f}, {decided}"
        + (f"; photos with a long side over {DEFAULT_TILE_MAX_SIDE} px are tiled at {DEFAULT_TILE_MAX_SIDE} px."
           if info["strategy"] == "tiles" else "."), "",
        "## Training data", "", data, "",
        f"- Command: `{info['training']['command']}`",
        f"- Git commit: `{info['training']['commit']}`; CPU time: {info['training']['cpu_hours']} CPU-hours "
        "(2-core CPU, no GPU).",
        f"- Weights: `{info['training']['checkpoint']}` of that run (step {info['training']['steps']}); a "
        "`--real-dir` in the command only logs real-photo figures during training.",
        "- Full train and synth configs: `keysynth.json` (`training`).", "",
        "## Figures on real photos", "",
        f"Set: `{f['set']}` ({len(per_photo)} photos; hand-made masks). Reported: {method}; "
        "95% bootstrap intervals over photos.", "",
        "| metric | mean over photos [95% CI] |", "|---|---|",
    ]
    lines += [f"| {k} | {v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] |" for k, v in cc.items()]
    if table:
        lines += ["", "By strategy at threshold 0.5 (no calibration):", "",
                  "| strategy | mean IoU [95% CI] | mean Dice | mean boundary F1 |", "|---|---|---|---|"]
    for name, s in table.items():
        lines.append(f"| {name} | {s['iou']['mean']:.3f} [{s['iou']['ci95'][0]:.3f}, {s['iou']['ci95'][1]:.3f}] "
                     f"| {s['dice']['mean']:.3f} | {s['boundary_f1']['mean']:.3f} |")
    lines += ["", f"Per photo ({'grouped folds' if folds else 'cross-calibrated'}):", "",
              "| photo | IoU | Dice | boundary F1 |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['iou']:.3f} | {r['dice']:.3f} | {r['boundary_f1']:.3f} |" for r in per_photo]
    lines += ["", "## Failure cases", "",
              "Seen on the overlays of these photos (`keysynth eval --real DIR --out D` writes them to "
              "`D/overlays/`; they are not shipped, the photos are not ours to redistribute):", "",
              "- scattered small false detections on strong texture: wood grain, brick joints, skin creases and "
              "jewellery (rings, bracelets, bead chains);",
              "- coloured plastic key fobs and rubber key heads marked as key, and parts of the key ring;",
              "- large, bright, evenly lit keys filled only partly (the middle of the blade or bow is missed), and "
              "old dark keys on dark wood found only at their edges;",
              "- keys held in fingers lose the part next to the fingertips.", "",
              "Inference settings, post-processing, test-time flips and copy-paste fine-tuning measured on the "
              "same photos: `docs/RESULTS.md` in the keysynth repository.", ""]
    lines += ["", "## Intended use and limitations", "",
              "- Intended: finding and cutting out keys in photos taken by people (on tables, in hands, on rings) "
              "as a first step for key inventory or duplication tools; research on synthetic-to-real transfer.",
              "- Not measured beyond this small set: the interval above is wide. Expect misses on very blurred "
              "or tiny keys, confusion with other shiny metal (rings, coins, clips, key-shaped tags), and "
              "coloured plastic key heads marked partly as key or not at all (the labels count metal only).",
              "- Trained without pretrained weights, at low resolution, on a CPU budget: outlines are coarse (see boundary F1).",
              "- Retrain it on your own keys: the command above, with `--key-source procedural:0.5,CUTOUTS:0.5` "
              "for cut-outs made by `keysynth cutouts` from your annotated photos.", ""]
    return "\n".join(lines)


def _honest_figures(model, spec, samples, args) -> tuple[dict, dict, list[dict]]:
    """``(figures, decision, per_photo)`` for the chosen protocol: grouped cross-calibration of a
    model that never saw these photos, or the fold models of one trained on their cut-outs."""
    from real_eval.calibrate import calibrate_probs, content_hashes, predict_all
    from real_eval.strategies import STRATEGIES

    if args.fold_runs:
        per_photo, folds = fold_figures(args.fold_runs, samples, args.strategy)
        figures = {"method": "grouped folds", "cross_calibrated": _summary(per_photo), "folds": folds, "at_0.5": {}}
        cal = dict(spec.get("calibration") or {"set": "synthetic validation", "mean_iou": None})
        decision = {"threshold": float(spec.get("threshold", 0.5)), "strategy": args.strategy,
                    "calibration": {"set": cal.get("set"), "n_images": 0, "n_samples": int(args.val_size),
                                    "mean_iou": cal.get("mean_iou"), "table": [], "hashes": []}}
    else:
        probs = predict_all(model, spec, samples, STRATEGIES, progress=True)
        table = {name: _summary(metrics_at(probs, samples, name, 0.5)) for name in STRATEGIES}
        for name, t in table.items():
            print(f"{name:>15s} @0.5: mean IoU {t['iou']['mean']:.3f} {t['iou']['ci95']}")
        per_photo, folds = cross_calibrated(probs, samples)
        figures = {"method": "grouped cross-calibration", "cross_calibrated": _summary(per_photo), "folds": folds,
                   "at_0.5": table}
        cal = calibrate_probs(probs, [s.mask for s in samples])
        decision = {"threshold": cal["threshold"], "strategy": cal["strategy"],
                    "calibration": {"set": Path(args.real).name, "n_images": len(samples), "mean_iou": cal["mean_iou"],
                                    "table": cal["table"], "hashes": sorted(content_hashes(samples))}}
    figures["set"] = Path(args.real).name
    figures["per_photo"] = [{k: round(float(r[k]), 4) for k in ("iou", "dice", "boundary_f1")} | {"name": r["name"]}
                            for r in per_photo]
    print(f"{figures['method']}:", json.dumps(figures["cross_calibrated"]))
    return figures, decision, per_photo


def _cutout_source_hashes(cutouts: str | None) -> list[str]:
    """Content hashes of the photos a cut-out folder was made from (its ``cutouts.jsonl``)."""
    if not cutouts:
        return []
    from synth.cutouts import read_cutout_index

    return sorted({str(r["source_hash"]) for r in read_cutout_index(Path(cutouts)) if r.get("source_hash")})


def main(argv: list[str] | None = None) -> int:
    import cv2

    from real_eval.dataset import load_real_set
    from real_eval.evaluate import make_overlay
    from real_eval.model_io import is_model_dir, load_checkpoint, read_checkpoint, read_model_info, save_model_dir
    from real_eval.strategies import predict_probs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="training checkpoint, or a model folder to re-score (its training record is kept)")
    p.add_argument("--real", required=True)
    p.add_argument("--out", default=str(ROOT / "models" / "keysynth-unet"))
    p.add_argument("--command", default=None,
                   help="the exact keysynth train command that made the checkpoint (required for a checkpoint)")
    p.add_argument("--cpu-hours", type=float, default=None, help="training CPU-hours (required for a checkpoint)")
    p.add_argument("--commit", default=None, help="git commit of the code that trained it (default: HEAD)")
    p.add_argument("--keys", default="procedural keys", help="what the keys of the training samples were")
    p.add_argument("--fold-runs", default=None, metavar="DIR",
                   help="the model was trained on cut-outs of --real: DIR/<group>/checkpoints/last.pt are the same "
                        "recipe trained without each group's photos; the figures come from them")
    p.add_argument("--cutouts", default=None, metavar="DIR",
                   help="with --fold-runs: the cut-out folder of the training run (its source photos are recorded, "
                        "so `keysynth eval` refuses to score the model on them)")
    p.add_argument("--strategy", default="tiles", help="with --fold-runs: the inference strategy shipped (default tiles)")
    p.add_argument("--val-size", type=int, default=32, help="with --fold-runs: synthetic validation samples of the run")
    p.add_argument("--overlays", default=str(ROOT / "runs" / "ship_overlays"),
                   help="folder for the overlay images (kept out of the model folder)")
    args = p.parse_args(argv)
    kept = read_model_info(args.checkpoint).get("training") if is_model_dir(args.checkpoint) else None
    if kept is None and (args.command is None or args.cpu_hours is None):
        p.error("--command and --cpu-hours are required unless --checkpoint is a model folder with a training record")

    model, spec = load_checkpoint(args.checkpoint)
    ckpt = {} if kept else read_checkpoint(args.checkpoint)
    model = model.half().float()  # what the float16 file will hold
    samples = load_real_set(args.real)
    figures, decision, per_photo = _honest_figures(model, spec, samples, args)
    commit = args.commit or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                           cwd=ROOT).stdout.strip()
    training = kept or {"command": args.command, "commit": commit, "cpu_hours": args.cpu_hours, "keys": args.keys,
                        "steps": int(ckpt.get("step", 0)), "checkpoint": Path(args.checkpoint).name,
                        "cutout_source_hashes": _cutout_source_hashes(args.cutouts),
                        "train_config": ckpt.get("config"), "synth_config": ckpt.get("synth_config")}
    info = {**decision, "training": training, "figures": figures}
    clean = {k: v for k, v in spec.items() if k not in ("threshold", "strategy", "calibration", "source")}
    out = save_model_dir(model.half(), clean, args.out, info)
    loaded, lspec = load_checkpoint(out)
    x = samples[0].image
    diff = np.abs(predict_probs(loaded, lspec, x, strategy="resize") - predict_probs(model.float(), spec, x, strategy="resize")).max()
    print(f"float16 file vs float32 model: max probability difference {diff:.2e}")
    overlays = Path(args.overlays)
    overlays.mkdir(parents=True, exist_ok=True)
    for s in samples:
        prob = predict_probs(loaded, lspec, s.image, strategy=lspec["strategy"])
        ov = make_overlay(s.image, s.mask, prob >= lspec["threshold"], max_side=480)
        cv2.imwrite(str(overlays / f"{s.name}.jpg"), ov[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    (out / "README.md").write_text(_card(info | {"model_spec": clean}, per_photo, figures["at_0.5"]), encoding="utf-8")
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
