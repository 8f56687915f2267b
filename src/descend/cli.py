"""The ``descend`` command. Each subcommand is a module with ``add_arguments(parser)`` and
``run(args) -> int``; its docstring's first line is its help. Adding a command is one line here.
Run it as ``descend ...`` or ``python -m descend ...``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "compare": "descend.lab.compare",
    "benchmark": "descend.lab.benchmark.command",
    "report": "descend.lab.report",
    "landscape": "descend.lab.landscape",
    "lr-find": "descend.lab.lrfind",
    "precision": "descend.lab.precision",
    "cheatsheet": "descend.lab.cheatsheet",
    "bench": "descend.bench",
    "build-native": "descend.engines.native",
}


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(
            f"this command needs the lab's dependencies ({e.name} is missing): "
            "pip install 'descend[lab]'"
        ) from e


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given ``command``, one that imports only that command's
    module (the others' help lines are shown only by ``descend --help``, which names none)."""
    parser = argparse.ArgumentParser(
        prog="descend", description="Optimizers for PyTorch, and a lab that measures them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name)
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            sub.add_parser(name, help="(needs pip install 'descend[lab]')")
            continue
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else "", description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    try:
        return _load(COMMANDS[args.command]).run(args) or 0
    except (UserError, ValueError) as e:
        print(f"descend {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"descend {args.command}: interrupted; finished runs are saved "
              "(continue with --resume)", file=sys.stderr)
        return 130

