"""``gen3r app``: the gradio web app (local only by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gen3r.cli._common import add_server_args, bounded

_upload_mb = bounded("--max-upload-mb", int, 1, 10_000, "a size in MB")


def register(sub: argparse._SubParsersAction) -> None:
    from gen3r.cli._common import add_pipeline_args

    p = sub.add_parser("app", help="web app: upload images or a video, get the video, depth and 3D scene",
                       description="Serve the Gen3R web app (gradio): upload one or two images or a video, choose "
                                   "the task, camera preset or camera file, prompt, steps and seed; see the video, "
                                   "the depth video and the 3D scene, and download every output file. One job at "
                                   "a time.")
    add_pipeline_args(p)
    add_server_args(p, 7860)
    p.add_argument("--max-upload-mb", type=_upload_mb, default=50, help="largest upload in MB (default 50)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="folder for the runs' output folders (default: a new temporary folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gen3r.app import Gen3RApp, launch
    from gen3r.atomic import file_in_the_way
    from gen3r.cli._common import check_model_options, load_pipeline, resolve_checkpoint_defaults
    from gen3r.errors import Gen3RError
    from gen3r.io.viewer import check_address

    resolve_checkpoint_defaults(args)
    check_model_options(args)
    check_address(args.host, args.port)  # before the models load
    if args.work_dir is not None:
        blocker = file_in_the_way(args.work_dir, include_self=True)
        if blocker is not None:
            raise Gen3RError(f"--work-dir {args.work_dir}: {blocker} is a file; pass a folder path")
    pipe = load_pipeline(args)
    pipe.call_defaults.update(num_frames=args.frames, height=args.height, width=args.width,
                              num_inference_steps=args.steps, guidance_scale=args.guidance)
    from gen3r.cli.demo import EXAMPLES_DIR, examples

    bundled = [(str(EXAMPLES_DIR / f"{name}.png"), ex["caption"]) for name, ex in sorted(examples().items())]
    print(f"app: http://{args.host}:{args.port}  (Ctrl+C to stop)", flush=True)
    launch(Gen3RApp(pipe, args.work_dir), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
           examples=bundled)
    return 0
