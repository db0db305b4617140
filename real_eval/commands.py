"""``keysynth eval | convert | predict | export`` sub-commands (registered by keysynth/cli.py).

Each ``func(args) -> int`` returns 0 on success; library errors (ValueError /
FileNotFoundError naming the file and the fix) are printed by the CLI without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]

_CHECKPOINT_HELP = ("checkpoint .pt written by keysynth train, or a model folder (keysynth.json + model.safetensors); "
                    "default: the shipped model (models/keysynth-unet, or $KEYSYNTH_MODEL)")


def _classes(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if not names:
        raise ValueError("--classes is empty; give comma-separated class names, e.g. --classes key,house_key")
    return names


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _strategy_help() -> str:
    from real_eval.strategies import DEFAULT_STRATEGY, DEFAULT_TILE_MAX_SIDE, STRATEGIES

    return (f"prediction strategy: {' | '.join(STRATEGIES)} (default {DEFAULT_STRATEGY}, chosen by measurement on "
            "real photos: resize = pad to square + resize; tiles = native-resolution sliding windows, photos "
            f"with a long side over {DEFAULT_TILE_MAX_SIDE} px scaled down to it; "
            "coarse-to-fine = low-resolution pass, then full-resolution crops of the candidate keys)")


def _default_strategy() -> str:
    from real_eval.strategies import DEFAULT_STRATEGY

    return DEFAULT_STRATEGY


def _check_strategy(name: str) -> None:
    from real_eval.strategies import STRATEGIES

    if name not in STRATEGIES:
        raise ValueError(f"unknown --strategy {name!r}; valid names: {', '.join(STRATEGIES)}")


def _decision(args: argparse.Namespace, spec: dict) -> str:
    """Fill ``args.strategy`` / ``args.threshold`` from the model's calibration where not given;
    returns a line saying which were used and where they came from."""
    said = []
    for key, default in (("strategy", _default_strategy()), ("threshold", 0.5)):
        if getattr(args, key) is not None:
            said.append(f"{key} {getattr(args, key)} (given)")
            continue
        own = spec.get(key)
        setattr(args, key, own if own is not None else default)
        origin = "calibrated for this model" if own is not None else "default"
        if own is not None and key == "threshold" and (spec.get("calibration") or {}).get("set") == "synthetic validation":
            origin = "calibrated on this model's synthetic validation samples"
        said.append(f"{key} {getattr(args, key)} ({origin})")
    _check_strategy(args.strategy)
    if not 0.0 <= float(args.threshold) <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    return ", ".join(said)


def _model_name(args: argparse.Namespace, spec: dict) -> str:
    return str(args.checkpoint) if args.checkpoint else f"the shipped model ({spec.get('source')})"


def cmd_eval(args: argparse.Namespace) -> int:
    from real_eval.calibrate import check_disjoint, photos_seen_by
    from real_eval.dataset import load_real_set
    from real_eval.evaluate import evaluate_model
    from real_eval.model_io import load_checkpoint

    device = _device(args.device)
    samples = load_real_set(args.real, fmt=args.format, classes=_classes(args.classes), strict=getattr(args, "strict", False))
    if not samples:
        raise ValueError(f"real set {args.real} holds no images")
    model, spec = load_checkpoint(args.checkpoint, device)
    print(f"model: {_model_name(args, spec)}; {_decision(args, spec)}")
    for what, how, hashes in photos_seen_by(spec):
        shared = check_disjoint(samples, hashes, what, allow=args.allow_overlap)
        if shared:
            print(f"warning: this model was {how} {len(shared)} of these photos: {', '.join(shared[:5])}")
    title = f"{Path(args.checkpoint).name if args.checkpoint else 'shipped model'} on {Path(args.real).name}"
    res = evaluate_model(model, spec, samples, device=device, threshold=args.threshold, strategy=args.strategy,
                         out_dir=args.out, progress=not args.quiet, title=title, boundary_tol_px=args.boundary_tol_px,
                         boundary_tol_frac=args.boundary_tol_frac, n_boot=args.n_boot, seed=args.seed)
    ov = res["overall"]
    print(f"{ov['n_images']} photos  micro IoU {ov['micro']['iou']:.4f} [{ov['micro_ci']['iou'][0]:.4f}, "
          f"{ov['micro_ci']['iou'][1]:.4f}]  mean IoU {ov['mean']['iou']:.4f}  mean BF1 {ov['mean']['boundary_f1']:.4f}  "
          f"best threshold {res['sweep']['best_threshold']}")
    print(f"wrote {args.out}/metrics.json, per_image.csv, overlays/, report.html")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from real_eval.convert import convert_dataset

    summary = convert_dataset(args.src, args.out, to=args.to, fmt=args.src_format, classes=_classes(args.classes),
                              overwrite=args.overwrite, strict=getattr(args, "strict", False))
    print(json.dumps(summary))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from real_eval.model_io import load_checkpoint
    from real_eval.predict import predict_files

    device = _device(args.device)
    model, spec = load_checkpoint(args.checkpoint, device)
    print(f"model: {_model_name(args, spec)}; {_decision(args, spec)}")
    recs = predict_files(args.photos, model, spec, args.out, strategy=args.strategy, threshold=args.threshold,
                         device=device, progress=not args.quiet)
    failed = [r for r in recs if "error" in r]
    print(f"wrote {len(recs) - len(failed)} masks to {args.out}/masks and RGBA cut-outs to {args.out}/cutouts")
    for r in failed:
        print(f"keysynth predict: error: {r['photo']}: {r['error']}", file=sys.stderr)
    if failed:
        print(f"keysynth predict: {len(failed)} of {len(recs)} photos could not be read (listed above); "
              "fix or remove them and re-run", file=sys.stderr)
    return 1 if failed else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from real_eval.calibrate import calibrate
    from real_eval.dataset import load_real_set
    from real_eval.model_io import load_checkpoint, write_calibration

    device = _device(args.device)
    samples = load_real_set(args.real, fmt=args.format, classes=_classes(args.classes), strict=getattr(args, "strict", False))
    model, spec = load_checkpoint(args.checkpoint, device)
    strategies = tuple(x.strip() for x in args.strategies.split(",") if x.strip()) if args.strategies else None
    res = calibrate(model, spec, samples, strategies=strategies, device=device, progress=not args.quiet)
    for r in res["table"]:
        print(f"{r['strategy']:>15s}: best threshold {r['threshold']:.2f}  mean IoU {r['mean_iou']:.4f}")
    target = write_calibration(args.checkpoint, model, spec, res, out=args.out, calibration_set=str(args.real))
    print(f"calibrated on {res['n_images']} photos: strategy {res['strategy']}, threshold {res['threshold']:.2f} "
          f"(mean IoU {res['mean_iou']:.4f} on the calibration set; evaluate on other photos); wrote {target}")
    return 0


def cmd_cutouts(args: argparse.Namespace) -> int:
    from real_eval.dataset import load_real_set
    from real_eval.extract_cutouts import extract_cutouts

    samples = load_real_set(args.src, fmt=args.format, classes=_classes(args.classes), strict=getattr(args, "strict", False))
    res = extract_cutouts(samples, args.out, min_area=args.min_area, margin=args.margin, overwrite=args.overwrite)
    print(f"{res['cutouts']} cut-outs from {res['photos']} photos ({res['truncated']} cut by the photo border, "
          f"{res['skipped_small']} fragments under {args.min_area} px skipped) in {res['out']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from real_eval.export import check_onnx_parity, export_onnx
    from real_eval.model_io import load_checkpoint

    model, spec = load_checkpoint(args.checkpoint, "cpu")
    path = export_onnx(model, spec, args.out, opset=args.opset)
    s = int(spec["image_size"])
    if not args.no_verify:
        diff = check_onnx_parity(model, path, shapes=((1, 3, s, s), (2, 3, s, s)))
        print(f"onnxruntime parity: max |logit difference| = {diff:.2e}")
        if diff > args.tolerance:
            print(f"keysynth export: error: ONNX logits differ by {diff:.2e} > --tolerance {args.tolerance}", file=sys.stderr)
            return 1
    print(f"wrote {path}")
    return 0


_STRICT_HELP = ("refuse annotation objects that would be skipped with a warning (unknown image id, shape outside "
                "its image, degenerate shape) instead of skipping them")


def _add_annotation_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--format", default=None, help=f"annotation format of {what} (default: auto-detect)")
    p.add_argument("--classes", default=None, help="comma-separated key class names (default: key-like names)")
    p.add_argument("--strict", action="store_true", help=_STRICT_HELP)


def _add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    """Add ``eval``, ``convert``, ``predict`` and ``export`` to the keysynth parser."""
    p = subparsers.add_parser("eval", help="evaluate a checkpoint on real annotated photos (metrics + HTML report)",
                              description="Evaluate a checkpoint on a real annotated set; writes metrics.json, "
                                          "per_image.csv, overlays/ and a self-contained report.html.")
    p.add_argument("--checkpoint", default=None, help=_CHECKPOINT_HELP)
    p.add_argument("--real", required=True, help="real set folder (any format: masks, coco, cvat, supervisely, labelme)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--strategy", default=None, help=_strategy_help() + "; default: the model's calibrated one")
    p.add_argument("--threshold", type=float, default=None,
                   help="key if probability >= threshold (default: the model's calibrated one, else 0.5)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="score photos the model was calibrated on (refused by default: the figure would be optimistic)")
    _add_annotation_args(p, "--real")
    p.add_argument("--boundary-tol-px", type=float, default=None, help="boundary F1 tolerance in px")
    p.add_argument("--boundary-tol-frac", type=float, default=0.008,
                   help="boundary F1 tolerance as a fraction of the diagonal when --boundary-tol-px is not set (DAVIS 0.008)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    _add_device_args(p)
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("convert", help="convert annotations (coco, cvat, supervisely, labelme, masks) to masks or COCO",
                              description="Convert a real annotated set to a mask folder (images/, masks/ 0/255, "
                                          "ignore/ 255) or a COCO file (compressed RLE).")
    p.add_argument("src", help="source folder or annotation file")
    p.add_argument("--to", required=True, choices=("masks", "coco"), help="output format")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--from", dest="src_format", default=None, help="source format (default: auto-detect)")
    p.add_argument("--classes", default=None, help="comma-separated key class names (default: key-like names)")
    p.add_argument("--strict", action="store_true", help=_STRICT_HELP)
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out that this conversion writes (refused by default)")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser("predict", help="segment keys in photos: 0/255 masks + RGBA cut-outs",
                              description="Predict key masks for photos of any size.")
    p.add_argument("photos", nargs="+", help="photo files or folders")
    p.add_argument("--checkpoint", default=None, help=_CHECKPOINT_HELP)
    p.add_argument("--out", required=True, help="output folder (masks/, cutouts/)")
    p.add_argument("--strategy", default=None, help=_strategy_help() + "; default: the model's calibrated one")
    p.add_argument("--threshold", type=float, default=None,
                   help="key if probability >= threshold (default: the model's calibrated one, else 0.5)")
    _add_device_args(p)
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser("calibrate", help="pick the threshold and strategy that maximise mean IoU on real photos",
                              description="Calibrate a model's probability threshold and inference strategy on a "
                                          "real annotated set and store them (with the set's content hashes, so that "
                                          "eval refuses to score the same photos) in the model.")
    p.add_argument("--checkpoint", default=None, help=_CHECKPOINT_HELP)
    p.add_argument("--real", required=True, help="calibration set folder (any supported annotation format)")
    p.add_argument("--out", default=None, help="write a model folder (safetensors + JSON) here instead of updating "
                                               "--checkpoint in place")
    p.add_argument("--strategies", default=None, help="comma-separated strategies to try (default: all)")
    _add_annotation_args(p, "--real")
    _add_device_args(p)
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser("cutouts", help="write one RGBA cut-out per key instance of an annotated set",
                              description="Cut every connected key instance out of an annotated photo set (any "
                                          "supported format) as an RGBA PNG (alpha = mask) plus cutouts.jsonl with "
                                          "provenance; use the folder as a key source of `keysynth synth` / train.")
    p.add_argument("src", help="annotated set: folder or annotation file (masks, coco, cvat, supervisely, labelme)")
    p.add_argument("--out", required=True, help="output folder for NAME_kJ.png and cutouts.jsonl")
    p.add_argument("--min-area", type=int, default=64, help="skip instances with fewer key pixels (default 64)")
    p.add_argument("--margin", type=int, default=4, help="px of context kept around each instance (default 4)")
    _add_annotation_args(p, "SRC")
    p.add_argument("--overwrite", action="store_true", help="replace the cut-outs of an earlier run in --out")
    p.set_defaults(func=cmd_cutouts)

    p = subparsers.add_parser("export", help="export a checkpoint to ONNX (dynamic batch/H/W), checked with onnxruntime")
    p.add_argument("--checkpoint", required=True, help="checkpoint .pt")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max allowed |logit difference| vs torch")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime parity check")
    p.set_defaults(func=cmd_export)
