"""Stage-1 trainer on the tiny fixture checkpoint: overfitting, resume, checkpoints, bf16."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gen3r.errors import Gen3RError
from gen3r.models.geo_adapter import GeometryAdapter
from gen3r.pipeline import Gen3RPipeline
from gen3r.train.adapter_trainer import AdapterTargets, AdapterTrainer, train_adapter
from gen3r.train.config import AdapterTrainConfig, DataConfig, OptimConfig, ProceduralDataConfig
from gen3r.train.loop import list_checkpoints, lr_factor
from tests._tiny import TINY_CHECKPOINT

TERMS = ("image_token", "camera_token", "camera", "depth", "point", "similarity", "kl", "recon", "loss")


@pytest.fixture(scope="module")
def pipe():
    return Gen3RPipeline.from_pretrained(TINY_CHECKPOINT)


def _config(out, **kw) -> AdapterTrainConfig:
    data = DataConfig(num_frames=kw.pop("num_frames", 1), height=56, width=56, max_stride=2,
                      procedural=ProceduralDataConfig(num_scenes=3, render_frames=5, kind="indoor"))
    args = dict(output_dir=str(out), data=data, max_steps=2, grad_accum_steps=1, save_every=1,
                optim=OptimConfig(lr=1e-3), log_every=1)
    args.update(kw)
    return AdapterTrainConfig(**args)


def test_overfits_a_fixed_batch(pipe, tmp_path):
    trainer = AdapterTrainer(_config(tmp_path, num_frames=5, max_steps=50), pipeline=copy.deepcopy(pipe))
    batch = trainer.next_batches()[0]
    assert batch["frames"].shape == (1, 5, 3, 56, 56)
    prepared = trainer.prepare(batch, 0)
    assert isinstance(prepared, AdapterTargets) and prepared.tokens.shape == (1, 160, 5, 4, 4)
    assert prepared.app_mean.shape == prepared.noise.shape == (1, 16, 2, 7, 7)
    losses = []
    for _ in range(5):
        metrics = trainer.train_step([prepared])
        assert set(TERMS) <= set(metrics) and all(torch.isfinite(torch.tensor(metrics[k])) for k in TERMS)
        losses.append(metrics["loss"])
    assert losses[-1] < 0.8 * losses[0], losses
    assert metrics["clip"] == 0.5 and metrics["lr"] == pytest.approx(1e-3 * lr_factor(4, 50, 0, 0.2))


def test_resume_reproduces_uninterrupted_training(pipe, tmp_path):
    full = AdapterTrainer(_config(tmp_path / "a", grad_accum_steps=2), pipeline=copy.deepcopy(pipe))
    result = full.train()
    assert [m["step"] for m in result.history] == [1, 2]
    assert [p.name for p in list_checkpoints(tmp_path / "a")] == ["checkpoint-0000001", "checkpoint-0000002"]
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and set(TERMS) <= set(lines[0])

    resumed = AdapterTrainer(_config(tmp_path / "a", grad_accum_steps=2), pipeline=copy.deepcopy(pipe))
    assert resumed.resume(tmp_path / "a" / "checkpoint-0000001") == 1
    again = resumed.train()
    assert [m["step"] for m in again.history] == [2]
    for key in TERMS:
        assert again.history[0][key] == pytest.approx(result.history[1][key], rel=1e-5, abs=1e-7), key
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
    # the checkpoint's adapter is a normal save_pretrained folder
    saved = GeometryAdapter.from_pretrained(tmp_path / "a" / "checkpoint-0000002" / "geo_adapter")
    torch.testing.assert_close(saved.state_dict(), full.model.state_dict())
    # a fresh run refuses to write into a folder holding checkpoints
    with pytest.raises(Gen3RError, match="pass --resume"):
        train_adapter(_config(tmp_path / "a"), pipeline=copy.deepcopy(pipe))


def test_keep_last_and_bf16(pipe, tmp_path):
    cfg = _config(tmp_path, max_steps=3, keep_last=1, mixed_precision="bf16", init="checkpoint")
    trainer = AdapterTrainer(cfg, pipeline=copy.deepcopy(pipe))
    torch.testing.assert_close(trainer.model.state_dict(), pipe.geo_adapter.state_dict())
    result = trainer.train()
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in result.history)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-0000003"]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    # init from a saved adapter folder (e.g. continuing a 25-frame run at 49 frames)
    folder = list_checkpoints(tmp_path)[-1] / "geo_adapter"
    cont = AdapterTrainer(_config(tmp_path / "b", init=str(folder)), pipeline=copy.deepcopy(pipe))
    torch.testing.assert_close(cont.model.state_dict(), trainer.model.state_dict(), rtol=0, atol=0)
    with pytest.raises(Gen3RError, match="init must be"):
        AdapterTrainer(_config(tmp_path / "b", init=str(tmp_path)), pipeline=pipe)
