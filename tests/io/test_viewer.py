"""The viser viewer loads an output folder and serves it on 127.0.0.1 only."""

from __future__ import annotations

import socket
import urllib.request

import numpy as np
import pytest
import torch

from gen3r.errors import Gen3RError
from tests._tiny import export_small_output, free_port


@pytest.fixture()
def out_dir(tmp_path):
    return export_small_output(tmp_path / "out")


def test_load_output(out_dir):
    from gen3r.io.scene import load_output

    scene = load_output(out_dir)
    assert scene.points.shape[1] == 3 and len(scene.points) > 0
    assert len(scene.cameras) == 3 and scene.frames.shape == (3, 24, 32, 3)
    assert scene.colors.min() >= 0 and scene.colors.max() <= 1
    # per-frame points: constant depth 2 in front of each camera (cameras step along z by 0.1)
    expected = np.broadcast_to(2.0 - np.array([0.0, 0.1, 0.2])[:, None, None], (3, 24, 32))
    np.testing.assert_allclose(scene.frame_points[..., 2], expected, atol=1e-5)


def test_load_output_missing_files(tmp_path):
    from gen3r.io.scene import load_output

    with pytest.raises(Gen3RError, match="points.ply is missing"):
        load_output(tmp_path)


@pytest.fixture()
def varied_dir(tmp_path):
    """4 frames of 16 x 16: depth 1..4 by frame, confidence = column index (analytic percentiles)."""
    from gen3r.cameras import Cameras
    from gen3r.geometry import unproject_depth
    from gen3r.io.results import export_scene

    ext = torch.eye(4).repeat(4, 1, 1)
    ext[:, 0, 3] = torch.arange(4) * 0.1
    cams = Cameras(extrinsics=ext, intrinsics=torch.tensor([[16.0, 0, 8], [0, 16.0, 8], [0, 0, 1]]).repeat(4, 1, 1),
                   image_size=(16, 16))
    depth = np.repeat(np.arange(1, 5, dtype=np.float32), 256).reshape(4, 16, 16)
    conf = np.broadcast_to(np.arange(16, dtype=np.float32), (4, 16, 16)).copy()
    wp = unproject_depth(depth, cams.extrinsics, cams.intrinsics, min_max_depth_mask=False)
    rgb = np.random.default_rng(1).random((4, 16, 16, 3)).astype(np.float32)
    return export_scene(tmp_path / "varied", rgb=rgb, depth=depth, world_points=wp, cameras=cams, depth_conf=conf)


def test_point_filters(varied_dir):
    from gen3r.io.scene import load_output

    scene = load_output(varied_dir)
    assert len(scene.select()[0]) == 4 * 256
    points, _, frame = scene.select(max_depth_percentile=50)  # depths 1 and 2 of 1..4
    assert sorted(set(frame.tolist())) == [0, 1] and len(points) == 512
    points, _, _ = scene.select(min_confidence_percentile=50)  # columns 8..15 (median 7.5)
    assert len(points) == 4 * 16 * 8
    points, colors, frame = scene.select(frames=[2], max_points=100)
    assert len(points) == 100 and set(frame.tolist()) == {2}
    np.testing.assert_allclose(points[:, 2], 3.0, atol=1e-5)
    with pytest.raises(Gen3RError, match="between 0 and 100"):
        scene.select(max_depth_percentile=101)


def _viewer(folder):
    from gen3r.io.viewer import start

    return start(folder, port=free_port())


def test_viewer_panel_updates_the_scene(varied_dir):
    server, viewer = _viewer(varied_dir)
    try:
        assert len(viewer.cloud.points) == 1024 and len(viewer.frustums) == 4
        viewer.frame_slider.value = 3  # as the browser would: the slider drives the frame
        assert viewer.frame == 3 and len(viewer.highlight.points) == 256
        np.testing.assert_allclose(viewer.highlight.points[:, 2], 4.0, atol=1e-2)
        assert tuple(viewer.frustums[3].color) == (255, 200, 0) and tuple(viewer.frustums[0].color) == (230, 60, 60)
        viewer.only_frame_box.value = True
        assert len(viewer.cloud.points) == 256
        viewer.only_frame_box.value = False
        viewer.depth_slider.value = 50
        assert len(viewer.cloud.points) == 512
        viewer.confidence_slider.value = 50
        assert len(viewer.cloud.points) == 256
        viewer.size_slider.value = viewer.size_slider.max
        assert viewer.cloud.point_size == pytest.approx(viewer.size_slider.max)
    finally:
        viewer.close()
        server.stop()


