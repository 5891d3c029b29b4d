"""``gen3r export-html``: one self-contained page, checked in headless chromium (no request leaves)."""

from __future__ import annotations

import re

import pytest

from gen3r.cli.main import main as gen3r
from tests._browser import browser, coloured_fraction, drawn_fraction
from tests._tiny import ROOT, export_small_output


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return export_small_output(tmp_path_factory.mktemp("html") / "out")


def test_page_is_self_contained_and_renders_offline(output, tmp_path):
    page_file = tmp_path / "scene.html"
    assert gen3r(["export-html", str(output), "--output", str(page_file), "--max-points", "1000"]) == 0
    text = page_file.read_text()
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?https?:""", text)
    assert "data:video/mp4;base64," in text  # the video is inlined
    with browser() as b:
        b.page.goto(page_file.as_uri())
        b.page.wait_for_selector("#scene .gl-container canvas", timeout=60_000)
        b.page.wait_for_timeout(1500)
        counts = b.page.evaluate("document.getElementById('scene')._fullData.map(t => t._length)")
        image = b.screenshot("export-html", "#scene")
        videos = b.page.evaluate("[...document.querySelectorAll('video')].map(v => v.src.slice(0, 15))")
        assert b.outside_requests() == []
    assert counts[0] == 1000 and counts[1] == 3  # capped points; one camera-path vertex per frame
    assert videos == ["data:video/mp4;"] * 2
    # the random-colour points are drawn on the WebGL canvas: many saturated pixels
    assert coloured_fraction(image) > 0.01 and drawn_fraction(image) > 0.005


def test_default_output_next_to_the_scene(output):
    assert gen3r(["export-html", str(output)]) == 0
    assert (output / "scene.html").is_file()


@pytest.mark.parametrize("args, message", [
    (["export-html", "{missing}"], "does not exist"),
    (["export-html", "{out}", "--output", "{folder}"], "is a folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(output, tmp_path, capsys, args, message):
    folder = tmp_path / "dir"
    folder.mkdir()
    args = [a.format(missing=tmp_path / "nope", out=output, folder=folder) for a in args]
    assert gen3r(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert list(folder.iterdir()) == []


def test_max_points_must_be_positive(output, capsys):
    with pytest.raises(SystemExit) as exc:
        gen3r(["export-html", str(output), "--max-points", "0"])
    assert exc.value.code == 2 and "--max-points" in capsys.readouterr().err


def test_outputs_of_the_fixture_checkpoint_are_viewable(tmp_path):
    """The three surfaces on a `gen3r generate` output of the tiny official-layout checkpoint."""
    import socket

    from gen3r.io.scene import load_output
    from gen3r.io.viewer import start

    root = ROOT
    out = tmp_path / "out"
    assert gen3r(["generate", str(root / "gen3r" / "assets" / "examples" / "room.png"), "--checkpoint",
                  str(root / "tests" / "data" / "official-tiny" / "checkpoint"), "--out", str(out),
                  "--frames", "5", "--height", "112", "--width", "112", "--steps", "2"]) == 0
    assert gen3r(["export-html", str(out)]) == 0 and (out / "scene.html").stat().st_size > 1_000_000
    scene = load_output(out)
    assert scene.frame_points.shape == (5, 112, 112, 3) and len(scene.select(max_points=500)[0]) == 500
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, viewer = start(out, port=port)
    try:
        assert len(viewer.frustums) == 5
    finally:
        viewer.close()
        server.stop()
