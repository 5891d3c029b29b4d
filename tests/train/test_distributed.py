"""Two-process DDP (torchrun, gloo on CPU): ranks draw different data but end every step with
identical parameters (gradients are all-reduced); rank 0 writes the checkpoint. Stage 1 runs two
steps, then stage 2 one step in the same processes.

The test launches this file under ``torchrun --nproc_per_node 2``; each rank runs :func:`worker`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests._tiny import ROOT, TINY_CHECKPOINT


def worker(out: Path) -> None:
    import torch.distributed as dist

    from gen3r.train.adapter_trainer import AdapterTrainer
    from gen3r.train.config import AdapterTrainConfig, DataConfig, OptimConfig, ProceduralDataConfig
    from gen3r.train.loop import load_pipeline

    torch.set_num_threads(1)
    cfg = AdapterTrainConfig(
        checkpoint=str(TINY_CHECKPOINT), output_dir=str(out / "run"), max_steps=2, grad_accum_steps=1, save_every=0,
        optim=OptimConfig(lr=1e-3),
        data=DataConfig(num_frames=5, height=56, width=56,
                        procedural=ProceduralDataConfig(num_scenes=4, render_frames=5, kind="indoor")))
    pipe = load_pipeline(str(TINY_CHECKPOINT))  # shared by both stages
    trainer = AdapterTrainer(cfg, pipeline=pipe)
    rank, world = trainer.dist.rank, trainer.dist.world_size
    initial = torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).clone()
    batches = trainer.next_batches()
    trainer.train_step(batches)
    result = trainer.train()  # step 2 through the data loader; rank 0 saves checkpoint-0000002
    params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.empty_like(params) for _ in range(world)]
    dist.all_gather(gathered, params)
    frames = batches[0]["frames"].flatten()[:64]
    all_frames = [torch.empty_like(frames) for _ in range(world)]
    dist.all_gather(all_frames, frames)
    report = {"rank": rank, "world": world, "step": result.step, "sources": batches[0]["source"],
              "max_param_diff": float(max((g - params).abs().max() for g in gathered)),
              "moved": float((params - initial).abs().max()),
              "same_frames": bool(torch.equal(all_frames[0], all_frames[1]))}
    report["dit_max_param_diff"], report["dit_moved"] = _dit_step(out, pipe)
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


def _dit_step(out: Path, pipe) -> tuple[float, float]:
    """One stage-2 step (gradient checkpointing on) in the same process group."""
    import torch.distributed as dist

    from gen3r.train.config import DataConfig, DitTrainConfig, OptimConfig, ProceduralDataConfig
    from gen3r.train.dit_trainer import DitTrainer

    cfg = DitTrainConfig(
        output_dir=str(out / "dit"), max_steps=1, grad_accum_steps=1, save_every=0,
        optim=OptimConfig(lr=1e-3, warmup_steps=0),
        data=DataConfig(num_frames=1, height=112, width=112, batch_size=1,
                        procedural=ProceduralDataConfig(num_scenes=4, render_frames=5, kind="indoor")))
    trainer = DitTrainer(cfg, pipeline=pipe)
    initial = torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).clone()
    trainer.train()
    params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.empty_like(params) for _ in range(trainer.dist.world_size)]
    dist.all_gather(gathered, params)
    return float(max((g - params).abs().max() for g in gathered)), float((params - initial).abs().max())


@pytest.mark.slow
def test_ddp_two_processes_keep_parameters_in_sync(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))  # this file imports tests.
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", __file__, str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in reports] == [2, 2] and [r["step"] for r in reports] == [2, 2]
    assert reports[0]["sources"] != reports[1]["sources"] or not reports[0]["same_frames"]
    assert not reports[0]["same_frames"]  # the ranks trained on different samples ...
    for r in reports:  # ... yet hold bit-identical parameters that did change
        assert r["max_param_diff"] == 0.0 and r["moved"] > 1e-4
        assert r["dit_max_param_diff"] == 0.0 and r["dit_moved"] > 1e-4
    ckpt = tmp_path / "run" / "checkpoint-0000002"
    assert (ckpt / "geo_adapter" / "diffusion_pytorch_model.safetensors").is_file()
    assert (ckpt / "training_state.pt").is_file()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
