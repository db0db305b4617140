"""``keysynth stats``: a real set's scene statistics next to the generator's, measured the same way.

Renders ``--n`` samples with the given generator settings, measures both sets with
:mod:`real_eval.scene_stats` (key length relative to the long side, key share, keys per photo,
position, brightness, warmth, edge contrast), prints a table of medians and quartiles and writes
the histograms as a PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "cmd_stats"]


def cmd_stats(args: argparse.Namespace) -> int:
    from backgrounds import make_backgrounds
    from real_eval.dataset import load_real_set
    from real_eval.scene_stats import compare_table, plot_comparison, set_stats
    from synth import SampleRenderer
    from synth.commands import load_config

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: the comparison is a PNG image; give a file name ending in .png")
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    real = load_real_set(args.real, fmt=args.format)
    if not real:
        raise ValueError(f"real set {args.real} holds no photos")
    config = load_config(args.config, args.size, args.key_source)
    renderer = SampleRenderer(config, backgrounds=make_backgrounds(args.backgrounds))
    synth = [renderer.render(i, args.seed) for i in range(args.n)]
    a = set_stats((s.image, s.mask) for s in real)
    b = set_stats((s["image"], s["mask"]) for s in synth)
    names = (f"real: {Path(args.real).name}", "generator")
    print(compare_table(a, b, names))
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(a, b, names, out)
    print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("stats", help="compare a real set's scene statistics with the generator's",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("real", help="real annotated set (any supported format)")
    p.add_argument("--out", required=True, help="histogram PNG to write")
    p.add_argument("--n", type=int, default=200, help="generator samples to measure (default 200)")
    p.add_argument("--size", type=int, default=None, help="sample side, px (default: the config's)")
    p.add_argument("--config", default=None, metavar="YAML", help="SynthConfig YAML (default: built-in)")
    p.add_argument("--key-source", default=None, metavar="SPEC", help="key source(s), as in `keysynth synth`")
    p.add_argument("--backgrounds", default="default", metavar="SPEC",
                   help="background source: default | procedural | bundled | a folder of photos")
    p.add_argument("--format", default=None, help="annotation format of REAL (default: auto-detect)")
    p.add_argument("--seed", type=int, default=0, help="generator run seed (default 0)")
    p.set_defaults(func=cmd_stats)
