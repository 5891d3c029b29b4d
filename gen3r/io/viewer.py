"""Interactive 3D viewer (viser) for a Gen3R output folder: point cloud + camera frustums + frames.

Binds 127.0.0.1 by default; pass ``host="0.0.0.0"`` explicitly to expose it on a network.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)


@dataclass
class ViewerScene:
    """What the viewer shows: points (N, 3) world, colours (N, 3) in [0, 1], cameras, thumbnails."""

    points: np.ndarray
    colors: np.ndarray
    cameras: object  # gen3r.cameras.Cameras
    thumbnails: list[np.ndarray]


def load_scene(out_dir: str | Path, max_points: int = 500_000, thumbnail_size: int = 96) -> ViewerScene:
    """Read ``points.ply``, ``cameras.json`` and ``images/`` of a ``gen3r generate`` output folder."""
    from PIL import Image
    from plyfile import PlyData

    from gen3r.cameras import load_cameras

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        problem = "is a file, not a folder" if out_dir.exists() else "does not exist"
        raise Gen3RError(f"{out_dir} {problem}; pass a folder written by `gen3r generate`/`reconstruct`/`demo`")
    ply, cams = out_dir / "points.ply", out_dir / "cameras.json"
    for f in (ply, cams):
        if not f.is_file():
            raise Gen3RError(f"{f} is missing; pass a folder written by `gen3r generate`/`reconstruct`/`demo`")
    try:
        vertex = PlyData.read(str(ply))["vertex"]
        points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
        names = vertex.data.dtype.names
    except Exception as exc:  # plyfile raises many types for truncated / foreign files
        raise Gen3RError(f"cannot read {ply} ({type(exc).__name__}: {exc}); the file is truncated or not a point "
                         "cloud: export the folder again") from None
    if "red" in names:
        colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1).astype(np.float32) / 255
    else:
        colors = np.full_like(points, 0.7)
    if len(points) > max_points:
        pick = np.sort(np.random.default_rng(0).choice(len(points), max_points, replace=False))
        points, colors = points[pick], colors[pick]
    cameras = load_cameras(cams)
    thumbs = []
    images = sorted((out_dir / "images").glob("*.png")) if (out_dir / "images").is_dir() else []
    for path in images[: len(cameras)]:
        try:
            with Image.open(path) as img:
                img.thumbnail((thumbnail_size, thumbnail_size))
                thumbs.append(np.asarray(img.convert("RGB")))
        except (OSError, ValueError) as exc:  # PIL: UnidentifiedImageError, truncated data
            raise Gen3RError(f"cannot read {path} ({type(exc).__name__}); the image is damaged: export the folder "
                             "again") from None
    return ViewerScene(points=points, colors=colors, cameras=cameras, thumbnails=thumbs)


def populate(server, scene: ViewerScene, point_size: float | None = None) -> None:
    """Add the point cloud and one frustum per camera (OpenCV axes, as viser expects) to ``server``."""
    import viser.transforms as vtf

    extent = float(np.linalg.norm(np.ptp(scene.points, axis=0))) if len(scene.points) else 1.0
    size = point_size or max(extent / 800, 1e-4)
    server.scene.add_point_cloud("/points", points=scene.points, colors=scene.colors, point_size=size)
    c2w = scene.cameras.c2w.double().cpu().numpy()
    K = scene.cameras.intrinsics.double().cpu().numpy()
    h, w = scene.cameras.image_size
    for i, (pose, k) in enumerate(zip(c2w, K)):
        fov = 2 * np.arctan2(h / 2, k[1, 1])
        server.scene.add_camera_frustum(
            f"/cameras/{i:04d}", fov=float(fov), aspect=w / h, scale=max(extent / 40, 1e-3),
            wxyz=vtf.SO3.from_matrix(pose[:3, :3]).wxyz, position=pose[:3, 3],
            image=scene.thumbnails[i] if i < len(scene.thumbnails) else None, color=(230, 60, 60))


def check_address(host: str, port: int) -> None:
    """Raise Gen3RError unless a server can listen on ``host:port`` now (port free, host an address
    of this machine): servers must not fall back to another port or fail inside a thread."""
    import errno
    import socket

    if not 1 <= int(port) <= 65535:
        raise Gen3RError(f"--port must be between 1 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Gen3RError(f"--host {host!r} is not a valid address ({exc}); pass 127.0.0.1 (this machine only) "
                         "or 0.0.0.0 (every network)") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Gen3RError(f"port {port} on {host} is in use; pass another --port (or stop what uses it)") \
                    from None
            raise Gen3RError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass --host 127.0.0.1 or an "
                             "address of this machine") from None


def serve(out_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, duration: float | None = None):
    """Serve the viewer until interrupted (or for ``duration`` seconds); returns the server.

    The folder and the address are checked first (:func:`load_scene`, :func:`check_address`)."""
    import viser

    scene = load_scene(out_dir)
    check_address(host, port)
    server = viser.ViserServer(host=host, port=port, verbose=False)
    if server.get_port() != port:  # viser moves to a free port on a race; never serve elsewhere silently
        server.stop()
        raise Gen3RError(f"port {port} on {host} is in use; pass another --port")
    populate(server, scene)
    logger.info("viewer on http://%s:%d (Ctrl+C to stop)", host, server.get_port())
    if duration is not None:
        time.sleep(duration)
        return server
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return server
