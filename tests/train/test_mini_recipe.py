"""The mini recipe's machinery: scene cache, base-model trainers, presets, assembly, DiT latent cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gen3r.cli.main import main as gen3r
from gen3r.data.cache import SceneCache, render_seed, write_cache, write_eval_layout
from gen3r.errors import Gen3RError
from tests._tiny import small_scene_cache

SETTINGS = {"num_frames": 5, "height": 112, "width": 112, "kind": "random", "trajectory": "mixed", "fov_deg": 60.0}


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory):
    return small_scene_cache(tmp_path_factory.mktemp("cache") / "train")


@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "smoke"
    assert gen3r(["assemble", str(out), "--arch", "smoke"]) == 0
    return out


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------ scene cache

def test_cache_holds_the_rendered_scenes(scene_cache):
    cache = SceneCache(scene_cache)
    assert len(cache) == 3 and cache.seeds == [0, 1, 2]
    assert sorted(p.name for p in scene_cache.iterdir()) == ["cache.json", "shard-0000000", "shard-0000002"]
    scene = render_seed(1, SETTINGS)
    got = cache[1]
    assert got.kind == scene.kind and got.trajectory == scene.trajectory and got.captions == scene.captions
    np.testing.assert_array_equal(got.rgb, np.round(scene.rgb * 255).astype(np.uint8))
    np.testing.assert_allclose(got.depth, np.where(scene.valid, scene.depth, 0), rtol=1e-3)
    np.testing.assert_array_equal(got.extrinsics, scene.extrinsics)


def test_cache_resumes_and_refuses_other_settings(scene_cache, tmp_path):
    write_cache(scene_cache, range(3), num_frames=5, shard_size=2)  # nothing left to render
    with pytest.raises(Gen3RError, match="other settings"):
        write_cache(scene_cache, range(3), num_frames=9, shard_size=2)
    with pytest.raises(Gen3RError, match="mix the training range"):
        write_cache(tmp_path / "c", [5, 1_000_000])
    with pytest.raises(Gen3RError, match="seeds must be in"):
        write_cache(tmp_path / "c", [10**9])
    with pytest.raises(Gen3RError, match="not a scene cache"):
        SceneCache(tmp_path)


def test_cli_cache_bad_range_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        gen3r(["cache", "x", "--seeds", "5:2"])
    assert exc.value.code == 2 and "START < END" in capsys.readouterr().err


def test_eval_layout_is_read_by_gen3r_eval(tmp_path):
    from gen3r.eval.datasets import OfficialLayoutReader

    out = write_eval_layout(tmp_path / "dev", [1_000_000, 1_000_001], num_frames=5)
    reader = OfficialLayoutReader(out)
    assert len(reader.names()) == 2
    data = reader.load(reader.names()[1])
    scene = render_seed(1_000_001, SETTINGS)
    assert data.frames.shape == (5, 3, 112, 112) and data.depth is not None
    np.testing.assert_allclose(data.extrinsics, scene.extrinsics, atol=1e-5)
    np.testing.assert_allclose(data.depth, np.where(scene.valid, scene.depth, 0), rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------------- VGGT targets

def test_normalised_ground_truth_matches_the_renderer():
    from gen3r.train.vggt_trainer import depth_to_points, normalise_scene

    scene = render_seed(3, SETTINGS)
    cams = scene.cameras
    depth = torch.from_numpy(np.where(scene.valid, scene.depth, 0).astype(np.float32))
    points = depth_to_points(depth, cams)
    valid = torch.from_numpy(scene.valid)
    torch.testing.assert_close(points[valid], torch.from_numpy(scene.world_points)[valid], atol=2e-4, rtol=1e-4)
    pose, d, pts, ok, scale = normalise_scene(depth, cams)
    assert torch.equal(ok, valid)
    # first camera is the origin: its pose is the identity, its points are its camera-frame points
    torch.testing.assert_close(pose[0, :7], torch.tensor([0, 0, 0, 0, 0, 0, 1.0]), atol=1e-6, rtol=0)
    assert pts[valid].norm(dim=-1).mean() == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(d[..., 0], depth / scale)


def test_aleatoric_loss_analytic():
    from gen3r.train.losses import aleatoric_regression_loss

    target = torch.zeros(1, 1, 2, 2, 1)
    pred = torch.full_like(target, 0.5)
    conf = torch.full((1, 1, 2, 2), 2.0)
    valid = torch.tensor([[[[True, True], [True, False]]]])
    out = aleatoric_regression_loss(pred, target, conf, valid, alpha=0.2)
    assert out["regression"].item() == pytest.approx(2.0 * 0.5 - 0.2 * np.log(2.0))
    assert out["gradient"].item() == pytest.approx(0.0)  # a constant error has no gradient


def test_vae_loss_kl_is_zero_for_the_prior():
    from gen3r.train.losses import vae_training_loss

    x = torch.rand(1, 3, 5, 8, 8)
    out = vae_training_loss(x, x, torch.zeros(1, 16, 2, 1, 1), torch.zeros(1, 16, 2, 1, 1), kl_weight=1.0)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-7)
    out = vae_training_loss(x, x, torch.ones(1, 16, 2, 1, 1), torch.zeros(1, 16, 2, 1, 1), kl_weight=1.0)
    assert out["kl"].item() == pytest.approx(0.5 * 32)


# ----------------------------------------------------------------------------------- trainers

@pytest.mark.parametrize("stage", ["vggt", "vae"])
def test_base_model_smoke_preset_trains_and_resumes(stage, tmp_path):
    out = tmp_path / stage
    assert gen3r(["train", stage, "--preset", "smoke", "--out", str(out)]) == 0
    records = _records(out)
    assert [r["step"] for r in records] == [1, 2, 3]  # a record every step
    assert all(np.isfinite(r["loss"]) for r in records)
    assert gen3r(["train", stage, "--preset", "smoke", "--out", str(out), "--max-steps", "4", "--resume"]) == 0
    assert _records(out)[-1]["step"] == 4


def test_base_model_on_a_scene_cache(scene_cache, tmp_path):
    out = tmp_path / "vggt"
    assert gen3r(["train", "vggt", "--preset", "smoke", "--data-cache", str(scene_cache), "--out", str(out),
                  "--max-steps", "1"]) == 0
    assert _records(out)[0]["step"] == 1


def test_train_needs_preset_or_config(capsys):
    assert gen3r(["train", "vae"]) == 2
    assert "--preset" in capsys.readouterr().err
    assert gen3r(["train", "vae", "--preset", "nope"]) == 2
    assert "smoke, mini" in capsys.readouterr().err


def test_preset_plus_config_override(tmp_path):
    from gen3r.train.presets import merge, preset

    merged = merge(preset("vae", "mini"), {"optim": {"lr": 1e-3}, "model": {"base_dim": 8}})
    assert merged["optim"]["lr"] == 1e-3 and merged["optim"]["warmup_steps"] == 100
    assert merged["model"]["base_dim"] == 8 and merged["model"]["num_res_blocks"] == 1


# ------------------------------------------------------------------------------- assembled model

def test_assembled_checkpoint_loads_with_its_call_defaults(smoke_checkpoint):
    from gen3r.pipeline import Gen3RPipeline

    pipe = Gen3RPipeline.from_pretrained(smoke_checkpoint)
    assert pipe.call_defaults["num_frames"] == 17 and pipe.call_defaults["height"] == 112
    ids = pipe.tokenizer(["A small room with a red box"]).input_ids[0]
    assert pipe.tokenizer.unk_token_id not in ids and ids[-1] == pipe.tokenizer.eos_token_id
    out = pipe(torch.rand(1, 1, 3, 112, 112), num_frames=5, num_inference_steps=1,
               generator=torch.Generator().manual_seed(0))
    assert out.rgb.shape == (1, 5, 112, 112, 3) and out.info["guidance_scale"] == 3.0


def test_dit_latent_cache_gives_the_uncached_inputs(smoke_checkpoint, scene_cache, tmp_path):
    from gen3r.train.config import DitTrainConfig, config_from_dict
    from gen3r.train.dit_trainer import DitTrainer
    from gen3r.train.presets import merge, preset

    data = merge(preset("dit", "smoke"), {"checkpoint": str(smoke_checkpoint), "output_dir": str(tmp_path / "dit"),
                                          "latent_cache": True, "data": {"cache": str(scene_cache)}})
    cached = DitTrainer(config_from_dict(DitTrainConfig, data))
    assert len(list((tmp_path / "dit" / "latents").glob("shard-*"))) == 1
    data["latent_cache"] = False
    plain = DitTrainer(config_from_dict(DitTrainConfig, data))
    batch = cached.next_batches()[0]
    assert "scene" in batch
    for step in range(3):  # several draws of modes
        a, b = cached.prepare(batch, step), plain.prepare(batch, step)
        assert a.modes == b.modes
        torch.testing.assert_close(a.hidden_states, b.hidden_states, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.target, b.target, atol=1e-5, rtol=1e-5)
    with pytest.raises(Gen3RError, match="whole clips"):
        bad = merge(data, {"latent_cache": True, "data": {"num_frames": 1}})
        DitTrainer(config_from_dict(DitTrainConfig, bad))


def test_training_curves_png(tmp_path):
    from PIL import Image

    from gen3r.train.curves import plot_runs, read_metrics, smooth

    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps({"step": i, "loss": 1.0 / i, "lr": 1e-3}) for i in range(1, 30)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n{\"step\": 3")  # torn last line
    assert len(read_metrics(run)) == 29
    np.testing.assert_allclose(smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    png = plot_runs({"run": run}, tmp_path / "curves.png")
    assert Image.open(png).size[0] > 100


def test_stop_at_keeps_the_schedule(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    assert gen3r(["train", "vae", "--preset", "smoke", "--out", str(full)]) == 0
    assert gen3r(["train", "vae", "--preset", "smoke", "--out", str(split), "--stop-at", "2"]) == 0
    assert [r["step"] for r in _records(split)] == [1, 2]
    assert gen3r(["train", "vae", "--preset", "smoke", "--out", str(split), "--resume"]) == 0
    assert [r["lr"] for r in _records(split)] == [r["lr"] for r in _records(full)]


def test_assemble_takes_trained_components(smoke_checkpoint, tmp_path):
    from gen3r.pipeline import Gen3RPipeline
    from gen3r.train.mini import load_trained

    run = tmp_path / "vggt"
    assert gen3r(["train", "vggt", "--preset", "smoke", "--out", str(run), "--max-steps", "1"]) == 0
    out = tmp_path / "assembled"
    assert gen3r(["assemble", str(out), "--base", str(smoke_checkpoint), "--vggt", str(run), "--fp16"]) == 0
    pipe = Gen3RPipeline.from_pretrained(out, torch_dtype=torch.float32)
    trained = load_trained("vggt", run)
    for (name, a), b in zip(pipe.vggt.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(a, b.half().float(), msg=name)
    base = Gen3RPipeline.from_pretrained(smoke_checkpoint)
    torch.testing.assert_close(pipe.transformer.proj_out.weight, base.transformer.proj_out.weight.half().float())
    assert pipe.call_defaults == base.call_defaults
    with pytest.raises(Gen3RError, match="needs --cache"):
        from gen3r.train.mini import assemble

        assemble(tmp_path / "x", base=smoke_checkpoint, trained={"vae": run})


@pytest.mark.parametrize("stage,component", [("vggt", "vggt"), ("vae", "wan_vae")])
def test_base_model_run_starts_from_trained_weights(stage, component, tmp_path, capsys):
    from gen3r.train.mini import load_trained

    first = tmp_path / "first"
    assert gen3r(["train", stage, "--preset", "smoke", "--out", str(first), "--max-steps", "1"]) == 0
    config = tmp_path / "next.json"
    config.write_text(json.dumps({"init": str(first), "optim": {"lr": 1e-20, "weight_decay": 0.0}}))
    second = tmp_path / "second"
    assert gen3r(["train", stage, "--preset", "smoke", "--config", str(config), "--out", str(second),
                  "--max-steps", "1"]) == 0
    assert _records(second)[0]["step"] == 1  # a new run: its own step count and schedule
    # lr ~0: the second run still holds the first run's trained weights (not the seeded random init)
    before, after = load_trained(component, first), load_trained(component, second)
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=name)
    capsys.readouterr()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"init": str(first), "model": {"embed_dim" if stage == "vggt" else "base_dim": 32}}))
    assert gen3r(["train", stage, "--preset", "smoke", "--config", str(other), "--out", str(tmp_path / "bad"),
                  "--max-steps", "1"]) == 2
    assert "architecture must match" in capsys.readouterr().err
    other.write_text(json.dumps({"init": str(tmp_path / "nothing")}))
    assert gen3r(["train", stage, "--preset", "smoke", "--config", str(other), "--out", str(tmp_path / "bad"),
                  "--max-steps", "1"]) == 2
    assert f"holds no trained {component}" in capsys.readouterr().err
