"""``gen3r convert``: official checkpoint layout -> our layout (config + safetensors per component)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gen3r.cli._common import DTYPES

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert an official Gen3R checkpoint into our layout",
                       description="Load an official-layout checkpoint strictly and write our layout: one "
                                   "folder per component with its config and safetensors in our key names, "
                                   "plus model_index.json. Loading the result gives identical tensors.")
    p.add_argument("official_dir", type=Path, help="official checkpoint folder (git clone of the release)")
    p.add_argument("out_dir", type=Path, help="output folder (written atomically)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="dtype of the written weights")
    p.add_argument("--architecture", type=Path, default=None,
                   help="JSON with sizes the official configs cannot express (tiny test checkpoints)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from gen3r.atomic import file_in_the_way
    from gen3r.errors import Gen3RError
    from gen3r.pipeline import Gen3RPipeline
    from gen3r.pipeline.loading import detect_layout

    if detect_layout(args.official_dir) != "official":
        raise Gen3RError(f"{args.official_dir} is already in gen3r layout; nothing to convert")
    source, out = args.official_dir.resolve(), args.out_dir.resolve()
    if out == source or out in source.parents:
        raise Gen3RError(f"output folder {args.out_dir} holds the checkpoint being converted, which writing it would "
                         "delete; pass a folder outside it")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise Gen3RError(f"output {args.out_dir} is a file; pass a folder path for the converted checkpoint")
    blocked = file_in_the_way(args.out_dir)
    if blocked is not None:
        raise Gen3RError(f"output {args.out_dir} cannot be created: {blocked} is a file; pass another folder path")
    if args.out_dir.exists() and any(args.out_dir.iterdir()) and not args.overwrite:
        raise Gen3RError(f"output folder {args.out_dir} exists and is not empty; choose another or pass --overwrite")
    dtype = None if args.dtype == "fp32" else getattr(torch, DTYPES[args.dtype])
    pipe = Gen3RPipeline.from_pretrained(args.official_dir, torch_dtype=dtype, architecture=args.architecture)
    pipe.save_converted(args.out_dir, overwrite=args.overwrite)
    print(f"wrote {args.out_dir}")
    return 0
