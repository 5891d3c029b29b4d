"""``gen3r scene``: render a procedural 3D scene with exact ground truth and write it to disk."""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

from gen3r.cli._common import bounded, non_negative_int, positive_int
from gen3r.defaults import DEFAULT_NUM_FRAMES
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

_FORMAT_HELP = {
    "official": "official Gen3R training layout: <out>/<split>/scene_00000/{images/,captions.txt,transforms.json}"
                " + <out>/<split>_{videos_dirs,cameras_paths,captions_paths}.txt",
    "re10k": "RealEstate10K: <out>/<split>/scene_00000.txt + <out>/<split>/frames/scene_00000/<timestamp_us>.png",
    "nerfstudio": "nerfstudio: <out>/transforms.json (OpenGL c2w) + images/ + depths/ (16-bit mm)",
    "npz": "one <out>/scene.npz with rgb, depth, world_points, valid, extrinsics, intrinsics, captions",
}


_fov = bounded("field_of_view", float, 1.0, 170.0, "a field of view in degrees")
_num_objects = bounded("num_objects", int, 0, 64, "a number of objects")


def _split(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise argparse.ArgumentTypeError(f"split must be a name like train or test (letters, digits, _, -), "
                                         f"got {text!r}")
    return text


#: Memory of one rendered pixel (rgb, depth, world points, valid), all kept until the scenes are written.
_BYTES_PER_PIXEL = 3 * 4 + 4 + 3 * 4 + 1


def _physical_memory() -> float:
    """Bytes of RAM of this machine (infinite where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return float("inf")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scene`` subcommand."""
    from gen3r.data.names import FORMATS
    from gen3r.data.procedural import KINDS, TRAJECTORIES

    parser = subparsers.add_parser(
        "scene",
        help="render a procedural 3D scene (rgb, depth, cameras, caption) and write it to disk",
        description="Render a procedural indoor or outdoor scene with exact depth, world points and cameras "
                    "and write it in a dataset layout. Formats: "
                    + "; ".join(f"{k}: {v}" for k, v in _FORMAT_HELP.items()),
    )
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed; same seed, same scene (default 0)")
    parser.add_argument("--scenes", type=positive_int, default=1,
                        help="number of scenes, seeds --seed, --seed+1, ... (default 1): one dataset of N "
                             "sequences (official / re10k), or <out>/scene_00000/ ... (nerfstudio / npz). "
                             "For thousands of training scenes use `gen3r cache`")
    parser.add_argument("--frames", type=positive_int, default=DEFAULT_NUM_FRAMES,
                        help=f"number of frames (default {DEFAULT_NUM_FRAMES})")
    parser.add_argument("--height", type=positive_int, default=128, help="image height in pixels (default 128)")
    parser.add_argument("--width", type=positive_int, default=128, help="image width in pixels (default 128)")
    parser.add_argument("--kind", choices=(*KINDS, "random"), default="indoor",
                        help="closed room, ground + sky, or drawn from the seed (default indoor)")
    parser.add_argument("--trajectory", choices=TRAJECTORIES, default="walk",
                        help="camera path: walk forward, orbit, pan in place, random smooth (default walk)")
    parser.add_argument("--fov", type=_fov, default=60.0, help="horizontal field of view in degrees (default 60)")
    parser.add_argument("--num-objects", type=_num_objects, default=None,
                        help="number of boxes/spheres/cylinders, 0-64 (default: 2-5 from the seed)")
    parser.add_argument("--format", choices=FORMATS, default="official", help="output layout (default official)")
    parser.add_argument("--split", type=_split, default=None,
                        help="split name for official / re10k (default train for official, test for re10k)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must be empty or new)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument("--preview", action="store_true", help="also write <out>/preview.mp4 (H.264)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render the scene and write it; returns 0."""
    from gen3r.atomic import atomic_dir, atomic_path, file_in_the_way
    from gen3r.data import writers
    from gen3r.data.procedural import render_scene

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise Gen3RError(f"--out {out} is a file; give a folder path")
    blocked = file_in_the_way(out)
    if blocked is not None:
        raise Gen3RError(f"--out {out} cannot be created: {blocked} is a file; give another folder path")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise Gen3RError(f"output folder {out} exists and is not empty; choose another --out or pass --overwrite")
    if args.split is not None and args.format not in ("official", "re10k"):
        raise Gen3RError(f"--split names a split of the official and re10k layouts; drop it for --format {args.format}")
    need = args.scenes * args.frames * args.height * args.width * _BYTES_PER_PIXEL
    if need > _physical_memory():
        raise Gen3RError(f"{args.scenes} scene(s) of {args.frames} frames of {args.height}x{args.width} need about "
                         f"{need / 2**30:.3g} GiB of memory, more than this machine has; lower --scenes, --frames, "
                         "--height or --width")
    from tqdm.auto import tqdm

    seeds = range(args.seed, args.seed + args.scenes)
    scenes = [render_scene(seed, args.frames, args.height, args.width, kind=args.kind, trajectory=args.trajectory,
                           fov_deg=args.fov, num_objects=args.num_objects)
              for seed in tqdm(seeds, desc="render", disable=None if args.scenes > 1 else True)]
    for seed, scene in zip(seeds, scenes):
        logger.info("seed %d: %d frames of %dx%d: %s", seed, args.frames, args.height, args.width, scene.caption)
    single = scenes[0] if args.scenes == 1 else scenes
    if args.format == "official":
        writers.write_official(out, single, split=args.split or "train", overwrite=args.overwrite)
    elif args.format == "re10k":
        writers.write_re10k(out, single, split=args.split or "test", overwrite=args.overwrite)
    else:
        write_one = writers.write_nerfstudio if args.format == "nerfstudio" else writers.write_npz
        if args.scenes == 1:
            write_one(out, scenes[0], overwrite=args.overwrite)
        else:
            with atomic_dir(out, overwrite=args.overwrite) as tmp:
                for i, scene in enumerate(scenes):
                    write_one(tmp / f"scene_{i:05d}", scene)
    if args.preview:
        for i, scene in enumerate(scenes):
            name = "preview.mp4" if args.scenes == 1 else f"preview_{i:05d}.mp4"
            with atomic_path(out / name) as tmp:
                writers.write_preview(tmp, scene)
    logger.info("wrote %d %s scene(s) to %s", args.scenes, args.format, out)
    return 0
