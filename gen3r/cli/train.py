"""``gen3r train vggt|vae|adapter|dit``: the base models and the two Gen3R training stages.

Single process: ``gen3r train dit --preset mini`` or ``--config dit.json``; several GPUs / CPU
processes: ``torchrun --nproc_per_node 8 -m gen3r.cli.main train dit --config dit.json`` (DDP; see
docs/training.md).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gen3r.cli._common import positive_int

logger = logging.getLogger(__name__)

STAGES = ("vggt", "vae", "adapter", "dit")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train a base model (vggt, vae), the geometry adapter (stage 1) or the DiT (stage 2)",
        description="Train Gen3R. 'vggt' and 'vae' train the base models from scratch (mini scale); 'adapter' "
                    "trains the geometry adapter against frozen VGGT + Wan VAE; 'dit' fine-tunes the joint DiT. "
                    "Settings come from --preset and/or a JSON --config (its fields override the "
                    "preset; see docs/training.md); the options below override both. Runs under torchrun for DDP.",
        epilog="How to start:\n"
               "  gen3r train vae --preset smoke --out runs/try      # seconds: see a run, its metrics.jsonl\n"
               "  bash scripts/train_mini.sh                         # the shipped mini model, every stage\n"
               "  gen3r train adapter --preset official --print-config > adapter.json   # the released recipe\n"
               "  gen3r train adapter --config adapter.json --checkpoint checkpoints/Gen3R --data-root data\n"
               "Interrupted? Run the same command with --resume.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=STAGES, help="training stage")
    parser.add_argument("--preset", default=None, help="named settings of the stage: smoke (CI, seconds), mini "
                        "(the shipped mini model's recipe), official (adapter/dit: the released recipe; give "
                        "--checkpoint and --data-root); `--print-config` shows one")
    parser.add_argument("--config", type=Path, default=None, help="JSON config file")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="Gen3R checkpoint folder providing the frozen components (overrides 'checkpoint')")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="dit: geo_adapter folder or adapter run folder to use (overrides 'adapter_path')")
    parser.add_argument("--data-cache", type=Path, default=None,
                        help="scene cache to train on (gen3r cache; overrides 'data.cache')")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="official-layout data folder holding the dataset folders (overrides 'data.root')")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as JSON (a file to edit and pass as --config) and exit")
    parser.add_argument("--out", type=Path, default=None, help="output folder (overrides 'output_dir')")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="optimizer steps (overrides 'max_steps'; also sets the schedule length)")
    parser.add_argument("--stop-at", type=positive_int, default=None,
                        help="stop (with a checkpoint) at this step without changing the schedule")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint-<step> in the output folder")
    parser.add_argument("--resume-with-changes", action="store_true",
                        help="--resume even though settings differ from the checkpoint's (on purpose; logged)")
    parser.set_defaults(func=run)


#: Base-model stages: the class their ``model`` sizes build and the component their ``init`` names.
_BASE_MODELS = {"vggt": ("gen3r.models.vggt:VGGT", "vggt"), "vae": ("diffusers:AutoencoderKLWan", "wan_vae")}


def _non_finite(data, key: str = "") -> str | None:
    """The first config key (``optim.lr``, ``optim.betas[0]``) holding NaN or an infinity, else None."""
    import math

    if isinstance(data, dict):
        items = [(f"{key}.{k}" if key else str(k), v) for k, v in data.items()]
    elif isinstance(data, (list, tuple)):
        items = [(f"{key}[{i}]", v) for i, v in enumerate(data)]
    else:
        return key if isinstance(data, float) and not math.isfinite(data) else None
    for sub, value in items:
        if (found := _non_finite(value, sub)) is not None:
            return found
    return None


def check_before_models(stage: str, config) -> None:
    """Everything the trainers would reject only once they build or load models: the output folder,
    the data, the device, the checkpoint, the weights to start from and the model sizes."""
    import importlib

    import torch

    from gen3r.atomic import file_in_the_way
    from gen3r.errors import Gen3RError
    from gen3r.pipeline.loading import check_device, detect_layout, resolve_checkpoint
    from gen3r.train.data import build_dataset
    from gen3r.train.stages import resolve_component

    out = Path(config.output_dir)
    blocked = file_in_the_way(out, include_self=True)
    if blocked is not None:
        raise Gen3RError(f"output folder {out} cannot be used: {blocked} is a file; pass another --out")
    build_dataset(config.data, config.seed)  # data errors first (cheap: index files, no frames read)
    check_device(config.device, "config key 'device'")
    if stage in ("adapter", "dit"):
        if config.checkpoint is None:
            raise Gen3RError("no Gen3R checkpoint given; set 'checkpoint' in the config or pass --checkpoint DIR")
        detect_layout(resolve_checkpoint(config.checkpoint))
    if stage == "dit" and config.adapter_path is not None:
        resolve_component(config.adapter_path, "geo_adapter")
    if stage in _BASE_MODELS:
        target, component = _BASE_MODELS[stage]
        if config.init != "random":
            resolve_component(config.init, component)
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        try:
            with torch.device("meta"):  # sizes only: no memory, no weights
                cls(**config.model)
        except Exception as exc:  # unknown or impossible sizes raise many types
            reason = " ".join(str(exc).split())  # one line
            raise Gen3RError(f"config key 'model' cannot build {name} ({type(exc).__name__}: {reason}); fix the sizes "
                             f"(`gen3r train {stage} --preset smoke --print-config` shows valid ones)") from None


def run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from gen3r.errors import Gen3RError
    from gen3r.train.config import read_config_json
    from gen3r.train.presets import PRESETS, merge, preset
    from gen3r.train.stages import resolve_component, stage_entry

    if args.preset is None and args.config is None:
        raise Gen3RError(f"pass --preset NAME ({', '.join(PRESETS[args.stage])}) or --config FILE.json (or both); "
                         "`gen3r train --help` shows how to start")
    data = preset(args.stage, args.preset) if args.preset else {}
    if args.config is not None and args.config.is_dir():
        raise Gen3RError(f"--config {args.config} is a folder; pass a JSON file with the training settings")
    if args.config is not None:
        data = merge(data, read_config_json(args.config))
    for key, value in (("checkpoint", args.checkpoint), ("output_dir", args.out), ("max_steps", args.max_steps)):
        if value is not None:
            data[key] = str(value) if isinstance(value, Path) else value
    if args.data_cache is not None and args.data_root is not None:
        raise Gen3RError("--data-cache and --data-root both given; train on one of them")
    if args.data_cache is not None:
        data = merge(data, {"data": {"cache": str(args.data_cache), "root": None}})
    if args.data_root is not None:
        data = merge(data, {"data": {"root": str(args.data_root), "cache": None}})
    if args.adapter is not None:
        if args.stage != "dit":
            raise Gen3RError("--adapter is an option of the dit stage")
        data["adapter_path"] = str(resolve_component(args.adapter, "geo_adapter"))
    config_cls, train = stage_entry(args.stage)
    from gen3r.train.config import config_from_dict, config_to_dict

    config = config_from_dict(config_cls, data)
    bad = _non_finite(config_to_dict(config))
    if bad is not None:
        raise Gen3RError(f"config key {bad!r} is NaN or infinite; write a finite number")
    if args.print_config:
        import json

        from gen3r.train.config import validate

        print(json.dumps(config_to_dict(validate(config)), indent=1))
        return 0
    check_before_models(args.stage, config)
    try:
        result = train(config, resume=args.resume or args.resume_with_changes, max_steps=args.stop_at,
                       allow_config_changes=args.resume_with_changes)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    logger.info("finished at step %d; last checkpoint %s", result.step, result.checkpoint)
    return 0
