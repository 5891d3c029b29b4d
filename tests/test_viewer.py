"""The viser viewer loads an output folder and serves it on 127.0.0.1 only."""

from __future__ import annotations

import socket
import urllib.request

import numpy as np
import pytest
import torch

from _tiny import export_small_output

from gen3r.errors import Gen3RError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def out_dir(tmp_path):
    return export_small_output(tmp_path / "out")


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

    assert main(["view", str(out_dir), "--port", str(_free_port()), *args]) == 2
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
    assert main(["view", str(out_dir), "--port", str(_free_port())]) == 2
    assert "points.ply" in _one_error_line(capsys)
    (out_dir / "points.ply").write_text("ply\nformat ascii 1.0\nelement vertex 5\nend_header\n1 2\n")
    assert main(["view", str(out_dir), "--port", str(_free_port())]) == 2
    assert "truncated or not a point cloud" in _one_error_line(capsys)
