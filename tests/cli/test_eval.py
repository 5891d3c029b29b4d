"""`gen3r eval` end to end on procedural data (RealEstate10K and nerfstudio/DL3DV layouts) with the
tiny official-layout checkpoint (random weights: the numbers are meaningless but must be finite),
resuming after an interruption, and bad arguments (one line on stderr, exit code 2).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from gen3r.cli.main import main
from gen3r.data.procedural import render_scene
from gen3r.data.writers import write_nerfstudio, write_re10k
from gen3r.pipeline import Gen3RPipeline
from tests._tiny import TINY_CHECKPOINT as CKPT

SMALL = ["--frames", "5", "--height", "112", "--width", "112", "--steps", "1", "--guidance", "1",
         "--num-points", "500"]
GEOMETRY_AND_CAMERA = ("accuracy", "completeness", "chamfer", "auc30", "auc15", "auc5", "rra30", "rta30")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_eval")
    scenes = [render_scene(s, 5, 112, 128, kind="indoor", trajectory="orbit") for s in (4, 5)]
    write_re10k(root / "re10k", {"test": scenes})
    write_nerfstudio(root / "dl3dv" / "scene_a", scenes[0])
    (root / "two.txt").write_text("# two sequences\nscene_00000\nscene_00001\n")
    (root / "one_dl3dv.txt").write_text("scene_a\n")
    (root / "unknown.txt").write_text("scene_00000\nnot_there\n")
    return root


def _args(data: Path, out: Path, *extra: str, dataset: str = "re10k", task: str = "2view") -> list[str]:
    return ["eval", "--task", task, "--dataset", dataset, "--root", str(data / dataset), "--checkpoint", str(CKPT),
            "--out", str(out), *SMALL, *extra]


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _check_finite(rec: dict, appearance: bool) -> None:
    keys = GEOMETRY_AND_CAMERA + (("psnr", "ssim") if appearance else ())
    bad = {k: rec["metrics"][k] for k in keys if rec["metrics"][k] is None or not math.isfinite(rec["metrics"][k])}
    assert not bad and not rec["errors"], (rec["sequence"], rec["method"], bad, rec["errors"])


def test_eval_re10k_2view_interrupted_then_resumed(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    real_call = Gen3RPipeline.__call__
    calls = []

    def interrupt_second(self, *args, **kwargs):
        calls.append(kwargs["task"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(Gen3RPipeline, "__call__", interrupt_second)
    split = ["--split", str(data / "two.txt"), "--baselines", "two_stage"]  # vggt runs in the recon test
    assert main(_args(data, out, *split)) == 130
    done = _lines(out)
    assert [(r["sequence"], r["method"]) for r in done] == [("scene_00000", "two_stage"), ("scene_00000", "gen3r")]

    def count(self, *args, **kwargs):
        calls.append(kwargs["task"])
        return real_call(self, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(Gen3RPipeline, "__call__", count)
    assert main(_args(data, out, *split)) == 0
    assert calls == ["2view"]  # only the sequence that was not done
    recs = _lines(out)
    assert recs[:2] == done and len(recs) == 4
    for rec in recs:
        _check_finite(rec, appearance=True)
        assert rec["frames"] == [0, 1, 2, 3, 4] and len(rec["pose_errors"]["rra"]) == 10
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["method"], r["num_sequences"]) for r in rows] == [("two_stage", "2"), ("gen3r", "2")]
    assert all(r["lpips"] == "" for r in rows)  # no --lpips-weights: empty, not invented
    assert rows[0]["psnr"] == rows[1]["psnr"]  # 2-Stage shows the same generated frames
    stdout = capsys.readouterr().out
    assert "| Ours | 2 |" in stdout and "RealEstate10K: 2-view generation, with camera conditions" in stdout

    # a third run has nothing to do: the checkpoint is not even loaded
    monkeypatch.setattr(Gen3RPipeline, "from_pretrained", classmethod(lambda *a, **k: pytest.fail("loaded")))
    assert main(_args(data, out, *split)) == 0
    assert len(_lines(out)) == 4
    # other settings in the same folder: refused before any model is loaded, results untouched
    capsys.readouterr()
    assert main(_args(data, out, *split, "--seed", "1")) == 2
    assert "other settings (seed differ)" in _one_error_line(capsys)
    assert len(_lines(out)) == 4


def test_eval_dl3dv_recon(data, tmp_path):
    out = tmp_path / "out"
    assert main(_args(data, out, "--split", str(data / "one_dl3dv.txt"), dataset="dl3dv", task="recon")) == 0
    recs = {r["method"]: r for r in _lines(out)}
    assert set(recs) == {"gen3r", "vggt", "vae_only"}
    for method, rec in recs.items():
        _check_finite(rec, appearance=method == "gen3r")
        assert rec["frames"] == [0, 1, 2, 3, 4] and len(rec["pose_errors"]["rra"]) == 10  # 5 frames -> 10 pairs
    config = json.loads((out / "config.json").read_text())
    assert config["camera_cond"] is False and config["task"] == "recon" and config["sequences"] == ["scene_a"]
    md = (out / "results.md").read_text()
    assert "| Ours (VAE only) | 1 |" in md and "without camera conditions" in md


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("gen3r: error:")
    return err[0]


@pytest.mark.parametrize("change,needle", [
    ({"dataset": "kitti"}, "unknown dataset 'kitti'"),
    ({"root": "missing"}, "does not exist"),
    ({"extra": ["--split", "unknown.txt"]}, "1 split sequences are not on disk"),
    ({"extra": ["--split", "no_such_split.txt"]}, "split file"),
    ({"task": "1view", "extra": ["--baselines", "vae_only"]}, "vae_only is a reconstruction baseline"),
    ({"extra": ["--baselines", "vggt,dust3r"]}, "unknown baseline 'dust3r'"),
    ({"task": "recon", "extra": ["--camera-cond"]}, "without camera conditions"),
    ({"extra": ["--frames", "6"]}, "4k+1"),
    ({"extra": ["--lpips-weights", "no_lpips_dir"]}, "is not a folder"),
    ({"extra": ["--checkpoint", "no_checkpoint"]}, "no_checkpoint"),
])
def test_bad_arguments(data, tmp_path, capsys, change, needle):
    out = tmp_path / "out"
    extra = [str(data / e) if e.endswith(".txt") else str(tmp_path / e) if e.startswith("no_") else e
             for e in change.get("extra", [])]
    args = _args(data, out, *extra, dataset=change.get("dataset", "re10k"), task=change.get("task", "2view"))
    if "root" in change:
        args[args.index("--root") + 1] = str(tmp_path / change["root"])
    assert main(args) == 2
    assert needle in _one_error_line(capsys)
    assert not out.exists()
