"""``keysynth train``: one CLI flag per ``TrainConfig`` field, generated from the dataclass.

Precedence: defaults < ``--config file.yaml`` < flags. With ``--resume`` and no ``--config``, the
run's own ``OUT/config.yaml`` is the base, so ``keysynth train --out runs/a --resume`` continues a
run with its settings.
"""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path

from train.config import TrainConfig, coerce, config_fields

__all__ = ["register", "config_from_args", "cmd_train"]


def _add_field_flags(p: argparse.ArgumentParser) -> None:
    for name, hint, default, doc in config_fields():
        if name in ("out", "resume"):
            continue
        flag = "--" + name.replace("_", "-")
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        help_ = f"{doc} (default: {default!r})" if doc else f"(default: {default!r})"
        if base is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_)
        else:
            p.add_argument(flag, dest=name, metavar=base.__name__.upper(), default=argparse.SUPPRESS, help=help_)


def register(subparsers) -> None:
    """Add ``keysynth train`` to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "train", help="train a segmentation model on the live synthetic stream",
        description="Train on samples streamed from generator processes (or a refreshed --data-dir); "
                    "evaluate on a fixed synthetic set and on --real-dir; checkpoints in OUT/checkpoints.")
    p.add_argument("--config", default=None, help="TrainConfig YAML; flags override its values")
    p.add_argument("--out", default=argparse.SUPPRESS, help="run directory (default: runs/train)")
    p.add_argument("--resume", nargs="?", const="auto", default=argparse.SUPPRESS,
                   help="continue from OUT/checkpoints/last.pt (no value), a run dir or a checkpoint file")
    _add_field_flags(p)
    p.set_defaults(func=cmd_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Resolve defaults -> YAML (``--config``, or the run's config.yaml when resuming) -> flags."""
    names = {name for name, *_ in config_fields()}
    flags = {k: v for k, v in vars(args).items() if k in names}
    base = TrainConfig()
    if getattr(args, "config", None):
        base = TrainConfig.from_yaml(args.config)
    elif flags.get("resume"):
        run_cfg = Path(flags.get("out", base.out)) / "config.yaml"
        if run_cfg.is_file():
            base = TrainConfig.from_yaml(run_cfg)
    hints = typing.get_type_hints(TrainConfig)
    changes = {k: coerce(k, v, hints[k], source=f"--{k.replace('_', '-')}") for k, v in flags.items()}
    return base.replace(**changes).validate()


def cmd_train(args: argparse.Namespace) -> int:
    from train.trainer import train

    summary = train(config_from_args(args))
    short = {k: summary[k] for k in ("step", "out", "last", "best", "best_score", "metrics")}
    print(json.dumps(short, indent=2, default=str))
    return 0
