"""``gen3r generate`` and ``gen3r reconstruct``: run the pipeline and export every output file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gen3r.cli._common import (
    add_pipeline_args,
    add_trajectory_params,
    check_model_options,
    load_pipeline,
    positive_int,
    resolve_checkpoint_defaults,
    trajectory_params,
)

logger = logging.getLogger(__name__)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    add_pipeline_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--prompt", default="", help="text prompt (or @file.txt: first line)")
    p.add_argument("--negative-prompt", default="bad detailed", help="negative prompt (default 'bad detailed')")
    p.add_argument("--remove-far-points", action="store_true",
                   help="drop points beyond the 80th z percentile before writing points.ply")
    p.add_argument("--fps", type=positive_int, default=12, help="frame rate of the mp4 files")


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="1 or 2 images (+ camera path) -> video + 3D geometry",
                         description="Generate an RGB video and its geometry from 1 image (1view) or the "
                                     "first and last frame (2view), optionally along a camera path.")
    gen.add_argument("image", type=Path, help="first frame")
    gen.add_argument("last_image", type=Path, nargs="?", default=None, help="last frame (2view)")
    gen.add_argument("--camera", default="free",
                     help="preset name (zoom_in, orbit_left, ...; see `gen3r cameras`) or camera file "
                          "(cameras.json, RealEstate10K .txt, transforms.json, COLMAP folder)")
    add_trajectory_params(gen, prefix="camera-")
    gen.add_argument("--parallel", choices=("ulysses", "ring"), default=None,
                     help="split the transformer's sequence over the processes of `torchrun --nproc-per-node N -m "
                          "gen3r.cli generate ...` (diffusers context parallelism; rank 0 writes)")
    _add_model_args(gen)
    gen.set_defaults(func=run_generate)

    rec = sub.add_parser("reconstruct", help="video or frame folder -> 3D geometry (allview)",
                         description="Reconstruct depth, cameras and a point cloud from a video. Videos "
                                     "longer than --frames are processed in overlapping windows aligned "
                                     "with Umeyama sim(3) on the shared frames.")
    rec.add_argument("video", type=Path, help="video file or folder of frames (sorted by name)")
    rec.add_argument("--overlap", type=positive_int, default=None,
                     help="frames shared by consecutive windows (default: a sixth of --frames, rounded: "
                          "8 for 49, 3 for 17)")
    rec.add_argument("--max-frames", type=positive_int, default=None, help="use at most this many frames")
    rec.add_argument("--mode", choices=("generate", "vae"), default="generate",
                     help="generate: the DiT allview task; vae: VGGT -> adapter -> decode only (fast)")
    _add_model_args(rec)
    rec.set_defaults(func=run_reconstruct)


def _read_prompt(text: str) -> str:
    from gen3r.errors import Gen3RError

    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise Gen3RError(f"prompt file {path} does not exist; pass --prompt TEXT or @existing_file.txt")
        lines = path.read_text().splitlines()
        return lines[0].strip() if lines else ""
    return text


def _validate_early(args: argparse.Namespace) -> None:
    """Fail before loading models (which takes minutes at full size)."""
    from gen3r.errors import Gen3RError
    from gen3r.pipeline import Gen3RPipeline

    resolve_checkpoint_defaults(args)
    check_model_options(args)
    count = (2 if args.last_image else 1) if hasattr(args, "last_image") else None
    Gen3RPipeline.check_inputs(args.frames, args.height, args.width, args.steps, args.guidance,
                               task="allview" if count is None else None, num_condition_frames=count)
    if args.out.exists() and not args.out.is_dir():
        raise Gen3RError(f"--out {args.out} is a file; pass a folder path")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise Gen3RError(f"output folder {args.out} exists and is not empty; choose another --out or pass --overwrite")


def _settings(args: argparse.Namespace, **extra) -> dict:
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    out.update(extra)
    return out


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from gen3r.io.results import export_output
    from gen3r.pipeline.preprocess import read_image, validate_camera_source

    _validate_early(args)
    images = [read_image(args.image)] + ([read_image(args.last_image)] if args.last_image else [])
    validate_camera_source(args.camera, num_frames=args.frames, image_size=(args.height, args.width),
                           params=trajectory_params(args))
    prompt = _read_prompt(args.prompt)
    if args.parallel:
        from gen3r.distributed import init_distributed, launched_by_torchrun
        from gen3r.errors import Gen3RError

        if not launched_by_torchrun():
            raise Gen3RError(f"--parallel {args.parallel} splits the transformer over processes: start it with "
                             "`torchrun --nproc-per-node N -m gen3r.cli generate ...` (N >= 2)")
        from gen3r.pipeline.parallel import check_parallel

        args.device = str(init_distributed(args.device).device)  # each process loads onto its own device
        check_parallel(args.parallel, args.device)  # before the models load
    pipe = load_pipeline(args)
    if args.parallel:
        from gen3r.pipeline.parallel import enable_context_parallel

        enable_context_parallel(pipe, args.parallel, device=args.device)
    generator = torch.Generator().manual_seed(args.seed)
    output = pipe(images, cameras=None if args.camera == "free" else args.camera, prompt=prompt,
                  negative_prompt=args.negative_prompt, num_frames=args.frames, height=args.height,
                  width=args.width, num_inference_steps=args.steps, guidance_scale=args.guidance,
                  generator=generator, camera_params=trajectory_params(args) or None)
    if output is None:  # a context-parallel rank other than 0: rank 0 writes
        return 0
    export_output(output, args.out, settings=_settings(args, prompt=prompt), fps=args.fps,
                  remove_far_points=args.remove_far_points, overwrite=args.overwrite)
    print(f"wrote {args.out}")
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from gen3r.io.results import export_scene
    from gen3r.pipeline.preprocess import read_frames, resize_and_center_crop
    from gen3r.pipeline.reconstruct import plan_windows, reconstruct_video

    _validate_early(args)
    frames = read_frames(args.video, max_frames=args.max_frames)
    frames = resize_and_center_crop(frames, args.height, args.width)
    plan_windows(frames.shape[0], args.frames, args.overlap)  # bad window settings fail before the models load
    prompt = _read_prompt(args.prompt)
    pipe = load_pipeline(args)
    result = reconstruct_video(pipe, frames, window=args.frames, overlap=args.overlap, mode=args.mode,
                               prompt=prompt, negative_prompt=args.negative_prompt,
                               num_inference_steps=args.steps, guidance_scale=args.guidance,
                               generator=torch.Generator().manual_seed(args.seed))
    export_scene(args.out, rgb=result.rgb, depth=result.depth, world_points=result.world_points,
                 cameras=result.cameras, depth_conf=result.depth_conf, point_mask=result.point_mask,
                 settings=_settings(args, task="allview", windows=result.windows, prompt=prompt), fps=args.fps,
                 remove_far_points=args.remove_far_points, overwrite=args.overwrite)
    print(f"wrote {args.out}")
    return 0
