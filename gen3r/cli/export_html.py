"""``gen3r export-html``: one self-contained HTML page (3D points, camera path, videos) of an output folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from gen3r.cli._common import bounded

_max_points = bounded("--max-points", int, 1, 5_000_000, "a point count")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-html", help="one offline HTML page of an output folder (points, cameras, video)",
                       description="Write a self-contained HTML file (plotly 3D view of the point cloud and the "
                                   "camera path, the RGB and depth videos) that opens in a browser without a "
                                   "network connection.")
    p.add_argument("folder", type=Path, help="output folder of `gen3r generate`, `reconstruct` or `demo`")
    p.add_argument("--output", type=Path, default=None, help="HTML file to write (default FOLDER/scene.html)")
    p.add_argument("--max-points", type=_max_points, default=100_000,
                   help="cap on the points in the page (a fixed random subset; default 100000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gen3r.io.html import export_html

    path = export_html(args.folder, args.output, max_points=args.max_points)
    print(f"wrote {path}", flush=True)
    return 0
