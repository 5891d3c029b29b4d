"""One self-contained HTML page of an output folder: 3D point cloud + camera path (plotly, its
JavaScript inlined) and the RGB and depth videos (inlined as data URIs). It opens offline: the page
makes no network request.

World frame of the plot: the cameras' (OpenCV: x right, y down, z forward from the first camera);
the initial view looks along +z with -y up, like the first generated frame.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gen3r.atomic import atomic_path
from gen3r.errors import Gen3RError
from gen3r.io.exporters import camera_frustum_segments
from gen3r.io.scene import OutputScene, load_output

logger = logging.getLogger(__name__)

DEFAULT_MAX_POINTS = 100_000
HTML_NAME = "scene.html"


def _rgb_strings(colors: np.ndarray) -> list[str]:
    c = np.clip(np.round(np.asarray(colors) * 255), 0, 255).astype(np.int64)
    return [f"rgb({r},{g},{b})" for r, g, b in c]


def scene_figure(scene: OutputScene, max_points: int = DEFAULT_MAX_POINTS, point_size: float = 1.5):
    """The plotly figure of ``scene``: coloured points (at most ``max_points``, a fixed random
    subset), the camera path through the camera centres and one frustum per frame."""
    import plotly.graph_objects as go

    points, colors, _ = scene.select(max_points=max_points)
    centres = scene.cameras.c2w.double().cpu().numpy()[:, :3, 3]
    segments = camera_frustum_segments(scene.cameras, scale=0.04 * scene.extent())
    lines = np.full((len(segments) * 3, 3), np.nan)
    lines[0::3], lines[1::3] = segments[:, 0], segments[:, 1]
    fig = go.Figure([
        go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name="points",
                     marker={"size": point_size, "color": _rgb_strings(colors)}, hoverinfo="skip"),
        go.Scatter3d(x=centres[:, 0], y=centres[:, 1], z=centres[:, 2], mode="lines+markers", name="camera path",
                     line={"color": "rgb(230,60,60)", "width": 4}, marker={"size": 2, "color": "rgb(230,60,60)"},
                     text=[f"frame {i}" for i in range(len(centres))], hoverinfo="text"),
        go.Scatter3d(x=lines[:, 0], y=lines[:, 1], z=lines[:, 2], mode="lines", name="frustums",
                     line={"color": "rgb(230,60,60)", "width": 2}, hoverinfo="skip"),
    ])
    fig.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0}, paper_bgcolor="white", showlegend=True,
        legend={"x": 0, "y": 1},
        scene={"aspectmode": "data", "xaxis": {"visible": False}, "yaxis": {"visible": False},
               "zaxis": {"visible": False},
               "camera": {"up": {"x": 0, "y": -1, "z": 0}, "eye": {"x": 0.0, "y": -0.6, "z": -1.6},
                          "center": {"x": 0, "y": 0, "z": 0}}})
    return fig


def _video_tag(path: Path, label: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><video src="data:video/mp4;base64,{data}" autoplay loop muted playsinline controls></video>'
            f"<figcaption>{html.escape(label)}</figcaption></figure>")


def export_html(folder: str | Path, output: str | Path | None = None, max_points: int = DEFAULT_MAX_POINTS) -> Path:
    """Write the page of output folder ``folder`` to ``output`` (default ``<folder>/scene.html``),
    atomically. Returns the path."""
    if max_points < 1:
        raise Gen3RError(f"--max-points must be >= 1, got {max_points}")
    scene = load_output(folder)
    output = Path(output) if output is not None else scene.folder / HTML_NAME
    if output.is_dir():
        raise Gen3RError(f"--output {output} is a folder; pass a file name such as {output / HTML_NAME}")
    fig = scene_figure(scene, max_points=max_points)
    points_trace: Any = fig.data[0]  # plotly's traces are untyped; the first one holds the points
    shown_points = len(points_trace.x)
    plot = fig.to_html(include_plotlyjs=True, full_html=False, div_id="scene", default_height="100%",
                       config={"displaylogo": False, "responsive": True})
    settings = {}
    config_file = scene.folder / "config.json"
    if config_file.is_file():
        try:
            settings = json.loads(config_file.read_text()).get("settings", {}) or {}
        except (ValueError, AttributeError):
            settings = {}
    shown = {k: settings[k] for k in ("task", "prompt", "num_frames", "height", "width", "num_inference_steps",
                                      "guidance_scale", "cameras", "checkpoint") if k in settings}
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in shown.items())
    title = f"Gen3R scene: {scene.folder.name}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 0; display: flex; flex-wrap: wrap; }}
#plot {{ flex: 3 1 600px; height: 92vh; }}
#side {{ flex: 1 1 280px; padding: 12px; }}
video {{ width: 100%; }} figure {{ margin: 0 0 12px 0; }} th {{ text-align: left; padding-right: 8px; }}
</style></head>
<body><div id="plot">{plot}</div>
<div id="side"><h3>{html.escape(title)}</h3>
{_video_tag(scene.folder / "rgb.mp4", "generated video")}
{_video_tag(scene.folder / "depth.mp4", "depth")}
<p>{scene.num_frames} frames, {shown_points} points shown.</p>
<table>{rows}</table></div>
<script>window.addEventListener("load", () => {{ const d = document.getElementById("scene");
if (d && window.Plotly) Plotly.Plots.resize(d); }});</script>
</body></html>
"""
    with atomic_path(output) as tmp:
        tmp.write_text(page, encoding="utf-8")
    logger.info("wrote %s (%d points)", output, shown_points)
    return output
