"""``keysynth synth`` and ``keysynth preview`` sub-commands (registered by ``keysynth/cli.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

__all__ = ["register", "cmd_synth", "cmd_preview", "load_config"]


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low``, with an error that names the bad value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def load_config(path: str | None, size: int | None, key_source: str | None = None):
    """``SynthConfig`` from ``path`` (YAML; default config when None), with ``size`` (px) and
    ``key_source`` (checked by building the source once) overriding when given.

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: a bad ``key_source``.
    """
    from synth import SynthConfig

    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--config {path}: no such file; pass a YAML file written by SynthConfig.to_yaml")
        config = SynthConfig.from_yaml(path)
    else:
        config = SynthConfig()
    if size is not None:
        config = dataclasses.replace(config, size=int(size))
    if key_source is not None:
        from synth.keysources import make_keys

        make_keys(key_source)
        config = dataclasses.replace(config, key_source=key_source)
    return config


def _cutouts(root: str):
    """``synth.cutouts.FolderCutouts(root)``; a clear error if the folder is missing."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"--cutouts {root}: no such folder; give a folder of key cut-out images")
    from synth.cutouts import FolderCutouts

    return FolderCutouts(root)


def _size_help(what: str) -> str:
    try:
        from synth import SynthConfig

        default = f"{SynthConfig().size} px"
    except Exception:  # config module unavailable: help still works
        default = "see the config"
    return f"{what} in pixels (square); default: the config's size (built-in config: {default})"


def cmd_synth(args: argparse.Namespace) -> int:
    """Generate a dataset on disk (resumable); prints a one-line summary. Returns 0."""
    from synth.generate import build_renderer, generate_dataset

    config = load_config(args.config, args.size, args.key_source)
    renderer = build_renderer(config, args.backgrounds, args.cutouts)
    summary = generate_dataset(
        args.out, n=args.n, run_seed=args.seed, config=config, backgrounds_spec=args.backgrounds,
        cutouts=args.cutouts, workers=args.workers, backend=args.backend, scheduler=args.scheduler,
        fmt=args.format, shard_size=args.shard_size, chunk_size=args.chunk_size, coco=args.coco,
        coco_segmentation=args.coco_segmentation, progress=not args.quiet, renderer=renderer,
    )
    what = "resumed" if summary["resumed"] else "wrote"
    print(
        f"{what} {summary['n']} samples ({summary['rendered']} rendered now, {summary['skipped']} already done) "
        f"to {summary['out_dir']} as {summary['format']} in {summary['seconds']:.1f} s "
        f"({summary['samples_per_s']:.1f} samples/s, {summary['workers']} {summary['backend']} workers); "
        f"files: {', '.join(summary['files'])}"
    )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Write a grid of ``--n`` samples and a parameter-histogram PNG next to it. Returns 0."""
    from backgrounds import make_backgrounds
    from synth.preview import write_preview

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: the preview is a PNG image; give a file name ending in .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    hist = out.with_name(out.stem + "_hist.png")
    config = load_config(args.config, args.size, args.key_source)
    keys = _cutouts(args.cutouts) if args.cutouts else None
    write_preview(out, n=args.n, config=config, run_seed=args.seed, backgrounds=make_backgrounds(args.backgrounds),
                  hist_png=hist, keys=keys)
    print(f"wrote {out} ({args.n} samples, {config.size} px) and {hist}")
    return 0


def _add_common(p: argparse.ArgumentParser, *, size_help: str) -> None:
    p.add_argument("--cutouts", default=None, metavar="DIR",
                   help="folder of your own key cut-outs (RGBA PNGs, e.g. from `keysynth cutouts`) to paste as keys "
                        "(default: procedural keys)")
    p.add_argument("--key-source", default=None, metavar="SPEC",
                   help="key source(s), overriding the config's key_source: procedural | a cut-out folder "
                        "(e.g. from `keysynth cutouts`) | a weighted mix such as procedural:0.5,DIR:0.5 (each key "
                        "draws its source by weight; cut-outs are re-lit and edge-blended)")
    p.add_argument("--seed", type=_seed, default=0, help="run seed (integer >= 0); sample i uses seed (SEED, i), so outputs are reproducible (default: 0)")
    p.add_argument("--size", type=_positive_int, default=None, help=size_help)
    p.add_argument("--config", default=None, metavar="YAML", help="SynthConfig YAML file (default: built-in config); --size overrides its size")
    p.add_argument("--backgrounds", default="default", metavar="SPEC",
                   help="background source: default | procedural | bundled | a folder of photos (default: default)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` and ``preview`` to the ``keysynth`` sub-command parser."""
    from synth.writers import COCO_SEGMENTATIONS, WRITERS
    from synth.generate import BACKENDS

    p = subparsers.add_parser(
        "synth", help="generate a synthetic key-segmentation dataset on disk (parallel, resumable)",
        description="Render N synthetic samples (image + key mask + meta) into --out. Re-running the same "
                    "command after a kill completes only the missing samples; output bytes do not depend on "
                    "--workers or --backend.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (new/empty, or the same run to resume)")
    p.add_argument("--n", type=_positive_int, required=True, metavar="N", help="number of samples (>= 1)")
    _add_common(p, size_help=_size_help("image side"))
    p.add_argument("--workers", type=_positive_int, metavar="N", default=max(1, (os.cpu_count() or 2) - 1),
                   help="worker processes (loky pool size, or local Dask workers) (default: CPU cores - 1)")
    p.add_argument("--backend", choices=BACKENDS, default="loky", help="parallel engine: loky process pool or Dask distributed (default: loky)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --backend dask; default: a local cluster "
                        "on 127.0.0.1); --out must be on storage shared by all workers")
    p.add_argument("--format", choices=list(WRITERS), default="folder",
                   help="folder: images/*.jpg + masks/*.png; webdataset: shard-NNNNNN.tar; coco: folder + annotations.json (default: folder)")
    p.add_argument("--shard-size", type=_positive_int, metavar="N", default=1000, help="samples per WebDataset tar shard (default: 1000)")
    p.add_argument("--chunk-size", type=_positive_int, metavar="N", default=32, help="samples per work unit / resume unit for folder and coco (default: 32)")
    p.add_argument("--coco", action="store_true", help="with --format folder: also write COCO instances annotations.json")
    p.add_argument("--coco-segmentation", choices=COCO_SEGMENTATIONS, default="polygon",
                   help="COCO segmentation: polygon (RLE for keys with holes) or rle (pixel-exact) (default: polygon)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

    q = subparsers.add_parser("preview", help="write a grid of synthetic samples and a histogram of their parameters",
                              description="Render --n samples into a grid PNG (--out) and their sampled-parameter histograms into OUT_hist.png.")
    q.add_argument("--out", required=True, metavar="PNG", help="grid image path (.png); histograms go to <stem>_hist.png next to it")
    q.add_argument("--n", type=_positive_int, default=64, metavar="N", help="number of samples in the grid (default: 64)")
    _add_common(q, size_help="sample side in pixels (square) (default: 256 px)")
    q.set_defaults(func=cmd_preview, size=256)
