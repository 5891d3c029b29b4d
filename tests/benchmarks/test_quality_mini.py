"""benchmarks/quality_mini.py on smoke-size models and a few dev scenes: tables, intervals, verdicts,
plots, and resuming (a rerun adds only what is new)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from gen3r.cli.main import main as gen3r
from gen3r.errors import Gen3RError
from tests._tiny import ROOT


def _benchmark():
    spec = importlib.util.spec_from_file_location("quality_mini", ROOT / "benchmarks" / "quality_mini.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    assert gen3r(["assemble", str(root / "joint"), "--arch", "smoke"]) == 0
    assert gen3r(["assemble", str(root / "nokl"), "--arch", "smoke", "--seed", "1"]) == 0
    assert gen3r(["assemble", str(root / "2stage"), "--base", str(root / "joint"), "--fresh", "dit",
                  "--arch", "smoke-2stage"]) == 0
    return root


def test_eval_runs_share_one_run_per_checkpoint():
    q = _benchmark()
    runs = q.eval_runs(q.GENERATION_ROWS, "1view")
    assert runs == {"checkpoint": ["copy_first", "two_stage", "vggt"], "two_stage": ["two_stage"],
                    "no_kl": ["two_stage"]}
    assert q.eval_runs(q.RECON_ROWS, "recon") == {"checkpoint": ["vae_only", "vggt"]}


def test_smoke_run_writes_tables_verdicts_plots_and_resumes(checkpoints, tmp_path):
    q = _benchmark()
    out = tmp_path / "q"
    argv = ["--checkpoint", str(checkpoints / "joint"), "--two-stage", str(checkpoints / "2stage"),
            "--no-kl", str(checkpoints / "nokl"), "--scenes", "2", "--frames", "5", "--steps", "1",
            "--num-points", "300", "--out", str(out), "--figure-scenes", "1"]
    first = q.main(argv)
    gen = first["results"]["1view"]
    assert set(gen) == {"gen3r", "two_stage", "no_kl", "vggt", "copy"}
    for key in ("gen3r", "two_stage", "no_kl"):
        cell = gen[key]["psnr"]
        assert cell["n"] == 2 and cell["low"] <= cell["mean"] <= cell["high"]
        assert "chamfer" in gen[key] and "auc30" in gen[key]
    assert "psnr" in gen["copy"] and "chamfer" not in gen["copy"] and "completeness" in gen["vggt"]
    assert set(first["results"]["recon"]) == {"gen3r", "vae_only", "vggt"}
    texts = [v[0] for v in first["verdicts"]]
    assert len(texts) == len(q.HYPOTHESES) + 1 and all(v[1] for v in first["verdicts"])
    md = (out / "quality.md").read_text()
    assert "### 1view" in md and "The paper's orderings" in md and "2-stage (RGB DiT, then VGGT)" in md
    geometry = md.split("### 1view geometry: own geometry vs mini VGGT on the generated frames")[1].split("###")[0]
    assert [line.split("|")[1].strip() for line in geometry.strip().splitlines()[2:]] == [
        "mini Gen3R", "2-stage (RGB DiT, then VGGT)", "w/o KL"]
    assert "1view PSNR by scene kind" in md
    identity = [line for line in md.splitlines() if "constant identity cameras" in line][-1]
    assert identity.split("|")[-2].strip() == "0.000"  # no translation: no translation direction is right
    for name in ("quality-1view.png", "quality-2view.png", "quality-recon.png", "quality-scenes.png"):
        assert (out / name).stat().st_size > 1000
    # resuming: nothing new to run; one more scene runs only that scene
    lines = {p: len(p.read_text().splitlines()) for p in out.rglob("metrics.jsonl")}
    q.main(argv[:-2] + ["--figure-scenes", "0"])
    assert {p: len(p.read_text().splitlines()) for p in out.rglob("metrics.jsonl")} == lines
    seeds = json.loads((out / "dev-data" / "seeds.json").read_text())
    assert {s["kind"] for s in seeds["scenes"]} <= {"indoor", "outdoor"} and len(seeds["scenes"]) == 2
    # --tasks runs only the tasks named: a third scene reaches the 2view folders and nothing else
    third = q.main(argv[:-2] + ["--figure-scenes", "0", "--scenes", "3", "--tasks", "2view"])
    for path, n in lines.items():
        grown = len(path.read_text().splitlines()) - n
        assert grown == (n // 2 if path.parts[-3] == "2view" else 0), path
    assert third["results"]["2view"]["gen3r"]["psnr"]["n"] == 3
    assert "psnr" not in third["results"]["1view"].get("gen3r", {})
    # back to two scenes: the tables count the current dev set only, not the third scene's records
    again = q.main(argv[:-2] + ["--figure-scenes", "0"])
    assert again["results"]["2view"]["gen3r"]["psnr"]["n"] == 2
    with pytest.raises(SystemExit):
        q.main(argv + ["--tasks", "3view"])


def test_ablations_are_assembled_from_the_kept_parts(checkpoints, tmp_path, monkeypatch):
    """Without its run folder (a fresh clone), an ablation is the base model with the parts kept in
    the repository; 'none' and a missing part leave its rows out; a run folder wins."""
    import torch

    from gen3r.pipeline import Gen3RPipeline

    q = _benchmark()
    weights = tmp_path / "weights"
    monkeypatch.setattr(q, "ABLATION_WEIGHTS", weights)  # never the repository's kept parts
    # what scripts/train_ablations.sh keeps: the parts each ablation trained, nothing else
    q.main(["--keep", "two_stage", "--two-stage", str(checkpoints / "2stage"), "--out", str(tmp_path / "unused")])
    q.keep_parts("no_kl", checkpoints / "nokl")
    assert not (tmp_path / "unused").exists()
    assert sorted(p.name for p in (weights / "2stage").iterdir()) == ["transformer"]
    assert sorted(p.name for p in (weights / "nokl").iterdir()) == ["geo_adapter", "transformer"]
    with pytest.raises(Gen3RError, match="assemble the no_kl model first"):
        q.keep_parts("no_kl", tmp_path / "gone", weights)
    kept = {p: p.stat().st_mtime_ns for p in weights.rglob("*")}
    with pytest.raises(SystemExit) as stop:  # the command line: one line, exit 2, the kept parts untouched
        q.main(["--keep", "no_kl", "--no-kl", str(tmp_path / "gone")])
    assert stop.value.code == 2 and {p: p.stat().st_mtime_ns for p in weights.rglob("*")} == kept
    base, out = str(checkpoints / "joint"), tmp_path / "q"
    trained_2stage = str(checkpoints / "2stage")
    assert q.resolve_ablation("two_stage", trained_2stage, base, out, weights) == trained_2stage
    assert q.resolve_ablation("no_kl", "none", base, out, weights) is None
    assert q.resolve_ablation("no_kl", str(tmp_path / "gone"), base, out, tmp_path / "empty") is None
    for option, name, parts in (("two_stage", "2stage", ("transformer",)),
                                ("no_kl", "nokl", ("transformer", "geo_adapter"))):
        made = q.resolve_ablation(option, str(tmp_path / "gone"), base, out, weights)
        assert made == str(out / "models" / name)
        got = Gen3RPipeline.from_pretrained(made, torch_dtype=torch.float32)
        trained = Gen3RPipeline.from_pretrained(checkpoints / name, torch_dtype=torch.float32)
        joint = Gen3RPipeline.from_pretrained(base, torch_dtype=torch.float32)
        for component in ("transformer", "geo_adapter", "vggt", "wan_vae"):
            source = trained if component in parts else joint
            for key, value in getattr(source, component).state_dict().items():
                torch.testing.assert_close(getattr(got, component).state_dict()[key], value.half().float(),
                                           rtol=0, atol=0, msg=f"{name} {component} {key}")
