"""The ``keysynth`` console script: one parser, one sub-command per registered module.

Each package owns its sub-commands in a ``commands`` module exposing
``register(subparsers) -> None``; every registered sub-parser sets ``func`` (a callable taking
the parsed ``argparse.Namespace`` and returning an exit code). This module only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order = order in --help. Each entry is a module with ``register(subparsers)``.
COMMAND_MODULES = (
    "synth.commands",      # synth, preview
    "train.commands",      # train
    "real_eval.commands",  # eval, convert, predict, export
    "keysynth.demo",       # demo
    "keysynth.app",        # app (web app; imports gradio only when run)
    "keysynth.stats",      # stats
)


# the package loggers whose INFO messages a user of the CLI sees
LOGGERS = ("keysynth", "synth", "train", "real_eval", "backgrounds")


class CLIError(Exception):
    """A user-facing error: printed as ``keysynth: error: ...`` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keysynth",
        description="Synthetic key-segmentation data: generate, train on a live stream, evaluate on real photos.",
    )
    from keysynth import __version__

    parser.add_argument("--version", action="version", version=f"keysynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _show_logs() -> None:
    """INFO and above of keysynth's own loggers reach stderr; other libraries stay at their defaults."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("keysynth %(levelname)s: %(message)s"))
    for name in LOGGERS:
        lg = logging.getLogger(name)
        if not lg.handlers:
            lg.addHandler(handler)
            lg.setLevel(logging.INFO)
            lg.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _show_logs()
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        # Library code raises ValueError/FileNotFoundError/RuntimeError with messages naming the bad file or
        # value and the fix; show them without a traceback.
        print(f"keysynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keysynth {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
