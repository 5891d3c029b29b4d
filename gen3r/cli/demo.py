"""``gen3r demo``: the main job on a CPU, with nothing to download.

Generates a video and its 3D geometry from one bundled example image (a dev-set scene the mini
model never saw) with the embedded mini Gen3R, along a camera preset, and writes every output file
of ``gen3r generate``: rgb.mp4, depth.npz/mp4, points.ply, scene.glb, cameras.json, COLMAP,
nerfstudio and config.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from gen3r.cli._common import positive_int

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


def examples() -> dict[str, dict]:
    """Bundled example images: name -> {"seed", "kind", "trajectory", "caption"} (``<name>.png``)."""
    return json.loads((EXAMPLES_DIR / "examples.json").read_text())


def register(sub: argparse._SubParsersAction) -> None:
    names = sorted(examples())
    p = sub.add_parser("demo", help="generate video + 3D geometry from a bundled example with the mini model",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--example", choices=names, default="room", help="bundled example image (default room)")
    p.add_argument("--camera", default="orbit_left",
                   help="camera preset or camera file (default orbit_left; see `gen3r cameras list`)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the embedded mini model)")
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps (default: the model's own)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--overwrite", action="store_true", default=True, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from gen3r.io.results import export_output
    from gen3r.pipeline import Gen3RPipeline
    from gen3r.pipeline.loading import MINI_MODEL
    from gen3r.pipeline.preprocess import read_image

    start = time.perf_counter()
    example = examples()[args.example]
    image = EXAMPLES_DIR / f"{args.example}.png"
    checkpoint = args.checkpoint or MINI_MODEL
    pipe = Gen3RPipeline.from_pretrained(checkpoint)
    loaded = time.perf_counter()
    output = pipe([read_image(image)], cameras=None if args.camera == "free" else args.camera,
                  prompt=example["caption"], num_inference_steps=args.steps,
                  generator=torch.Generator().manual_seed(args.seed))
    generated = time.perf_counter()
    assert output is not None, "only context-parallel ranks other than 0 get no output"
    info = output.info
    settings = {"command": "demo", "example": args.example, "image": str(image), "checkpoint": checkpoint,
                "camera": args.camera, "prompt": example["caption"], "seed": args.seed, "task": info["task"],
                "frames": info["num_frames"], "height": info["height"], "width": info["width"],
                "steps": info["num_inference_steps"], "guidance": info["guidance_scale"]}
    export_output(output, args.out, settings=settings, overwrite=args.overwrite)
    done = time.perf_counter()
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in args.out.iterdir())
    print(f"Gen3R demo ({checkpoint}): 1 image -> {info['num_frames']} frames of {info['height']}x{info['width']} "
          f"+ depth, cameras and a point cloud\n"
          f"  input   {image} ({example['caption'][:80]}...)\n"
          f"  camera  {args.camera}; {info['num_inference_steps']} steps, guidance {info['guidance_scale']}\n"
          f"  time    load {loaded - start:.1f} s, generate {generated - loaded:.1f} s, "
          f"export {done - generated:.1f} s\n"
          f"  wrote   {args.out}/: {', '.join(files)}\n"
          f"  view    gen3r view {args.out}   (browser viewer at http://127.0.0.1:8080), or open "
          f"{args.out}/rgb.mp4 and {args.out}/scene.glb\n"
          f"  share   gen3r export-html {args.out}   (one offline page), or try your own image: gen3r app")
    return 0
