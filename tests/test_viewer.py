"""The viser viewer loads an output folder and serves it on 127.0.0.1 only."""

from __future__ import annotations

import socket
import urllib.request

import numpy as np
import pytest
import torch

from gen3r.errors import Gen3RError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def out_dir(tmp_path):
    from gen3r.cameras import Cameras
    from gen3r.geometry import unproject_depth
    from gen3r.io.results import export_scene

    ext = torch.eye(4).repeat(3, 1, 1)
    ext[:, 2, 3] = torch.tensor([0.0, 0.1, 0.2])
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 12], [0, 0, 1]]).repeat(3, 1, 1)
    cams = Cameras(extrinsics=ext, intrinsics=K, image_size=(24, 32))
    depth = np.full((3, 24, 32), 2.0, np.float32)
    wp = unproject_depth(depth, cams.extrinsics, cams.intrinsics, min_max_depth_mask=False)
    rgb = np.random.default_rng(0).random((3, 24, 32, 3)).astype(np.float32)
    return export_scene(tmp_path / "out", rgb=rgb, depth=depth, world_points=wp, cameras=cams)


def test_load_scene(out_dir):
    from gen3r.io.viewer import load_scene

    scene = load_scene(out_dir)
    assert scene.points.shape[1] == 3 and len(scene.points) > 0
    assert len(scene.cameras) == 3 and len(scene.thumbnails) == 3
    assert 0 <= scene.colors.min() and scene.colors.max() <= 1


def test_load_scene_missing_files(tmp_path):
    from gen3r.io.viewer import load_scene

    with pytest.raises(Gen3RError, match="points.ply is missing"):
        load_scene(tmp_path)


def test_serves_on_loopback(out_dir):
    from gen3r.io.viewer import serve

    port = _free_port()
    server = serve(out_dir, port=port, duration=0.5)
    try:
        assert server.get_host() == "127.0.0.1"
        html = urllib.request.urlopen(f"http://127.0.0.1:{server.get_port()}/", timeout=10).read()
        assert b"<html" in html.lower() or b"<!doctype" in html.lower()
    finally:
        server.stop()
