"""``gen3r demo``: the main job on a CPU, with nothing to download.

Renders a procedural 3D scene (exact depth, cameras and caption) and exports it with the same
exporters as ``gen3r generate``: rgb.mp4, depth.npz/mp4, points.ply, scene.glb, cameras.json,
COLMAP, nerfstudio and config.json.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gen3r.cli._common import non_negative_int, positive_int

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render a procedural scene and export every output format",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="scene seed")
    p.add_argument("--frames", type=positive_int, default=25, help="number of frames")
    p.add_argument("--height", type=positive_int, default=224, help="image height in pixels")
    p.add_argument("--width", type=positive_int, default=224, help="image width in pixels")
    p.add_argument("--kind", choices=("indoor", "outdoor", "random"), default="indoor", help="scene kind")
    p.add_argument("--overwrite", action="store_true", default=True, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gen3r.data.procedural import render_scene
    from gen3r.io.results import export_scene

    scene = render_scene(args.seed, args.frames, args.height, args.width, kind=args.kind)
    export_scene(args.out, rgb=scene.rgb, depth=scene.depth, world_points=scene.world_points,
                 cameras=scene.cameras, point_mask=scene.valid, ply_mask=scene.valid, overwrite=args.overwrite,
                 settings={"source": "procedural", "seed": args.seed, "caption": scene.caption,
                           "frames": args.frames, "height": args.height, "width": args.width, "kind": args.kind})
    print(f"wrote {args.out} ({scene.caption})")
    return 0
