"""Stage-2 trainer on the tiny fixture checkpoint: DiT inputs equal the inference pipeline's,
flow-matching target and noising, loss, timestep stratification, overfitting, resume."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gen3r.models.transformer import Gen3RTransformer3DModel
from gen3r.pipeline import Gen3RPipeline
from gen3r.pipeline.tensors import randn
from gen3r.train.config import DataConfig, DitTrainConfig, OptimConfig, ProceduralDataConfig
from gen3r.train.dit_trainer import STREAMS, DitInputs, DitRandom, DitTrainer, flow_matching_loss, timestep_index_range
from gen3r.train.loop import list_checkpoints, step_generator
from tests._tiny import TINY_CHECKPOINT


@pytest.fixture(scope="module")
def pipe():
    return Gen3RPipeline.from_pretrained(TINY_CHECKPOINT)


def _config(out, **kw) -> DitTrainConfig:
    data = DataConfig(num_frames=kw.pop("num_frames", 5), height=112, width=112, batch_size=1,
                      procedural=ProceduralDataConfig(num_scenes=2, render_frames=5, kind="indoor"))
    args = dict(output_dir=str(out), data=data, max_steps=2, grad_accum_steps=1, save_every=1,
                optim=OptimConfig(lr=1e-3, weight_decay=3e-2, eps=1e-10), log_every=1)
    args.update(kw)
    return DitTrainConfig(**args)


class _Captured(Exception):
    pass


def _pipeline_dit_inputs(pipe, **call) -> dict:
    """Keyword inputs of the pipeline's first transformer call (the call is aborted there)."""
    seen = {}

    def hook(_module, _args, kwargs):
        seen.update(kwargs)
        raise _Captured

    handle = pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with pytest.raises(_Captured):
            pipe(**call)
    finally:
        handle.remove()
    return seen


@pytest.fixture(scope="module")
def trainer_2view(pipe, tmp_path_factory):
    cfg = _config(tmp_path_factory.mktemp("dit"), condition_probs={"2view": 1.0}, prompt_dropout=0.0,
                  camera_dropout=0.0, max_steps=50)
    return DitTrainer(cfg, pipeline=copy.deepcopy(pipe))


@pytest.fixture(scope="module")
def batch_and_inputs(trainer_2view):
    batch = trainer_2view.next_batches()[0]
    return batch, trainer_2view.build_inputs(batch, trainer_2view.random(0))


def test_inputs_equal_the_inference_pipeline(pipe, trainer_2view, batch_and_inputs):
    batch, inputs = batch_and_inputs
    frames = batch["frames"]
    assert inputs.modes == ["2view"] and inputs.prompts == batch["caption"] and not inputs.camera_dropped
    assert inputs.hidden_states.shape == (1, 36, 2, 14, 28)
    seed_of = {name: step_generator(trainer_2view.config.seed, 0, 0, s).initial_seed() for name, s in STREAMS.items()}
    seen = _pipeline_dit_inputs(
        copy.deepcopy(pipe), images=frames[:, [0, -1]], task="2view", cameras=batch["cameras"][0],
        prompt=batch["caption"][0], num_frames=5, height=112, width=112, num_inference_steps=1,
        guidance_scale=1.0, latents=torch.zeros(1, 16, 2, 14, 28),
        generator=torch.Generator().manual_seed(seed_of["condition"]))
    # [noisy 16 | condition latent 16 | mask 4]: everything but the noisy latent is the pipeline's
    torch.testing.assert_close(inputs.hidden_states[:, 16:], seen["hidden_states"][:, 16:], rtol=0, atol=0)
    torch.testing.assert_close(inputs.camera, seen["camera"], rtol=0, atol=0)
    torch.testing.assert_close(inputs.encoder_hidden_states, seen["encoder_hidden_states"], rtol=0, atol=0)
    torch.testing.assert_close(inputs.encoder_hidden_states_image, seen["encoder_hidden_states_image"],
                               rtol=0, atol=0)
    cond, mask = inputs.hidden_states[:, 16:32], inputs.hidden_states[:, 32:]
    assert cond[..., 14:].abs().max() == 0 and cond[..., :14].abs().max() > 0  # geometry half zeros
    assert mask[..., 14:].abs().max() == 0
    assert mask[0, :, 0, :, :14].eq(1).all() and mask[0, :3, 1].eq(0).all() and mask[0, 3, 1, :, :14].eq(1).all()


