"""``gen3r app``: the app's logic on the embedded mini model, and a generation round trip in headless chromium."""

from __future__ import annotations

import json
import socket
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gen3r.errors import Gen3RError
from tests._tiny import ROOT, TINY_CHECKPOINT, free_port

EXAMPLE = ROOT / "gen3r" / "assets" / "examples" / "room.png"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from gen3r.app import Gen3RApp
    from gen3r.pipeline import Gen3RPipeline
    from gen3r.pipeline.loading import MINI_MODEL

    pipe = Gen3RPipeline.from_pretrained(MINI_MODEL, torch_dtype=torch.float32)
    return Gen3RApp(pipe, tmp_path_factory.mktemp("app"))


@pytest.mark.parametrize("task, first, last, video, expected", [
    ("auto", "a.png", None, None, "1view"),
    ("auto", "a.png", "b.png", None, "2view"),
    ("auto", None, None, "v.mp4", "allview"),
    ("2view", "a.png", "b.png", None, "2view"),
    ("auto", None, None, None, "upload a first frame"),
    ("auto", None, "b.png", None, "needs a first frame"),
    ("auto", "a.png", None, "v.mp4", "not both"),
    ("2view", "a.png", None, None, "task 2view needs two images"),
    ("allview", "a.png", None, None, "task allview needs a video"),
    ("3view", "a.png", None, None, "unknown task"),
])
def test_task_from_the_uploads(task, first, last, video, expected):
    from gen3r.app import infer_task

    if expected in ("1view", "2view", "allview"):
        assert infer_task(task, first, last, video) == expected
    else:
        with pytest.raises(Gen3RError, match=expected):
            infer_task(task, first, last, video)


def test_generate_exports_every_file_and_refilters_without_the_model(app, monkeypatch):
    import trimesh

    progress = []
    result = app.generate(str(EXAMPLE), None, None, camera="orbit_left", prompt="a room", seed=3, steps=2,
                          progress=lambda f, d: progress.append((f, d)))
    folder = Path(result["folder"])
    assert result["task"] == "1view" and progress[-1] == (1.0, "exporting") and progress[0][0] == 0.5
    names = {Path(f).name for f in result["files"]}
    assert {"rgb.mp4", "depth.mp4", "depth.npz", "points.ply", "scene.glb", "cameras.json",
            "transforms.json"} <= names
    with zipfile.ZipFile(next(f for f in result["files"] if f.endswith(".zip"))) as z:
        assert {"rgb.mp4", "points.ply", "colmap/cameras.txt"} <= set(z.namelist())
    settings = json.loads((folder / "config.json").read_text())["settings"]
    assert settings["cameras"] == "orbit_left" and settings["seed"] == 3
    # refilter: the model does not run, the GLB changes with the filter (read back with trimesh)
    monkeypatch.setattr(app.pipe, "__call__", lambda *a, **k: pytest.fail("the model ran"))

    def count(path):
        geometry = trimesh.load(path, force="scene").geometry
        return sum(len(g.vertices) for g in geometry.values() if isinstance(g, trimesh.PointCloud))

    full, near = app.refilter(str(folder)), app.refilter(str(folder), max_depth=60)
    assert count(near) < count(full) and full != result["glb"]
    with_cams = trimesh.load(full, force="scene").geometry
    no_cams = trimesh.load(app.refilter(str(folder), show_cameras=False), force="scene").geometry
    assert len(no_cams) < len(with_cams)


def test_camera_file_and_bad_requests(app, tmp_path):
    from gen3r.cli.main import main as gen3r

    cams = tmp_path / "path.json"
    assert gen3r(["cameras", "make", "zoom_in", str(cams), "--frames", "17", "--size", "112x112"]) == 0
    result = app.generate(str(EXAMPLE), str(EXAMPLE), None, camera_file=str(cams), steps=2)
    assert result["task"] == "2view"
    assert json.loads((Path(result["folder"]) / "config.json").read_text())["settings"]["cameras"] == "path.json"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(Gen3RError, match="bad.json"):
        app.generate(str(EXAMPLE), None, None, camera_file=str(bad))
    with pytest.raises(Gen3RError, match="steps must be between"):
        app.generate(str(EXAMPLE), None, None, steps=0)
    with pytest.raises(Gen3RError, match="run the model first"):
        app.refilter("")


