"""A real set's scene statistics next to the generator's, measured the same way.

Renders --n samples with the given generator settings, measures both sets (key length relative to
the long side, key share, keys per photo, position, brightness, warmth, edge contrast), prints a
table of medians and quartiles and writes the histograms as a PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "cmd_stats", "compare_with_real"]


def compare_with_real(real_dir: str, fmt: str | None, config, backgrounds: str, n: int, seed: int, out: Path) -> str:
    """Render ``n`` samples, measure them and the real set the same way, write the histogram PNG
    ``out``; returns the table of medians and quartiles.

    Raises:
        ValueError: the real set holds no photos, or a reader error naming the file.
    """
    from backgrounds import make_backgrounds
    from real_eval.dataset import load_real_set
    from real_eval.scene_stats import compare_table, plot_comparison, set_stats
    from synth import SampleRenderer

    real = load_real_set(real_dir, fmt=fmt)
    if not real:
        raise ValueError(f"real set {real_dir} holds no photos")
    renderer = SampleRenderer(config, backgrounds=make_backgrounds(backgrounds))
    synth = [renderer.render(i, seed) for i in range(n)]
    a = set_stats((s.image, s.mask) for s in real)
    b = set_stats((s["image"], s["mask"]) for s in synth)
    names = (f"real: {Path(real_dir).name}", "generator")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(a, b, names, out)
    return compare_table(a, b, names)


def cmd_stats(args: argparse.Namespace) -> int:
    """``keysynth stats``: print the comparison table and write the histogram PNG ``--out``; returns 0.

    Raises:
        ValueError: ``--out`` not a .png, ``--n`` < 1, or a bad real set / config (named in the message).
    """
    from synth.commands import load_config

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: the comparison is a PNG image; give a file name ending in .png")
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    config = load_config(args.config, args.size, args.key_source)
    print(compare_with_real(args.real, args.format, config, args.backgrounds, args.n, args.seed, out))
    print(f"wrote {out}")
    return 0


def _preview_with_stats(preview_func):
    """``keysynth preview`` plus, with ``--real DIR``, the scene-statistics comparison of its samples."""

    def run(args: argparse.Namespace) -> int:
        from synth.commands import load_config

        if args.real is not None and not Path(args.real).exists():
            raise ValueError(f"--real {args.real} does not exist; pass an annotated set of real key photos")
        rc = preview_func(args)
        if rc == 0 and args.real is not None:
            out = Path(args.out)
            stats_png = out.with_name(out.stem + "_stats.png")
            config = load_config(args.config, args.size, args.key_source)
            print(compare_with_real(args.real, None, config, args.backgrounds, args.n, args.seed, stats_png))
            print(f"wrote {stats_png}")
        return rc

    return run


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
    preview = subparsers.choices.get("preview")
    if preview is not None:  # a statistics section for `keysynth preview`
        preview.add_argument("--real", default=None, metavar="DIR",
                             help="also compare the previewed samples' scene statistics with this annotated real "
                                  "set (table printed, histograms in <stem>_stats.png)")
        preview.set_defaults(func=_preview_with_stats(preview.get_default("func")))