def test_noising_and_velocity_target(trainer_2view, batch_and_inputs):
    _, inputs = batch_and_inputs
    sigma = inputs.sigmas.view(-1, 1, 1, 1, 1)
    x_t, v = inputs.hidden_states[:, :16].float(), inputs.target
    eps = x_t + (1 - sigma) * v  # x_t = (1 - s) Z0 + s eps and v = eps - Z0
    expected = randn(v.shape, step_generator(trainer_2view.config.seed, 0, 0, STREAMS["noise"]))
    torch.testing.assert_close(eps, expected, rtol=1e-5, atol=1e-5)
    z0 = x_t - sigma * v
    assert z0[..., 14:].abs().mean() > 0.1  # geometry target present on the right half
    # sigma on the shifted training grid (shift 2): sigma = 2 s / (1 + s), s = k / 1000; t = 1000 sigma
    s = inputs.sigmas.double()
    k = (1000 * s / (2 - s)).round()
    torch.testing.assert_close(s, 2 * (k / 1000) / (1 + k / 1000), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(inputs.timestep.double(), 1000 * s, rtol=1e-5, atol=1e-3)


def test_overfits_a_fixed_batch(trainer_2view, batch_and_inputs):
    _, inputs = batch_and_inputs
    assert isinstance(inputs, DitInputs) and trainer_2view.model.is_gradient_checkpointing
    losses = [trainer_2view.train_step([inputs])["loss"] for _ in range(10)]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.85 * losses[0], losses
    assert all(p.grad is not None for p in trainer_2view.model.parameters() if p.requires_grad)


def test_condition_modes_dropouts_and_timestep_strata(pipe, tmp_path):
    trainer = DitTrainer(_config(tmp_path, prompt_dropout=0.5, camera_dropout=1.0), pipeline=copy.deepcopy(pipe))
    modes = trainer._draw_modes(3000, torch.Generator().manual_seed(0))
    shares = [modes.count(m) / len(modes) for m in ("1view", "allview", "2view")]
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)
    gens = DitRandom(*(torch.Generator().manual_seed(i) for i in range(4)))
    inputs = trainer.build_inputs(trainer.next_batches()[0], gens)
    assert inputs.camera_dropped and inputs.camera is None  # the transformer feeds all-zero rays itself
    assert timestep_index_range(0, 1) == (0, 1000)
    assert [timestep_index_range(r, 2) for r in range(2)] == [(0, 500), (500, 1000)]
    assert [timestep_index_range(r, 8) for r in (0, 3, 7)] == [(0, 125), (375, 500), (875, 1000)]
    assert timestep_index_range(2, 3) == (0, 1000)  # 1000 % 3 != 0: one group


def test_flow_matching_loss_excludes_outliers():
    pred = torch.tensor([0.0, 1.0, 100.0, -3.0])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert flow_matching_loss(pred, target).item() == pytest.approx((1 + 0 + 0 + 9) / 4)
    assert flow_matching_loss(pred, target, threshold=200).item() == pytest.approx((1 + 10000 + 9) / 4)


def test_resume_reproduces_uninterrupted_training(pipe, tmp_path):
    full = DitTrainer(_config(tmp_path, num_frames=1), pipeline=copy.deepcopy(pipe))
    result = full.train()
    resumed = DitTrainer(_config(tmp_path, num_frames=1), pipeline=copy.deepcopy(pipe))
    assert resumed.resume() == 2  # newest checkpoint
    resumed = DitTrainer(_config(tmp_path, num_frames=1), pipeline=copy.deepcopy(pipe))
    assert resumed.resume(list_checkpoints(tmp_path)[0]) == 1
    again = resumed.train()
    assert again.history[0]["loss"] == pytest.approx(result.history[1]["loss"], rel=1e-5)
    torch.testing.assert_close(resumed.model.state_dict(), full.model.state_dict(), rtol=1e-5, atol=1e-7)
    saved = Gen3RTransformer3DModel.from_pretrained(list_checkpoints(tmp_path)[-1] / "transformer")
    torch.testing.assert_close(saved.state_dict(), full.model.state_dict())


def test_gradient_checkpointing_gives_the_same_gradients(trainer_2view, batch_and_inputs):
    _, inputs = batch_and_inputs
    grads = []
    for checkpointing in (True, False):
        model = copy.deepcopy(trainer_2view.model)
        if not checkpointing:
            model.disable_gradient_checkpointing()
        assert model.is_gradient_checkpointing == checkpointing
        pred = model(hidden_states=inputs.hidden_states, timestep=inputs.timestep,
                     encoder_hidden_states=inputs.encoder_hidden_states,
                     encoder_hidden_states_image=inputs.encoder_hidden_states_image, camera=inputs.camera,
                     return_dict=False)[0]
        flow_matching_loss(pred, inputs.target).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
def test_bf16_autocast_step_keeps_float32_weights(pipe, tmp_path):
    trainer = DitTrainer(_config(tmp_path, num_frames=1, mixed_precision="bf16"),
                         pipeline=copy.deepcopy(pipe).to(torch.bfloat16))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.train_step(trainer.next_batches())
    assert np.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_adapter_path_replaces_the_checkpoint_adapter(pipe, tmp_path):
    from gen3r.errors import Gen3RError

    adapter = copy.deepcopy(pipe.geo_adapter)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.01)
    adapter.save_pretrained(tmp_path / "geo_adapter")
    trainer = DitTrainer(_config(tmp_path / "run", adapter_path=str(tmp_path / "geo_adapter")),
                         pipeline=copy.deepcopy(pipe))
    torch.testing.assert_close(trainer.pipe.geo_adapter.state_dict(), adapter.state_dict(), rtol=0, atol=0)
    assert not any(p.requires_grad for p in trainer.pipe.geo_adapter.parameters())
    (tmp_path / "empty").mkdir()
    with pytest.raises(Gen3RError, match="holds no trained geo_adapter"):
        DitTrainer(_config(tmp_path / "run", adapter_path=str(tmp_path / "empty")), pipeline=copy.deepcopy(pipe))
