"""`gen3r eval` never turns unreadable data into "skipped": it stops with the sequence and the file
named, before any model loads and without writing into --out; with --skip-unreadable it records the
real reason, shows it in the table, and retries the sequence on the next run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gen3r.cli import eval as cli_eval
from gen3r.cli.main import main
from gen3r.data.procedural import render_scene
from gen3r.data.writers import write_nerfstudio, write_re10k
from tests._tiny import TINY_CHECKPOINT

SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "1", "--guidance", "1",
         "--num-points", "300", "--baselines", "none"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_eval")
    scenes = [render_scene(s, 5, 112, 128, kind="indoor", trajectory="orbit") for s in (4, 5)]
    write_re10k(root / "re10k", {"test": scenes})
    write_nerfstudio(root / "dl3dv" / "scene_a", scenes[0])
    write_nerfstudio(root / "dl3dv" / "scene_b", scenes[1])
    return root


def _damage(root: Path, case: str) -> tuple[str, str]:
    """Break one sequence; returns (dataset, the text the error must contain)."""
    test = root / "re10k" / "test"
    if case == "short_line":
        lines = (test / "scene_00001.txt").read_text().splitlines()
        lines[2] = " ".join(lines[2].split()[:7])
        (test / "scene_00001.txt").write_text("\n".join(lines) + "\n")
        return "re10k", "scene_00001"
    if case == "missing_frames":
        shutil.rmtree(test / "frames" / "scene_00001")
        return "re10k", "scene_00001"
    if case == "not_images":
        for png in (test / "frames" / "scene_00001").glob("*.png"):
            png.write_text("this is not a picture")
        return "re10k", "scene_00001"
    if case == "bad_json":
        (root / "dl3dv" / "scene_b" / "transforms.json").write_text("{ not json")
        return "dl3dv", "scene_b"
    if case == "no_images":
        shutil.rmtree(root / "dl3dv" / "scene_b" / "images")
        return "dl3dv", "scene_b"
    raise AssertionError(case)


def _args(root, dataset, out, *extra):
    return ["eval", "--task", "1view", "--dataset", dataset, "--root", str(root / dataset), "--checkpoint",
            str(TINY_CHECKPOINT), "--out", str(out), *SMALL, *extra]


@pytest.mark.parametrize("case", ["short_line", "missing_frames", "not_images", "bad_json", "no_images"])
def test_unreadable_data_stops_before_models_and_writes_nothing(clean, tmp_path, capsys, monkeypatch, case):
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    dataset, name = _damage(root, case)
    monkeypatch.setattr(cli_eval, "load_pipeline", lambda args: pytest.fail("models loaded"))
    out = tmp_path / "out"
    assert main(_args(root, dataset, out)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("gen3r: error:") and name in err[-1] and "--skip-unreadable" in err[-1]
    assert not out.exists()


def test_skip_unreadable_records_the_reason_and_retries_after_the_fix(clean, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    frames = root / "re10k" / "test" / "frames" / "scene_00001"
    backup = tmp_path / "frames_backup"
    shutil.copytree(frames, backup)
    _damage(root, "not_images")
    out = tmp_path / "out"
    assert main(_args(root, "re10k", out, "--skip-unreadable")) == 0
    table = (out / "results.md").read_text()
    assert "| Ours | 1 |" in table and "1 unreadable (scene_00001)" in table and "too few frames" not in table
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("reason") for r in records if r["sequence"] == "scene_00001"] == ["unreadable"]
    shutil.rmtree(frames)
    shutil.copytree(backup, frames)  # the data is fixed: the same command retries the sequence
    capsys.readouterr()
    assert main(_args(root, "re10k", out)) == 0
    table = (out / "results.md").read_text()
    assert "| Ours | 2 |" in table and "Skipped" not in table
    config = json.loads((out / "config.json").read_text())
    assert config["checkpoint"] == str(TINY_CHECKPOINT)
    assert main(_args(root, "re10k", out)) == 0  # nothing left to do: no model, same table, same checkpoint
    assert (out / "results.md").read_text() == table
    assert json.loads((out / "config.json").read_text())["checkpoint"] == str(TINY_CHECKPOINT)
    assert "None" not in (out / "results.md").read_text().split("\n\n")[1]


def test_too_short_sequences_are_skipped_with_that_reason(clean, tmp_path):
    out = tmp_path / "out"
    args = _args(clean, "re10k", out)
    args[args.index("--frames") + 1] = "9"  # the sequences hold 5 frames
    assert main(args) == 0
    assert "Skipped: Ours: 2 too few frames (scene_00000, scene_00001)." in (out / "results.md").read_text()
