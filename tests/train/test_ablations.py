"""The mini model's ablations (issue 14): the appearance-only "2-stage" DiT and the adapter without
the KL alignment, as presets and architectures of the existing trainers and pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gen3r.cli.main import main as gen3r
from gen3r.errors import Gen3RError
from gen3r.train.presets import PRESETS, preset
from tests._tiny import small_scene_cache


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory):
    return small_scene_cache(tmp_path_factory.mktemp("cache") / "train")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    assert gen3r(["assemble", str(root / "joint"), "--arch", "smoke"]) == 0
    assert gen3r(["assemble", str(root / "2stage"), "--base", str(root / "joint"), "--fresh", "dit",
                  "--arch", "smoke-2stage"]) == 0
    return root


def _differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set(a) | set(b)
    out = set()
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= _differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.add(prefix + k)
    return out


@pytest.mark.parametrize("stage, name, reference, allowed", [
    ("adapter", "mini-nokl", "mini",
     {"output_dir", "loss_weights.recon", "loss_weights.similarity", "loss_weights.kl"}),
    ("adapter", "mini-nokl-refine", "mini-refine", {"output_dir", "checkpoint", "loss_weights.recon",
                                                    "loss_weights.similarity", "loss_weights.kl"}),
    ("dit", "mini-nokl", "mini", {"output_dir", "adapter_path"}),
    ("dit", "mini-nokl-refine", "mini-refine", {"output_dir", "adapter_path", "checkpoint"}),
    ("dit", "mini-2stage", "mini", {"output_dir", "checkpoint", "adapter_path"}),  # appearance only: no adapter
    ("dit", "mini-2stage-refine", "mini-refine", {"output_dir", "checkpoint", "adapter_path"}),
])
def test_ablation_presets_have_the_mini_budget(stage, name, reference, allowed):
    """Same data, steps, sizes, optimiser and seed as the stage they replace: only where the run
    lives, which models it starts from and (w/o KL) the loss weights differ."""
    import dataclasses

    from gen3r.train.config import AdapterTrainConfig, DitTrainConfig, config_from_dict

    cls = AdapterTrainConfig if stage == "adapter" else DitTrainConfig
    resolved = [dataclasses.asdict(config_from_dict(cls, preset(stage, n))) for n in (name, reference)]
    changed = _differences(*resolved)
    assert changed <= allowed and "output_dir" in changed
    if stage == "adapter":
        assert resolved[0]["loss_weights"] == {"recon": 0.5, "similarity": 0.1, "kl": 0.0}
        assert resolved[1]["loss_weights"]["kl"] > 0
    assert preset(stage, name)["output_dir"].startswith("runs/ablations/")


def test_appearance_only_needs_plain_rope():
    from gen3r.models.transformer import Gen3RTransformer3DModel
    from gen3r.train.presets import SMOKE_ARCH

    with pytest.raises(Gen3RError, match="shared_width_rope=False"):
        Gen3RTransformer3DModel(**{**SMOKE_ARCH["transformer"], "appearance_only": True})


def test_pack_plucker_one_half():
    from gen3r.cameras import pack_plucker_for_dit

    p = torch.randn(2, 5, 6, 16, 24)
    one, two = pack_plucker_for_dit(p, halves=1), pack_plucker_for_dit(p)
    assert one.shape == (2, 24, 2, 16, 24) and two.shape == (2, 24, 2, 16, 48)
    torch.testing.assert_close(two[..., :24], one)
    torch.testing.assert_close(two[..., 24:], one)


def test_two_stage_pipeline_generates_rgb_then_reconstructs_it(checkpoints):
    from gen3r.pipeline import Gen3RPipeline

    joint = Gen3RPipeline.from_pretrained(checkpoints / "joint")
    pipe = Gen3RPipeline.from_pretrained(checkpoints / "2stage")
    assert joint.latent_halves == 2 and pipe.latent_halves == 1
    # the 2-stage checkpoint keeps the base models of the joint one
    for a, b in zip(joint.vggt.state_dict().values(), pipe.vggt.state_dict().values()):
        assert torch.equal(a, b)
    seen = []
    out = pipe(torch.rand(1, 1, 3, 112, 112), num_frames=5, num_inference_steps=2, cameras="orbit_left",
               generator=torch.Generator().manual_seed(0),
               callback_on_step_end=lambda p, i, t, d: seen.append(tuple(d["latents"].shape)))
    assert seen == [(1, 16, 2, 14, 14)] * 2 and out.latents.shape == (1, 16, 2, 14, 14)
    assert out.rgb.shape == (1, 5, 112, 112, 3) and out.depth.shape == (1, 5, 112, 112)
    assert out.extrinsics.shape == (1, 5, 3, 4) and out.world_points.shape == (1, 5, 112, 112, 3)
    # the geometry is VGGT's reconstruction of the generated frames
    again = pipe.reconstruct_geometry(out.rgb.permute(0, 1, 4, 2, 3))
    torch.testing.assert_close(out.depth, again["depth"].cpu(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.extrinsics, again["extrinsics"].cpu(), atol=1e-5, rtol=1e-5)
    # a joint model on the same input returns latents with both halves
    out2 = joint(torch.rand(1, 1, 3, 112, 112), num_frames=5, num_inference_steps=1,
                 generator=torch.Generator().manual_seed(0))
    assert out2.latents.shape == (1, 16, 2, 14, 28)


def test_two_stage_dit_latent_cache_has_no_geometry_and_matches_uncached(checkpoints, scene_cache, tmp_path):
    from gen3r.train.config import DitTrainConfig, config_from_dict
    from gen3r.train.dit_trainer import DitTrainer
    from gen3r.train.latent_cache import LatentCache
    from gen3r.train.presets import merge

    data = merge(preset("dit", "smoke"), {"checkpoint": str(checkpoints / "2stage"), "output_dir": str(tmp_path / "d"),
                                          "latent_cache": True, "data": {"cache": str(scene_cache)}})
    cached = DitTrainer(config_from_dict(DitTrainConfig, data))
    latents = LatentCache(tmp_path / "d" / "latents")
    assert latents.names == ("appearance", "cond_1view", "cond_2view")
    assert not list((tmp_path / "d" / "latents").rglob("geometry_*.npy"))
    with pytest.raises(Gen3RError, match="not in the latent cache"):
        latents.get([0], "geometry")
    data["latent_cache"] = False
    plain = DitTrainer(config_from_dict(DitTrainConfig, data))
    batch = cached.next_batches()[0]
    for step in range(3):
        a, b = cached.prepare(batch, step), plain.prepare(batch, step)
        assert a.hidden_states.shape[-1] == 14 and a.target.shape[-1] == 14  # W/8: no geometry half
        if a.camera is not None:
            assert a.camera.shape[-1] == 112
        torch.testing.assert_close(a.hidden_states, b.hidden_states, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.target, b.target, atol=1e-5, rtol=1e-5)


def test_two_stage_dit_trains_and_assembles(checkpoints, tmp_path):
    out = tmp_path / "dit"
    assert gen3r(["train", "dit", "--preset", "smoke", "--checkpoint", str(checkpoints / "2stage"),
                  "--out", str(out)]) == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(np.isfinite(r["loss"]) for r in records)
    assert gen3r(["assemble", str(tmp_path / "ck"), "--base", str(checkpoints / "2stage"), "--dit", str(out)]) == 0
    config = json.loads((tmp_path / "ck" / "transformer" / "config.json").read_text())
    assert config["appearance_only"] is True and config["shared_width_rope"] is False


def test_no_kl_adapter_loss_has_no_kl_term(checkpoints, tmp_path):
    out = tmp_path / "adapter"
    cfg = tmp_path / "nokl.json"
    cfg.write_text(json.dumps({"loss_weights": PRESETS["adapter"]["mini-nokl"]["loss_weights"]}))
    assert gen3r(["train", "adapter", "--preset", "smoke", "--config", str(cfg), "--checkpoint",
                  str(checkpoints / "joint"), "--out", str(out)]) == 0
    for r in (json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()):
        assert r["kl"] > 0
        assert r["loss"] == pytest.approx(0.5 * r["recon"] + 0.1 * r["similarity"], rel=1e-5)


def test_assemble_refuses_a_stage_both_fresh_and_trained(checkpoints, tmp_path):
    from gen3r.train.mini import assemble

    with pytest.raises(Gen3RError, match="both trained and fresh"):
        assemble(tmp_path / "x", base=checkpoints / "joint", trained={"dit": tmp_path}, fresh=("dit",))
