"""``gen3r train``: JSON configs (defaults, round trip, one-line errors, exit 2) and end-to-end runs."""

from __future__ import annotations

import json

import pytest
import torch

from gen3r.cli.main import main
from gen3r.errors import Gen3RError
from gen3r.train.config import (
    OFFICIAL_DATASET_WEIGHTS,
    AdapterTrainConfig,
    DitTrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from gen3r.train.loop import grad_clip_value, list_checkpoints, lr_factor
from tests._tiny import TINY_CHECKPOINT

TINY_DATA = {"num_frames": 1, "height": 112, "width": 112, "batch_size": 1,
             "procedural": {"num_scenes": 2, "render_frames": 5, "kind": "indoor"}}


def test_official_defaults_and_round_trip():
    a, d = AdapterTrainConfig(), DitTrainConfig()
    assert (a.optim.lr, a.optim.weight_decay, a.optim.min_lr_ratio, a.optim.max_grad_norm) == (1e-5, 1e-4, 0.2, 0.5)
    assert a.grad_accum_steps == 8 and a.data.max_stride == 2 and a.init == "random"
    assert (d.optim.lr, d.optim.weight_decay, d.optim.eps, d.optim.warmup_steps) == (1e-5, 3e-2, 1e-10, 50)
    assert (d.prompt_dropout, d.camera_dropout, d.loss_threshold) == (0.2, 0.5, 50.0)
    assert d.data.batch_size == 4 and d.grad_accum_steps == 2 and d.data.max_stride == 1
    assert d.condition_probs == pytest.approx({"1view": 1 / 3, "allview": 1 / 3, "2view": 1 / 3})
    assert OFFICIAL_DATASET_WEIGHTS["mvimgnet"] == 0.25 and len(OFFICIAL_DATASET_WEIGHTS) == 10
    for cfg in (a, d):
        assert config_from_dict(type(cfg), config_to_dict(cfg)) == cfg
    partial = config_from_dict(DitTrainConfig, {"optim": {"lr": 2e-5}, "data": {"weights": {"re10k": 2}}})
    assert partial.optim.lr == 2e-5 and partial.optim.eps == 1e-10 and partial.data.weights == {"re10k": 2.0}


def test_schedules():
    assert lr_factor(0, 100, 0, 0.2) == 1.0 and lr_factor(100, 100, 0, 0.2) == pytest.approx(0.2)
    assert lr_factor(50, 100, 0, 0.2) == pytest.approx(0.6)
    assert lr_factor(0, 100, 10, 0.0) == pytest.approx(0.1) and lr_factor(9, 100, 10, 0.0) == 1.0
    assert lr_factor(55, 100, 10, 0.0) == pytest.approx(0.5)
    optim = DitTrainConfig().optim
    assert [grad_clip_value(s, 1000, optim) for s in (0, 50, 100, 500)] == pytest.approx([0.5, 0.375, 0.25, 0.25])
    assert grad_clip_value(7, 10, AdapterTrainConfig().optim) == 0.5


@pytest.mark.parametrize("data, message", [
    ({"max_step": 3}, "unknown config key 'max_step'"),
    ({"data": {"num_frame": 5}}, "unknown config key 'data.num_frame'"),
    ({"max_steps": "10"}, "config key 'max_steps' must be int"),
    ({"optim": {"betas": [0.9]}}, "'optim.betas' must be a list of 2 numbers"),
    ({"data": {"num_frames": 6}}, "data.num_frames must be 4k+1"),
    ({"data": {"height": 100}}, "multiples of 112"),
    ({"mixed_precision": "fp16"}, "mixed_precision must be 'no' or 'bf16'"),
    ({"condition_probs": {"3view": 1.0}}, "condition_probs"),
    ({"geometry_condition": "adapter"}, "unknown config key 'geometry_condition'"),
    ({"optim": {"lr": -1}}, "lr and eps must be > 0"),
    ([1, 2], "must hold a JSON object"),
])
def test_bad_configs_exit_2_with_one_line(tmp_path, capsys, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert main(["train", "dit", "--config", str(path), "--checkpoint", str(TINY_CHECKPOINT)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("gen3r: error:")


def test_bad_config_files(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["train", "adapter", "--config", str(tmp_path / "broken.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["train", "adapter", "--config", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "c.json").write_text("{}")
    assert main(["train", "adapter", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no Gen3R checkpoint given" in capsys.readouterr().err
    with pytest.raises(Gen3RError, match="'init' must be str"):
        (tmp_path / "d.json").write_text(json.dumps({"init": 3}))
        load_config(tmp_path / "d.json", AdapterTrainConfig)


def test_cli_trains_both_stages_and_resumes(tmp_path):
    from gen3r.data.procedural import render_scene
    from gen3r.data.writers import write_official

    write_official(tmp_path / "data" / "re10k", [render_scene(s, 9, 112, 112, num_objects=2) for s in (0, 1)])
    cfg = tmp_path / "dit.json"
    official = {k: v for k, v in TINY_DATA.items() if k != "procedural"}
    cfg.write_text(json.dumps({"data": {**official, "root": str(tmp_path / "data")}, "save_every": 1,
                               "log_every": 1}))
    out = tmp_path / "dit"
    args = ["train", "dit", "--config", str(cfg), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out)]
    assert main([*args, "--max-steps", "1"]) == 0
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-0000001"]
    assert main([*args, "--max-steps", "1"]) == 2  # refuses to start over a run
    assert main([*args, "--max-steps", "2", "--resume"]) == 0
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-0000001", "checkpoint-0000002"]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [1, 2] and all("loss" in m and "grad_norm" in m for m in logged)
    state = torch.load(list_checkpoints(out)[-1] / "training_state.pt", weights_only=True)
    assert state["step"] == 2 and state["config"]["max_steps"] == 2

    cfg.write_text(json.dumps({"data": {**TINY_DATA, "height": 56, "width": 56}}))
    out = tmp_path / "adapter"
    assert main(["train", "adapter", "--config", str(cfg), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out),
                 "--max-steps", "1"]) == 0
    assert (list_checkpoints(out)[-1] / "geo_adapter" / "config.json").is_file()
    logged = json.loads((out / "metrics.jsonl").read_text())
    assert {"image_token", "camera_token", "camera", "depth", "point", "similarity", "kl", "loss"} <= set(logged)
