"""Entry point of the ``gen3r`` command.

Each subcommand lives in its own module of :mod:`gen3r.cli` that defines
``register(subparsers)``; the module adds its parser and sets ``func(args) -> int``.
Subcommands are discovered, so adding a command never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from gen3r import __version__
from gen3r.errors import Gen3RError

logger = logging.getLogger("gen3r")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gen3r",
        description="Gen3R: generate RGB video and 3D geometry from 1, 2 or many images.",
    )
    parser.add_argument("--version", action="version", version=f"gen3r {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import gen3r.cli as cli_pkg

    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"gen3r.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Gen3RError as exc:
        print(f"gen3r: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gen3r: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
