"""``gen3r train adapter|dit``: the two official Gen3R training stages.

Single process: ``gen3r train dit --config dit.json``; several GPUs / CPU processes:
``torchrun --nproc_per_node 8 -m gen3r.cli.main train dit --config dit.json`` (DDP; see
docs/training.md).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gen3r.cli._common import positive_int

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train the geometry adapter (stage 1) or fine-tune the DiT (stage 2)",
        description="Train Gen3R. Stage 'adapter' trains the geometry adapter against frozen VGGT + Wan VAE; "
                    "stage 'dit' fine-tunes the joint DiT. The JSON config holds every setting "
                    "(see docs/training.md); the options below override it. Runs under torchrun for DDP.")
    parser.add_argument("stage", choices=("adapter", "dit"), help="training stage")
    parser.add_argument("--config", type=Path, required=True, help="JSON config file")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="Gen3R checkpoint folder providing the frozen components (overrides 'checkpoint')")
    parser.add_argument("--out", type=Path, default=None, help="output folder (overrides 'output_dir')")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="optimizer steps (overrides 'max_steps'; also sets the schedule length)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint-<step> in the output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from gen3r.train.adapter_trainer import train_adapter
    from gen3r.train.config import AdapterTrainConfig, DitTrainConfig, config_from_dict, read_config_json
    from gen3r.train.dit_trainer import train_dit

    data = read_config_json(args.config)
    for key, value in (("checkpoint", args.checkpoint), ("output_dir", args.out), ("max_steps", args.max_steps)):
        if value is not None:
            data[key] = str(value) if isinstance(value, Path) else value
    cls, fn = (AdapterTrainConfig, train_adapter) if args.stage == "adapter" else (DitTrainConfig, train_dit)
    config = config_from_dict(cls, data)
    try:
        result = fn(config, resume=args.resume)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    logger.info("finished at step %d; last checkpoint %s", result.step, result.checkpoint)
    return 0