def test_short_video_is_refused(app, tmp_path):
    from gen3r.io.exporters import write_video

    video = write_video(tmp_path / "short.mp4", np.random.default_rng(0).random((5, 112, 112, 3)).astype(np.float32))
    with pytest.raises(Gen3RError, match="the video has 5 frames; allview needs at least 17"):
        app.generate(None, None, str(video))
    with pytest.raises(Gen3RError, match="without camera control"):
        app.generate(None, None, str(video), camera="zoom_in")


def test_app_in_a_browser(app):
    """Upload an image, run (the model's own 25 steps), the video and the 3D view appear, a download
    link serves the file; a run without uploads shows the one-line error."""
    from gen3r.app import launch
    from tests._browser import browser, drawn_fraction, wait_until_drawn

    port = free_port()
    ui = launch(app, port=port, block=False, examples=[(str(EXAMPLE), "a room")])
    try:
        with browser(1400, 1100) as b:
            page = b.page
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#run", timeout=60_000)
            page.click("#run")  # nothing uploaded
            page.wait_for_selector("text=upload a first frame", timeout=30_000)
            page.locator("#first input[type=file]").set_input_files(str(EXAMPLE))
            page.wait_for_selector("#first img", timeout=30_000)
            page.click("#run")
            page.wait_for_selector("#rgb video", timeout=180_000)
            page.wait_for_selector("#scene canvas", timeout=60_000)
            page.wait_for_selector("#files a", timeout=60_000)
            assert drawn_fraction(wait_until_drawn(b, "app-scene", "#scene canvas")) >= 0.01
            b.screenshot("app", full_page=True)
            links = page.eval_on_selector_all("#files a", "els => els.map(e => e.href)")
            mp4 = next(link for link in links if link.split("?")[0].endswith("rgb.mp4"))
            with urllib.request.urlopen(mp4, timeout=30) as response:
                body = response.read()
            assert response.status == 200 and body[4:8] == b"ftyp"  # an mp4 file
            assert any(link.split("?")[0].endswith(".zip") for link in links)
    finally:
        ui.close()


def test_cli_app_refuses_a_busy_port_before_loading(capsys):
    from gen3r.cli.main import main as gen3r

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert gen3r(["app", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"port {port} on 127.0.0.1 is in use" in err[-1]


@pytest.mark.parametrize("kind", ["image", "video"])
def test_damaged_uploads_are_one_line(app, tmp_path, kind):
    junk = tmp_path / ("junk.png" if kind == "image" else "junk.mp4")
    junk.write_bytes(b"not a picture at all" * 10)
    args = (str(junk), None, None) if kind == "image" else (None, None, str(junk))
    before = set(app.work_dir.iterdir())
    with pytest.raises(Gen3RError) as exc:
        app.generate(*args, steps=1)
    assert "junk" in str(exc.value) and "\n" not in str(exc.value)
    assert set(app.work_dir.iterdir()) == before  # no output folder


def test_upload_larger_than_the_cap_is_refused(app, tmp_path):
    import httpx

    from gen3r.app import launch

    port = free_port()
    ui = launch(app, port=port, block=False, max_upload_mb=1)
    try:
        big = tmp_path / "big.png"
        big.write_bytes(b"\0" * (2 * 1024 * 1024))
        small = tmp_path / "small.png"
        small.write_bytes(EXAMPLE.read_bytes())
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        with httpx.Client(timeout=30) as client:
            refused = client.post(url, files={"files": ("big.png", big.read_bytes())})
            accepted = client.post(url, files={"files": ("small.png", small.read_bytes())})
        assert refused.status_code == 413 and accepted.status_code == 200
    finally:
        ui.close()


def test_app_runs_any_checkpoint(tmp_path):
    """--checkpoint selects the model: the tiny official-layout fixture works the same way."""
    from gen3r.app import Gen3RApp
    from gen3r.pipeline import Gen3RPipeline

    fixture = TINY_CHECKPOINT
    pipe = Gen3RPipeline.from_pretrained(fixture)
    pipe.call_defaults.update(num_frames=5, height=112, width=112)
    result = Gen3RApp(pipe, tmp_path).generate(str(EXAMPLE), None, None, steps=1)
    assert Path(result["rgb"]).is_file() and Path(result["glb"]).is_file()
