"""``gen3r assemble``: write a mini Gen3R checkpoint from trained stages (see gen3r.train.mini)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``assemble`` subcommand."""
    parser = subparsers.add_parser(
        "assemble", help="build a mini Gen3R checkpoint from trained stages (the mini recipe)",
        description="Write a Gen3R checkpoint (our layout) whose components come from trained runs "
                    "(--vggt, --vae, --adapter, --dit: a run folder, a checkpoint-<step> folder or a component "
                    "folder), from --base, or fresh with the mini sizes. A trained VAE gets its latent "
                    "statistics fitted on --cache.")
    parser.add_argument("out", type=Path, help="checkpoint folder to write")
    parser.add_argument("--base", type=Path, default=None, help="checkpoint supplying the components not given")
    for stage in ("vggt", "vae", "adapter", "dit"):
        parser.add_argument(f"--{stage}", type=Path, default=None, help=f"trained {stage} run or folder")
    parser.add_argument("--cache", type=Path, default=None, help="scene cache for the VAE latent statistics")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fresh components (default 0)")
    parser.add_argument("--arch", choices=("mini", "mini-2stage", "smoke", "smoke-2stage"), default="mini",
                        help="sizes of the fresh components (default mini; smoke: tiny, for tests; *-2stage: "
                             "the DiT is appearance-only, the 2-stage ablation)")
    parser.add_argument("--fresh", action="append", choices=("vggt", "vae", "adapter", "dit"), default=[],
                        help="build this stage's component fresh from --arch even when --base has one "
                             "(repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from gen3r.train.mini import assemble
    from gen3r.train.presets import ARCHS

    trained = {stage: getattr(args, stage) for stage in ("vggt", "vae", "adapter", "dit") if getattr(args, stage)}
    assemble(args.out, base=args.base, trained=trained, cache=args.cache, seed=args.seed, overwrite=args.overwrite,
             dtype=torch.float16 if args.fp16 else None, arch=ARCHS[args.arch], fresh=args.fresh)
    return 0
