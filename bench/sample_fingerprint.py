"""Fingerprint of rendered samples, to prove a refactor of the renderer leaves every byte unchanged.

Renders ``--n`` samples (every 10th with ``debug=True``, so the label-coverage arrays count too)
for a few configurations that exercise every layout kind, the asset banks on and off, distractors,
rings, fingers, blobs, the ignore band, photo backgrounds and mixed real cut-outs, and prints one
SHA-256 per configuration over image, mask, instances, debug arrays and the JSON meta. Run it
before and after a change (e.g. in a ``git worktree`` of the old commit) and compare the lines.

Usage::

    python bench/sample_fingerprint.py --n 200 [--photos DIR] [--cutouts DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fingerprint(renderer, n: int, run_seed: int = 7) -> str:
    h = hashlib.sha256()
    for i in range(n):
        s = renderer.render(i, run_seed, debug=(i % 10 == 0))
        for k in ("image", "mask", "instances", "key_alpha", "coverage"):
            if k in s:
                h.update(np.ascontiguousarray(s[k]).tobytes())
        h.update(json.dumps(s["meta"], sort_keys=True).encode())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    from backgrounds import make_backgrounds
    from synth import SampleRenderer, SynthConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="samples per configuration")
    p.add_argument("--photos", default=None, help="background photo folder (adds a configuration)")
    p.add_argument("--cutouts", default=None, help="cut-out folder from `keysynth cutouts` (adds a mixed configuration)")
    args = p.parse_args(argv)
    base = SynthConfig.default()
    variants = {
        "default-procedural": (base, "procedural"),
        "no-banks-occluders": (base.replace(asset_bank_size=0, distractor_bank_size=0, background_bank_size=0,
                                            n_distractors_range=[2, 5], hand_prob=0.6, blob_occluder_prob=0.5,
                                            ignore_band=True), "procedural"),
        "flat-shading": (base.replace(shading=False, n_distractors_range=[1, 4]), "procedural"),
    }
    if args.photos:
        variants["default-photos"] = (base, args.photos)
    if args.cutouts:
        variants["mixed-cutouts"] = (base.replace(key_source=f"procedural:0.5,{args.cutouts}:0.5", size=192),
                                     args.photos or "procedural")
    for name, (cfg, bg) in variants.items():
        print(name, fingerprint(SampleRenderer(cfg, backgrounds=make_backgrounds(bg)), args.n), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
