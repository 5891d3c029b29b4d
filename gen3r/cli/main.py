"""Entry point of the ``gen3r`` command.

Each subcommand lives in its own module of :mod:`gen3r.cli` that defines
``register(subparsers)``; the module adds its parser and sets ``func(args) -> int``.
Subcommands are discovered, so adding a command never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from gen3r import __version__
from gen3r.cli._common import thread_count
from gen3r.errors import Gen3RError

logger = logging.getLogger("gen3r")


#: Subcommands that run models for long enough to care about CPU threads.
_HEAVY_COMMANDS = frozenset({"generate", "reconstruct", "eval", "train", "demo", "assemble", "app", "cache"})


def configure_threads(threads: int | None, command: str | None) -> None:
    """Set torch's CPU threads (``--threads``; also exported as ``OMP_NUM_THREADS`` for worker
    processes) and, for a model-running command, warn when other processes already keep the cores
    busy: torch processes sharing cores slow each other down up to ~10x."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
    if command not in _HEAVY_COMMANDS or not hasattr(os, "getloadavg"):
        return
    cores = os.cpu_count() or 1
    mine = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or cores
    busy = os.getloadavg()[0]
    if busy >= 0.9 and busy + mine > cores + 0.5:
        logger.warning("the CPU is already busy (load %.1f on %d cores) and this run uses %d thread(s): CPU jobs "
                       "sharing cores slow each other down up to ~10x; run one at a time or give each "
                       "`gen3r --threads K` with the K's adding up to %d", busy, cores, mine, cores)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gen3r",
        description="Gen3R: generate RGB video and 3D geometry from 1, 2 or many images.",
    )
    parser.add_argument("--version", action="version", version=f"gen3r {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N",
                        help="CPU threads of torch (default: OMP_NUM_THREADS, else every core). Two CPU runs "
                             "at once on one machine: give each half the cores (e.g. --threads 1 on 2 cores); "
                             "sharing cores makes both ~10x slower")
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
    configure_threads(args.threads, args.command)
    try:
        return int(args.func(args) or 0)
    except Gen3RError as exc:
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"gen3r: error: {message}", file=sys.stderr)  # one line, the last one printed
        return 2
    except KeyboardInterrupt:
        print("gen3r: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
