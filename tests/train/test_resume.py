"""`gen3r train --resume` resumes or refuses: no checkpoint, a broken one, or changed settings each get
one error line, exit 2 and an untouched output folder; a larger --max-steps continues on the longer
schedule."""

from __future__ import annotations

import json

import pytest

from gen3r.cli.main import main


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err and err[-1].startswith("gen3r: error:"), err
    assert not any("Traceback" in line for line in err)
    return err[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "vae"
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out)]) == 0  # 3 steps, checkpoint at 3
    return out


def test_resume_without_a_checkpoint_refuses(tmp_path, capsys):
    out = tmp_path / "typo"
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume"]) == 2
    assert "holds no checkpoint" in _one_error_line(capsys) and not out.exists()
    (out / "checkpoint-0000002").mkdir(parents=True)
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume"]) == 2
    assert "only incomplete checkpoint-0000002" in _one_error_line(capsys)
    assert _snapshot(out) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-weights"])
def test_resume_from_a_broken_checkpoint_refuses(trained, tmp_path, capsys, damage):
    import shutil

    out = tmp_path / "vae"
    shutil.copytree(trained, out)
    ckpt = sorted(out.glob("checkpoint-*"))[-1]  # the newest: what --resume picks
    state = ckpt / "training_state.pt"
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "garbage":
        state.write_bytes(b"not a checkpoint")
    else:
        shutil.rmtree(ckpt / "wan_vae")
    before = _snapshot(out)
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume"]) == 2
    line = _one_error_line(capsys)
    assert ckpt.name in line and ("corrupt or truncated" in line or "no model weights" in line)
    assert _snapshot(out) == before


def test_resume_with_changed_settings_refuses(trained, tmp_path, capsys):
    import shutil

    out = tmp_path / "vae"
    shutil.copytree(trained, out)
    config = tmp_path / "changed.json"
    config.write_text(json.dumps({"optim": {"lr": 0.123}}))
    before = _snapshot(out)
    assert main(["train", "vae", "--preset", "smoke", "--config", str(config), "--out", str(out), "--resume"]) == 2
    line = _one_error_line(capsys)
    assert "optim.lr" in line and "0.123" in line and "init" in line
    assert _snapshot(out) == before


def test_longer_max_steps_continue_on_the_longer_schedule(trained, tmp_path):
    import shutil

    out, full = tmp_path / "vae", tmp_path / "full"
    shutil.copytree(trained, out)
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume", "--max-steps", "6"]) == 0
    assert main(["train", "vae", "--preset", "smoke", "--out", str(full), "--max-steps", "6"]) == 0
    resumed, straight = _records(out), _records(full)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    # steps 4..6 use the 6-step schedule's rates, with no step at the old schedule's rate in between
    assert [r["lr"] for r in resumed[3:]] == [r["lr"] for r in straight[3:]]


@pytest.mark.parametrize("stage,name", [("adapter", "official"), ("dit", "official"), ("vae", "mini"),
                                        ("vggt", "smoke")])
def test_print_config_round_trips_into_config(stage, name, tmp_path, capsys):
    assert main(["train", stage, "--preset", name, "--print-config"]) == 0
    printed = capsys.readouterr().out
    path = tmp_path / f"{stage}.json"
    path.write_text(printed)
    assert main(["train", stage, "--config", str(path), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    data = json.loads(printed)
    if name == "official":
        assert data["checkpoint"] == "checkpoints/Gen3R" and data["data"]["root"] == "data"


def test_data_errors_come_before_the_models_load(tmp_path, capsys, monkeypatch):
    from gen3r.train import loop

    monkeypatch.setattr(loop.Trainer, "__init__", lambda *a, **k: pytest.fail("models loaded"))
    (tmp_path / "mydata" / "NotADataset").mkdir(parents=True)
    out = tmp_path / "run"
    assert main(["train", "adapter", "--preset", "official", "--data-root", str(tmp_path / "mydata"),
                 "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "holds none of the official dataset folders" in line and not out.exists()
    assert main(["train", "adapter", "--preset", "official", "--data-root", str(tmp_path / "nowhere"),
                 "--out", str(out)]) == 2
    assert "does not exist" in _one_error_line(capsys)


def test_train_help_says_how_to_start(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "How to start" in text and "--preset smoke" in text and "--print-config" in text


def test_config_json_is_written_and_deliberate_changes_resume(trained, tmp_path, capsys):
    import shutil

    saved = json.loads((trained / "config.json").read_text())
    assert saved["output_dir"] == str(trained) and saved["max_steps"] == 3  # the resolved config of the run
    out = tmp_path / "vae"
    shutil.copytree(trained, out)
    config = tmp_path / "changed.json"
    config.write_text(json.dumps({"optim": {"lr": 0.123}, "max_steps": 4}))
    args = ["train", "vae", "--preset", "smoke", "--config", str(config), "--out", str(out)]
    assert main([*args, "--resume"]) == 2
    assert "--resume-with-changes" in _one_error_line(capsys)
    assert main([*args, "--resume-with-changes"]) == 0
    assert json.loads((out / "config.json").read_text())["optim"]["lr"] == 0.123
    assert [r["step"] for r in _records(out)] == [1, 2, 3, 4]


def test_renamed_key_is_one_line_and_old_checkpoints_resume(trained, tmp_path, capsys):
    """data.procedural.num_frames became render_frames: an old config file gets the new name, a
    checkpoint saved under the old name still resumes."""
    import shutil

    import torch

    config = tmp_path / "old.json"
    config.write_text(json.dumps({"data": {"procedural": {"num_frames": 5}}}))
    assert main(["train", "vae", "--preset", "smoke", "--config", str(config), "--out", str(tmp_path / "x")]) == 2
    assert "renamed to 'data.procedural.render_frames'" in _one_error_line(capsys)
    out = tmp_path / "vae"
    shutil.copytree(trained, out)
    ck = sorted(out.glob("checkpoint-*"))[-1] / "training_state.pt"
    state = torch.load(ck, weights_only=True)
    procedural = state["config"]["data"]["procedural"]
    procedural["num_frames"] = procedural.pop("render_frames")  # as written before the rename
    assert state["config"].pop("distributed") == "ddp"  # written before the setting existed: its default
    torch.save(state, ck)
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--max-steps", "4", "--resume"]) == 0
