"""``gen3r cache``: pre-render procedural scenes once for training and benchmarks (see gen3r.data.cache)."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from gen3r.cli._common import positive_int

logger = logging.getLogger(__name__)


def seed_range(text: str) -> range:
    """``START:END`` (END exclusive) -> range (argparse type)."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not match or int(match[1]) >= int(match[2]):
        raise argparse.ArgumentTypeError(f"expected a seed range START:END with START < END, got {text!r}")
    return range(int(match[1]), int(match[2]))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cache`` subcommand."""
    from gen3r.data.procedural import KINDS, TRAJECTORIES

    parser = subparsers.add_parser(
        "cache", help="pre-render procedural scenes into a sharded cache that every trainer reads",
        description="Render procedural scenes (rgb, depth, cameras, captions) for a seed range into "
                    "sharded .npy folders. Seeds < 1,000,000 are for training, 1,000,000..1,000,999 are "
                    "the dev set. An interrupted run resumes where it stopped.")
    parser.add_argument("out", type=Path, help="cache folder (new, or an earlier cache with the same settings)")
    parser.add_argument("--seeds", type=seed_range, required=True, help="seed range START:END (END exclusive)")
    parser.add_argument("--frames", type=positive_int, default=17, help="frames per scene (default 17)")
    parser.add_argument("--size", type=positive_int, default=112, help="square image side in pixels (default 112)")
    parser.add_argument("--kind", choices=(*KINDS, "random"), default="random", help="scene kind (default random)")
    parser.add_argument("--trajectory", choices=(*TRAJECTORIES, "mixed"), default="mixed",
                        help="camera path; mixed draws one per seed (default)")
    parser.add_argument("--shard-size", type=positive_int, default=64, help="scenes per shard (default 64)")
    parser.add_argument("--workers", type=positive_int, default=1, help="render processes (default 1)")
    parser.add_argument("--layout", choices=("cache", "official"), default="cache",
                        help="cache: sharded arrays for training (default); official: the same scenes through the "
                             "procedural writer in the official layout (split test) for gen3r eval --dataset official")
    parser.add_argument("--overwrite", action="store_true", help="official layout: replace an existing OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gen3r.data.cache import SceneCache, write_cache, write_eval_layout

    if args.layout == "official":
        write_eval_layout(args.out, args.seeds, num_frames=args.frames, height=args.size, width=args.size,
                          kind=args.kind, trajectory=args.trajectory, overwrite=args.overwrite)
        logger.info("wrote %d scenes in the official layout to %s", len(args.seeds), args.out)
        return 0
    write_cache(args.out, args.seeds, num_frames=args.frames, height=args.size, width=args.size, kind=args.kind,
                trajectory=args.trajectory, shard_size=args.shard_size, workers=args.workers)
    logger.info("scene cache %s holds %d scenes", args.out, len(SceneCache(args.out)))
    return 0