def test_serves_on_loopback(out_dir):
    from gen3r.io.viewer import serve

    port = free_port()
    server = serve(out_dir, port=port, duration=0.1)
    try:
        assert server.get_host() == "127.0.0.1"
        html = urllib.request.urlopen(f"http://127.0.0.1:{server.get_port()}/", timeout=10).read()
        assert b"<html" in html.lower() or b"<!doctype" in html.lower()
    finally:
        server.stop()


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err and err[-1].startswith("gen3r: error:") and not any("Traceback" in e for e in err), err
    return err[-1]


def test_view_port_in_use_is_refused_not_moved(out_dir, capsys):
    from gen3r.cli.main import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["view", str(out_dir), "--port", str(port)]) == 2
    captured_line = _one_error_line(capsys)
    assert f"port {port} on 127.0.0.1 is in use" in captured_line


@pytest.mark.parametrize("args,needle", [
    (["--host", "no such host.invalid"], "is not a valid address"),
    (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1"),  # TEST-NET: never an address of this machine
])
def test_view_bad_host_is_one_line(out_dir, capsys, args, needle):
    from gen3r.cli.main import main

    assert main(["view", str(out_dir), "--port", str(free_port()), *args]) == 2
    assert needle in _one_error_line(capsys)


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_view_bad_port_is_an_argparse_error(out_dir, capsys, port):
    from gen3r.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["view", str(out_dir), f"--port={port}"])
    assert exc.value.code == 2 and "a port number in [1, 65535]" in capsys.readouterr().err


def test_view_truncated_point_cloud_is_one_line(out_dir, capsys):
    from gen3r.cli.main import main

    ply = out_dir / "points.ply"
    ply.write_bytes(ply.read_bytes()[: ply.stat().st_size // 2])
    assert main(["view", str(out_dir), "--port", str(free_port())]) == 2
    assert "points.ply" in _one_error_line(capsys)
    (out_dir / "points.ply").write_text("ply\nformat ascii 1.0\nelement vertex 5\nend_header\n1 2\n")
    assert main(["view", str(out_dir), "--port", str(free_port())]) == 2
    assert "truncated or not a point cloud" in _one_error_line(capsys)


def _viser_message_types(frame: bytes) -> list[str]:
    """Message type names of one viser websocket frame (its wire format: 8-byte raw size, 8-byte
    compressed size, zstd-compressed msgpack, then binary buffers)."""
    import msgspec
    import zstandard

    size = int.from_bytes(frame[8:16], "little")
    payload = msgspec.msgpack.decode(zstandard.ZstdDecompressor().decompress(frame[16:16 + size]))
    return [m.get("type", "") for m in payload.get("messages", []) if isinstance(m, dict)]


def test_viewer_in_a_browser(varied_dir):
    """Headless chromium connects; the point cloud and every frustum arrive over the websocket,
    the canvas shows coloured points, and playback moves the browser's camera to the generated ones."""
    from tests._browser import browser, coloured_fraction

    server, viewer = _viewer(varied_dir)
    try:
        with browser() as b:
            types: list[str] = []
            b.page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda f: types.extend(_viser_message_types(f)) if isinstance(f, bytes) else None))
            b.page.goto(f"http://127.0.0.1:{server.get_port()}/")
            for _ in range(60):
                if types.count("CameraFrustumMessage") >= 4 and "PointCloudMessage" in types:
                    break
                b.page.wait_for_timeout(500)
            assert "PointCloudMessage" in types and types.count("CameraFrustumMessage") >= 4
            b.page.wait_for_timeout(2000)
            assert coloured_fraction(b.screenshot("viewer")) > 0.002
            assert b.outside_requests() == []
            client = next(iter(server.get_clients().values()))
            viewer.fps_slider.value = 30
            viewer.play_box.value = True
            b.page.wait_for_timeout(500)
            viewer.play_box.value = False
            target = viewer.c2w[viewer.frame][:3, 3]
            for _ in range(50):  # the server learns the browser's camera when the browser reports it back
                if np.allclose(client.camera.position, target, atol=1e-4):
                    break
                b.page.wait_for_timeout(100)
            np.testing.assert_allclose(client.camera.position, target, atol=1e-4)
    finally:
        viewer.close()
        server.stop()
