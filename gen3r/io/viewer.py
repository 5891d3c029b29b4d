"""Interactive 3D viewer (viser) of a Gen3R output folder.

Shows the coloured point cloud (unprojected per frame from ``depth.npz`` with the cameras, see
:mod:`gen3r.io.scene`), one camera frustum per frame with its frame as thumbnail, and a panel with:
a frame slider (that frame's image and depth, its points highlighted, its frustum in yellow), all
frames / this frame, a confidence and a depth percentile filter and the point size (all live), and
playback, which moves every connected view camera along the generated trajectory.

Binds 127.0.0.1 by default; pass ``host="0.0.0.0"`` explicitly to expose it on a network.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from gen3r.errors import Gen3RError
from gen3r.io.exporters import colorize_depth
from gen3r.io.scene import OutputScene, load_output

logger = logging.getLogger(__name__)

#: Points sent to the browser at most (a fixed random subset beyond it).
MAX_POINTS = 300_000
CAMERA_COLOR, HIGHLIGHT_COLOR = (230, 60, 60), (255, 200, 0)


def _resize(image: np.ndarray, longest: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(image)
    img.thumbnail((longest, longest))
    return np.asarray(img)


class SceneViewer:
    """The viewer's scene nodes and panel on a viser server (state in plain attributes; the panel's
    callbacks call :meth:`set_frame`, :meth:`refresh_points` and :meth:`move_cameras_to`)."""

    def __init__(self, server, scene: OutputScene, max_points: int = MAX_POINTS, thumbnail_size: int = 96) -> None:
        import viser.transforms as vtf

        self.server, self.scene, self.max_points = server, scene, max_points
        self.extent = scene.extent()
        self.frame, self.only_frame = 0, False
        self.min_confidence, self.max_depth = 0.0, 100.0
        self.point_size = max(self.extent / 800, 1e-4)
        self.c2w = scene.cameras.c2w.double().cpu().numpy()
        h, w = scene.cameras.image_size
        self.vertical_fov = [float(2 * np.arctan2(h / 2, k[1, 1])) for k in scene.cameras.intrinsics.double().numpy()]
        self.depth_images = (None if scene.depth is None else
                             (colorize_depth(scene.depth, scene.mask) * 255).astype(np.uint8))

        points, colors = self._points()
        self.cloud = server.scene.add_point_cloud("/points", points=points, colors=colors, point_size=self.point_size)
        self.highlight = server.scene.add_point_cloud("/highlight", points=np.zeros((1, 3), np.float32),
                                                      colors=HIGHLIGHT_COLOR, point_size=2 * self.point_size,
                                                      visible=False)
        self.frustums = []
        for i, pose in enumerate(self.c2w):
            self.frustums.append(server.scene.add_camera_frustum(
                f"/cameras/{i:04d}", fov=self.vertical_fov[i], aspect=w / h, scale=max(self.extent / 40, 1e-3),
                wxyz=vtf.SO3.from_matrix(pose[:3, :3]).wxyz, position=pose[:3, 3],
                image=_resize(scene.frames[i], thumbnail_size), color=CAMERA_COLOR, thickness=self.extent / 600))

        gui = server.gui
        with gui.add_folder("Frame"):
            self.frame_slider = gui.add_slider("frame", 0, max(scene.num_frames - 1, 1), 1, 0,
                                               disabled=scene.num_frames < 2)
            self.only_frame_box = gui.add_checkbox("this frame only", False)
            self.play_box = gui.add_checkbox("play along the trajectory", False)
            self.fps_slider = gui.add_slider("frames per second", 1, 30, 1, 8)
            self.frame_image = gui.add_image(_resize(scene.frames[0], 256), label="frame")
            self.depth_image = (gui.add_image(_resize(self.depth_images[0], 256), label="depth")
                                if self.depth_images is not None else None)
        with gui.add_folder("Points"):
            self.confidence_slider = gui.add_slider("min confidence percentile", 0, 99, 1, 0,
                                                    disabled=scene.confidence is None)
            self.depth_slider = gui.add_slider("max depth percentile", 50, 100, 1, 100, disabled=scene.depth is None)
            self.size_slider = gui.add_slider("point size", self.point_size / 4, self.point_size * 8,
                                              self.point_size / 4, self.point_size)
        self.frame_slider.on_update(lambda _: self.set_frame(int(self.frame_slider.value)))
        self.only_frame_box.on_update(lambda _: self._set(only_frame=bool(self.only_frame_box.value)))
        self.confidence_slider.on_update(lambda _: self._set(min_confidence=float(self.confidence_slider.value)))
        self.depth_slider.on_update(lambda _: self._set(max_depth=float(self.depth_slider.value)))
        self.size_slider.on_update(lambda _: self._set(point_size=float(self.size_slider.value)))
        server.on_client_connect(self._initial_view)
        self._stop = threading.Event()
        self._player = threading.Thread(target=self._play_loop, name="gen3r-viewer-playback", daemon=True)
        self._player.start()
        self.set_frame(0)

    # -- state -------------------------------------------------------------------------------------
    def _points(self, frames=None) -> tuple[np.ndarray, np.ndarray]:
        points, colors, _ = self.scene.select(frames=frames, min_confidence_percentile=self.min_confidence,
                                              max_depth_percentile=self.max_depth, max_points=self.max_points)
        if not len(points):  # viser needs at least one point; an invisible one at the origin
            return np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)
        return points, colors

    def _set(self, **state) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self.refresh_points()

    def refresh_points(self) -> None:
        """Send the points the current filters, frame choice and size select."""
        points, colors = self._points(self.frame if self.only_frame else None)
        frame_points, _ = self._points(self.frame)
        with self.server.atomic():
            self.cloud.points, self.cloud.colors, self.cloud.point_size = points, colors, self.point_size
            self.highlight.points = frame_points
            self.highlight.point_size = 2 * self.point_size
            self.highlight.visible = self.scene.frame_points is not None and not self.only_frame

    def set_frame(self, index: int) -> None:
        """Show frame ``index``: its image and depth in the panel, its points and frustum highlighted."""
        if not 0 <= index < self.scene.num_frames:
            raise Gen3RError(f"frame {index} is outside 0..{self.scene.num_frames - 1}")
        previous, self.frame = self.frame, index
        self.frustums[previous].color = CAMERA_COLOR
        self.frustums[index].color = HIGHLIGHT_COLOR
        self.frame_image.image = _resize(self.scene.frames[index], 256)
        if self.depth_image is not None and self.depth_images is not None:
            self.depth_image.image = _resize(self.depth_images[index], 256)
        if int(self.frame_slider.value) != index:
            self.frame_slider.value = index
        self.refresh_points()

    def _put_camera(self, client, index: int, pull_back: float = 0.0) -> None:
        """Give ``client``'s view camera the pose and field of view of generated camera ``index``,
        moved ``pull_back`` scene units back along its optical axis."""
        import viser.transforms as vtf

        pose = self.c2w[index]
        with client.atomic():
            client.camera.wxyz = vtf.SO3.from_matrix(pose[:3, :3]).wxyz
            client.camera.position = pose[:3, 3] - pose[:3, 2] * pull_back
            client.camera.fov = self.vertical_fov[index]

    def move_cameras_to(self, index: int) -> None:
        """Put every connected view camera at generated camera ``index`` (its pose and field of view)."""
        for client in self.server.get_clients().values():
            self._put_camera(client, index)

    def _initial_view(self, client) -> None:
        """A new browser starts behind the first generated camera (pulled back along its optical axis
        by a quarter of the scene extent), looking the way it looks."""
        self._put_camera(client, 0, pull_back=0.25 * self.extent)

    def _play_loop(self) -> None:
        while not self._stop.is_set():
            if self.play_box.value and self.scene.num_frames > 1:
                index = (self.frame + 1) % self.scene.num_frames
                self.set_frame(index)
                self.move_cameras_to(index)
            self._stop.wait(1.0 / max(float(self.fps_slider.value), 1.0))

    def close(self) -> None:
        self._stop.set()


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


def start(out_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, max_points: int = MAX_POINTS):
    """Start the viewer of ``out_dir`` and return ``(server, viewer)`` (the caller stops both).

    The folder and the address are checked first (:func:`load_output`, :func:`check_address`)."""
    import viser

    scene = load_output(out_dir)
    check_address(host, port)
    server = viser.ViserServer(host=host, port=port, verbose=False)
    if server.get_port() != port:  # viser moves to a free port on a race; never serve elsewhere silently
        server.stop()
        raise Gen3RError(f"port {port} on {host} is in use; pass another --port")
    server.scene.set_up_direction("-y")  # OpenCV world: y points down
    viewer = SceneViewer(server, scene, max_points=max_points)
    logger.info("viewer on http://%s:%d (Ctrl+C to stop)", host, server.get_port())
    return server, viewer


def serve(out_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, duration: float | None = None):
    """Serve the viewer until interrupted (or for ``duration`` seconds, then return the still
    running server; the caller stops it)."""
    server, viewer = start(out_dir, host, port)
    if duration is not None:
        time.sleep(duration)
        return server
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
        server.stop()
    return server
