"""``keysynth eval | convert | predict | export`` sub-commands (registered by keysynth/cli.py).

Each ``func(args) -> int`` returns 0 on success; library errors (ValueError /
FileNotFoundError naming the file and the fix) are printed by the CLI without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


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
    from real_eval.strategies import DEFAULT_STRATEGY, STRATEGIES

    return (f"prediction strategy: {' | '.join(STRATEGIES)} (default {DEFAULT_STRATEGY}, chosen by measurement on "
            "real photos: resize = pad to square + resize; tiles = native-resolution sliding windows; "
            "coarse-to-fine = low-resolution pass, then full-resolution crops of the candidate keys)")


def _default_strategy() -> str:
    from real_eval.strategies import DEFAULT_STRATEGY

    return DEFAULT_STRATEGY


def _check_strategy(name: str) -> None:
    from real_eval.strategies import STRATEGIES

    if name not in STRATEGIES:
        raise ValueError(f"unknown --strategy {name!r}; valid names: {', '.join(STRATEGIES)}")


def cmd_eval(args: argparse.Namespace) -> int:
    from real_eval.evaluate import evaluate_checkpoint

    args.strategy = args.strategy or _default_strategy()
    _check_strategy(args.strategy)
    res = evaluate_checkpoint(args.checkpoint, args.real, args.out, strategy=args.strategy, threshold=args.threshold,
                              device=_device(args.device), fmt=args.format, classes=_classes(args.classes),
                              boundary_tol_px=args.boundary_tol_px, boundary_tol_frac=args.boundary_tol_frac,
                              n_boot=args.n_boot, seed=args.seed, progress=not args.quiet)
    ov = res["overall"]
    print(f"{ov['n_images']} photos  micro IoU {ov['micro']['iou']:.4f} [{ov['micro_ci']['iou'][0]:.4f}, "
          f"{ov['micro_ci']['iou'][1]:.4f}]  mean IoU {ov['mean']['iou']:.4f}  mean BF1 {ov['mean']['boundary_f1']:.4f}  "
          f"best threshold {res['sweep']['best_threshold']}")
    print(f"wrote {args.out}/metrics.json, per_image.csv, overlays/, report.html")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from real_eval.convert import convert_dataset

    summary = convert_dataset(args.src, args.out, to=args.to, fmt=args.src_format, classes=_classes(args.classes))
    print(json.dumps(summary))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from real_eval.model_io import load_checkpoint
    from real_eval.predict import predict_files

    args.strategy = args.strategy or _default_strategy()
    _check_strategy(args.strategy)
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    device = _device(args.device)
    model, spec = load_checkpoint(args.checkpoint, device)
    recs = predict_files(args.photos, model, spec, args.out, strategy=args.strategy, threshold=args.threshold,
                         device=device, progress=not args.quiet)
    print(f"wrote {len(recs)} masks to {args.out}/masks and RGBA cut-outs to {args.out}/cutouts")
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


def register(subparsers) -> None:
    """Add ``eval``, ``convert``, ``predict`` and ``export`` to the keysynth parser."""
    p = subparsers.add_parser("eval", help="evaluate a checkpoint on real annotated photos (metrics + HTML report)",
                              description="Evaluate a checkpoint on a real annotated set; writes metrics.json, "
                                          "per_image.csv, overlays/ and a self-contained report.html.")
    p.add_argument("--checkpoint", required=True, help="checkpoint .pt written by keysynth train")
    p.add_argument("--real", required=True, help="real set folder (any format: masks, coco, cvat, supervisely, labelme)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--strategy", default=None, help=_strategy_help())
    p.add_argument("--threshold", type=float, default=0.5, help="key if probability >= threshold (default 0.5)")
    p.add_argument("--format", default=None, help="annotation format of --real (default: auto-detect)")
    p.add_argument("--classes", default=None, help="comma-separated key class names (default: key-like names)")
    p.add_argument("--boundary-tol-px", type=float, default=None, help="boundary F1 tolerance in px")
    p.add_argument("--boundary-tol-frac", type=float, default=0.008,
                   help="boundary F1 tolerance as a fraction of the diagonal when --boundary-tol-px is not set (DAVIS 0.008)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("convert", help="convert annotations (coco, cvat, supervisely, labelme, masks) to masks or COCO",
                              description="Convert a real annotated set to a mask folder (images/, masks/ 0/255, "
                                          "ignore/ 255) or a COCO file (compressed RLE).")
    p.add_argument("src", help="source folder or annotation file")
    p.add_argument("--to", required=True, choices=("masks", "coco"), help="output format")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--from", dest="src_format", default=None, help="source format (default: auto-detect)")
    p.add_argument("--classes", default=None, help="comma-separated key class names (default: key-like names)")
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser("predict", help="segment keys in photos: 0/255 masks + RGBA cut-outs",
                              description="Predict key masks for photos of any size.")
    p.add_argument("photos", nargs="+", help="photo files or folders")
    p.add_argument("--checkpoint", required=True, help="checkpoint .pt")
    p.add_argument("--out", required=True, help="output folder (masks/, cutouts/)")
    p.add_argument("--strategy", default=None, help=_strategy_help())
    p.add_argument("--threshold", type=float, default=0.5, help="key if probability >= threshold")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser("export", help="export a checkpoint to ONNX (dynamic batch/H/W), checked with onnxruntime")
    p.add_argument("--checkpoint", required=True, help="checkpoint .pt")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max allowed |logit difference| vs torch")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime parity check")
    p.set_defaults(func=cmd_export)
