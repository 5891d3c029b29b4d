"""``gen3r view``: open an output folder in the interactive 3D viewer (viser, local only by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gen3r.cli._common import add_server_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="interactive 3D viewer of an output folder (points + cameras)",
                       description="Serve the point cloud and camera frustums of a `gen3r generate`, "
                                   "`reconstruct` or `demo` output folder in the browser (viser): a frame "
                                   "slider with that frame's image and depth, live confidence / depth / point "
                                   "size filters, and playback along the generated trajectory.")
    p.add_argument("folder", type=Path, help="output folder with points.ply and cameras.json")
    add_server_args(p, 8080)
    p.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    from gen3r.io.scene import load_output
    from gen3r.io.viewer import check_address, serve

    load_output(args.folder)  # validate before starting a server
    check_address(args.host, args.port)
    print(f"viewer: http://{args.host}:{args.port}  (Ctrl+C to stop)", flush=True)
    serve(args.folder, host=args.host, port=args.port)
    return 0
