"""Weight averaging and test-time BatchNorm statistics, judged on real photos against a reference model.

1. Weight averaging ("model soups", Wortsman et al., ICML 2022): the uniform average of the
   weights (and BatchNorm running statistics) of models fine-tuned from one starting point, e.g.
   the fine-tunes ``bench/copy_paste_folds.py`` writes. One model, no extra inference cost.
2. BatchNorm statistics re-estimated on unlabelled photos (AdaBN, Li et al., 2016): the running
   means and variances of every BatchNorm layer replaced by their average over the ``tiles``
   inputs of ``--bn-photos`` (a folder of photos, e.g. key-free background photos), so that
   features are normalised with statistics of real photos instead of synthetic samples.

Each model is scored on ``--real`` with every inference strategy: grouped cross-calibration
(``bench/ship_model.py``: threshold and strategy chosen on the other photo groups), ``tiles`` at
the reference model's own threshold, and ``tiles`` at 0.5; per photo, and paired against the
reference with a bootstrap interval.

Usage::

    python bench/weight_average.py --real ../shared/data/real_keys_dev --reference models/keysynth-unet \\
        --average runs/closeup/*/all/checkpoints/last.pt --bn-photos ../shared/data/backgrounds --bn-count 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def average_state(states: list[dict]) -> dict:
    """Uniform average of state dicts with equal keys and shapes: float tensors averaged in float32,
    integer ones (BatchNorm's batch counters) taken from the first.

    Raises:
        ValueError: no state, or the states do not share their keys (different architectures).
    """
    import torch

    if not states or any(set(s) != set(states[0]) for s in states):
        raise ValueError("average_state needs one or more state dicts of the same architecture")
    return {k: torch.stack([s[k].float() for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()}


def adapt_batchnorm(model, spec: dict, images: list[np.ndarray]) -> None:
    """Replace every BatchNorm layer's running statistics by their cumulative average over the
    ``tiles`` inputs of ``images`` (uint8 RGB); the model is left in eval mode."""
    import torch

    from real_eval.strategies import predict_probs

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative moving average over every batch seen
        b.train()
    for im in images:
        predict_probs(model, spec, im, strategy="tiles")
    for b in bns:
        b.momentum = 0.1
    model.eval()


def score(model, spec: dict, samples, threshold: float) -> dict[str, list[dict]]:
    """Per-photo metrics: ``cross`` (grouped cross-calibration), ``tiles`` at ``threshold`` and at 0.5."""
    from real_eval.calibrate import predict_all
    from real_eval.strategies import STRATEGIES
    from ship_model import cross_calibrated, metrics_at

    probs = predict_all(model, spec, samples, STRATEGIES, progress=False)
    return {"cross-calibrated": cross_calibrated(probs, samples)[0],
            f"tiles @{threshold:g}": metrics_at(probs, samples, "tiles", threshold),
            "tiles @0.5": metrics_at(probs, samples, "tiles", 0.5)}


def _photos(folder: str, count: int, seed: int = 0) -> list[np.ndarray]:
    from real_eval.dataset import IMAGE_EXTENSIONS, read_image_rgb

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SystemExit(f"--bn-photos {folder} holds no photos")
    pick = np.random.default_rng(seed).choice(len(files), min(count, len(files)), replace=False)
    return [read_image_rgb(files[i]) for i in sorted(pick)]


def main(argv: list[str] | None = None) -> int:
    import torch

    from real_eval.dataset import load_real_set
    from real_eval.folds import mean_interval, paired_bootstrap
    from real_eval.model_io import load_checkpoint, read_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", required=True, help="annotated real photos (any format `keysynth eval` reads)")
    p.add_argument("--reference", default=None,
                   help="reference model folder or checkpoint (default: the shipped model)")
    p.add_argument("--average", nargs="*", default=[], metavar="CKPT",
                   help="checkpoints of the same architecture to average, with the reference")
    p.add_argument("--bn-photos", default=None, metavar="DIR", help="photos to re-estimate BatchNorm statistics on")
    p.add_argument("--bn-count", type=int, default=60, help="photos drawn from --bn-photos")
    p.add_argument("--bn-seeds", type=int, nargs="+", default=[0], help="one re-estimation per seed of the photo draw")
    a = p.parse_args(argv)
    if a.bn_count < 1:
        p.error(f"--bn-count must be >= 1, got {a.bn_count}")
    model, spec = load_checkpoint(a.reference)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    samples = load_real_set(a.real)
    thr = float(spec.get("threshold", 0.5))
    variants = [("reference", reference, None)]  # (name, weights, seed of the BatchNorm photo draw or None)
    if a.average:
        variants.append((f"average of the reference and {len(a.average)} checkpoints",
                         average_state([reference] + [read_checkpoint(c)["model"] for c in a.average]), None))
    for seed in a.bn_seeds if a.bn_photos else ():
        variants.append((f"reference, BatchNorm statistics from {a.bn_count} photos of {a.bn_photos} (draw {seed})",
                         reference, seed))
    results = {}
    for name, state, bn_seed in variants:
        model.load_state_dict(state)
        if bn_seed is not None:
            adapt_batchnorm(model, spec, _photos(a.bn_photos, a.bn_count, bn_seed))
        with torch.no_grad():
            results[name] = score(model.eval(), spec, samples, thr)
    base = results["reference"]
    for name, rows in results.items():
        print(f"\n## {name}\n\n| scoring | mean IoU [95% CI] | vs reference [paired 95% CI] | boundary F1 "
              "| per photo |\n|---|---|---|---|---|")
        for scoring, per in rows.items():
            iou, ref = [r["iou"] for r in per], [r["iou"] for r in base[scoring]]
            m, lo, hi = mean_interval(iou)
            d, dlo, dhi = paired_bootstrap(iou, ref)
            bf1 = float(np.mean([r["boundary_f1"] for r in per]))
            print(f"| {scoring} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}] | {bf1:.3f} | "
                  + " ".join(f"{r['name']} {r['iou']:.3f}" for r in per) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
