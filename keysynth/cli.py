"""The ``keysynth`` console script: one parser, one sub-command per registered module.

Each package owns its sub-commands in a ``commands`` module exposing
``register(subparsers) -> None``; every registered sub-parser sets ``func`` (a callable taking
the parsed ``argparse.Namespace`` and returning an exit code). This module only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Order = order in --help. Each entry is a module with ``register(subparsers)``.
COMMAND_MODULES = (
    "synth.commands",      # synth, preview
    "train.commands",      # train
    "real_eval.commands",  # eval, convert, predict, export
    "keysynth.demo",       # demo
    "keysynth.app",        # app (web app; imports gradio only when run)
    "keysynth.stats",      # stats, and the --real statistics section of preview
)


# sub-commands whose --out is a folder (the others write one file there)
FOLDER_OUTPUTS = ("synth", "train", "eval", "convert", "predict", "calibrate", "cutouts", "demo")
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

    class StderrHandler(logging.StreamHandler):
        """Writes to ``sys.stderr`` as it is at each message (a caller may have replaced it since)."""

        @property
        def stream(self):
            return sys.stderr

        @stream.setter
        def stream(self, value) -> None:
            pass

    handler = StderrHandler()
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
    out = getattr(args, "out", None)
    if args.command in FOLDER_OUTPUTS and out and os.path.exists(out) and not os.path.isdir(out):
        print(f"keysynth {args.command}: error: --out {out} is a file; pass a folder (it is created if missing)",
              file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        # Library code raises ValueError/FileNotFoundError/RuntimeError with messages naming the bad file or
        # value and the fix; show them without a traceback.
        print(f"keysynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable or wrong output path, a full disk: no traceback
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"keysynth {args.command}: error: {exc.strerror or exc}{where}; check that the output path (--out) "
              f"is a folder you can write to and that the disk has room", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keysynth {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
