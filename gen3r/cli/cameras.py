"""``gen3r cameras``: list trajectory presets, write a preset to a file, convert camera files."""

from __future__ import annotations

import argparse
from pathlib import Path

from gen3r.cli._common import add_trajectory_params, bounded, field_of_view, positive_float, trajectory_params
from gen3r.defaults import DEFAULT_NUM_FRAMES


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 560x560, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive HxW, got {text!r}")
    return h, w


#: Most cameras `cameras make` writes (the paper's clips have 49 frames).
MAX_FRAMES = 100_000


_frame_count = bounded("frame_count", int, 1, MAX_FRAMES, "a number of cameras")


def register(sub: argparse._SubParsersAction) -> None:
    from gen3r.cameras import FORMATS

    p = sub.add_parser("cameras", help="camera presets and camera-file conversion",
                       description="Camera paths: list the presets, write one to a file you can edit, or "
                                   "convert between official cameras.json, RealEstate10K .txt, nerfstudio "
                                   "transforms.json and COLMAP text models.")
    cs = p.add_subparsers(dest="cameras_command", metavar="ACTION", required=True)
    ls = cs.add_parser("list", help="list trajectory presets with their meaning")
    ls.set_defaults(func=run_list)
    mk = cs.add_parser("make", help="write a preset trajectory to a camera file")
    mk.add_argument("preset", help="preset name (see `gen3r cameras list`)")
    mk.add_argument("out", type=Path, help="output file (format from the name, or --format)")
    mk.add_argument("--frames", type=_frame_count, default=DEFAULT_NUM_FRAMES,
                    help=f"number of cameras, 1-{MAX_FRAMES} (default {DEFAULT_NUM_FRAMES})")
    mk.add_argument("--size", type=_size, default=(560, 560), help="image size HxW (default 560x560)")
    mk.add_argument("--fov", type=field_of_view, default=60.0,
                    help="horizontal field of view in degrees, in (0, 180) (default 60)")
    mk.add_argument("--scene-scale", type=positive_float, default=1.0, help="scene scale (distance unit)")
    mk.add_argument("--format", choices=FORMATS, default=None)
    add_trajectory_params(mk)
    mk.set_defaults(func=run_make)
    cv = cs.add_parser("convert", help="convert a camera file to another format")
    cv.add_argument("src", type=Path, help="camera file or COLMAP folder")
    cv.add_argument("out", type=Path, help="output file or folder")
    cv.add_argument("--format", choices=FORMATS, default=None, help="output format (default: from the name)")
    cv.add_argument("--size", type=_size, default=None, help="image size HxW when the input does not say")
    cv.set_defaults(func=run_convert)


def run_list(args: argparse.Namespace) -> int:
    from gen3r.cameras import TRAJECTORY_DESCRIPTIONS

    width = max(len(n) for n in TRAJECTORY_DESCRIPTIONS)
    for name, text in TRAJECTORY_DESCRIPTIONS.items():
        print(f"{name:<{width}}  {text}")
    return 0


def run_make(args: argparse.Namespace) -> int:
    import math

    import torch

    from gen3r.cameras import make_trajectory, save_cameras

    h, w = args.size
    fx = (w / 2) / math.tan(math.radians(args.fov) / 2)
    K = torch.tensor([[fx, 0.0, w / 2], [0.0, fx, h / 2], [0.0, 0.0, 1.0]])
    cams = make_trajectory(args.preset, args.frames, K, scene_scale=args.scene_scale, image_size=(h, w),
                           **trajectory_params(args))
    save_cameras(cams, args.out, format=args.format)
    print(f"wrote {args.out} ({len(cams)} cameras)")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from gen3r.cameras import load_cameras, save_cameras

    cams = load_cameras(args.src, image_size=args.size)
    save_cameras(cams, args.out, format=args.format)
    print(f"wrote {args.out} ({len(cams)} cameras)")
    return 0
