"""Gen3R joint DiT: official parity, key mapping, RoPE sharing, camera adapter, loading, dtypes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from gen3r.cameras.plucker import pack_plucker_for_dit, plucker_rays
from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models.transformer import (
    TEXT_TOKENS,
    Gen3RTransformer3DModel,
    config_from_official,
    from_official_state_dict,
    to_official_state_dict,
)
from tests._tiny import (
    TINY_CHECKPOINT,
    WEIGHTS,
    official_manifest,
    rel_err,
    tensor_stats,
    tiny_arch,
    write_sharded_component,
)

TRANSFORMER_DIR = TINY_CHECKPOINT / "transformer"
ARCH = tiny_arch("transformer")
MANIFEST = official_manifest("transformer")
H = W = 112  # fixture resolution (pixels); latent joint grid 3 x 14 x 28


def _pad(context: torch.Tensor) -> torch.Tensor:
    return torch.cat([context, context.new_zeros(TEXT_TOKENS - context.shape[0], context.shape[1])])


def _dit0_inputs(tiny_task: Callable[[str], Mapping[str, torch.Tensor]],
                 task: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Inputs of the first official DiT call of ``task`` (CFG batch [uncond, cond]) and its output."""
    t = tiny_task(task)
    latent = torch.cat([t["initial_latents"]] * 2)
    condition = torch.cat([t["control_latents"]] * 2)
    if task == "1view":
        plucker = plucker_rays(t["c2ws"][0], t["Ks"][0], H, W)[None]  # (1, 9, 6, H, W)
        camera = pack_plucker_for_dit(plucker)
    else:  # 'free' cameras / allview: the official pipeline feeds zeros
        camera = torch.zeros(1, 24, 3, H, 2 * W)
    inputs = {
        "hidden_states": torch.cat([latent, condition], dim=1),
        "timestep": t["dit0_t"],
        "encoder_hidden_states": torch.stack([_pad(t["dit0_context_neg"]), _pad(t["dit0_context_pos"])]),
        "encoder_hidden_states_image": torch.cat([t["clip_context"]] * 2),
        "camera": torch.cat([camera] * 2),
    }
    return inputs, t["dit0_out"]


@pytest.fixture(scope="module")
def official_model() -> Gen3RTransformer3DModel:
    return Gen3RTransformer3DModel.load_official(TRANSFORMER_DIR, arch=ARCH)


def _tiny(**overrides) -> Gen3RTransformer3DModel:
    config = config_from_official(json.loads((TRANSFORMER_DIR / "config.json").read_text()), ARCH)
    torch.manual_seed(0)
    return Gen3RTransformer3DModel(**{**config, **overrides}).eval()


# ------------------------------------------------------------------ parity with the official code

def test_plucker_map_matches_official_fixture(tiny_task):
    t = tiny_task("1view")
    plucker = plucker_rays(t["c2ws"][0], t["Ks"][0], H, W)[None]
    assert list(plucker.shape) == t["plucker_embeddings__shape"].tolist()
    torch.testing.assert_close(plucker[..., ::4, ::4], t["plucker_embeddings__s4"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tensor_stats(plucker), t["plucker_embeddings__stats"], rtol=1e-5, atol=1e-5)
    packed = pack_plucker_for_dit(plucker)
    assert packed.shape == (1, 24, 3, H, 2 * W)
    # channel 4*c + k of latent frame j holds ray channel c of pixel frame 4(j-1)+1+k (frame 0 for j=0)
    torch.testing.assert_close(packed[0, 4 * 5 + 2, 2, :, :W], plucker[0, 4 * 1 + 1 + 2, 5])
    torch.testing.assert_close(packed[0, 4 * 3 + 1, 0, :, W:], plucker[0, 0, 3])


@pytest.mark.parametrize("task", ["1view", "2view", "allview"])
def test_first_dit_call_matches_official(official_model, task, tiny_task):
    inputs, ref = _dit0_inputs(tiny_task, task)
    with torch.no_grad():
        out = official_model(**inputs).sample
    assert out.shape == ref.shape == (2, 16, 3, 14, 28)
    assert rel_err(out, ref) <= 1e-4
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_camera_changes_the_output_and_none_means_zero_rays(official_model, tiny_task):
    inputs, ref = _dit0_inputs(tiny_task, "1view")
    zeros = {**inputs, "camera": torch.zeros_like(inputs["camera"])}
    with torch.no_grad():
        with_zeros = official_model(**zeros).sample
        with_none = official_model(**{**inputs, "camera": None}).sample
    torch.testing.assert_close(with_none, with_zeros, rtol=0, atol=0)
    assert rel_err(with_zeros, ref) > 1e-2  # the 1view rays really matter


def test_camera_adapter_runs_for_zero_rays(official_model):
    """Zero rays still add bias + border pattern, so the adapter cannot be skipped."""
    camera = torch.zeros(1, 24, 3, H, 2 * W)
    with torch.no_grad():
        features = official_model.control_adapter(camera)
    assert features.shape == (1, 32, 3, 7, 14)
    assert features.abs().max() > 0
    assert not torch.allclose(features[..., 0, 0], features[..., 3, 3])  # zero padding at borders


def test_fp32_residual_is_exact_in_float32(official_model, tiny_task):
    inputs, ref = _dit0_inputs(tiny_task, "2view")
    plain = Gen3RTransformer3DModel.from_config({**official_model.config, "fp32_residual": False}).eval()
    plain.load_state_dict(official_model.state_dict())
    with torch.no_grad():
        out = plain(**inputs).sample
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_bf16_keeps_float32_residual_and_fp32_modules(tiny_task):
    model = Gen3RTransformer3DModel.load_official(TRANSFORMER_DIR, arch=ARCH, torch_dtype=torch.bfloat16)
    dtypes = dict((name, p.dtype) for name, p in model.named_parameters())
    for name in ("condition_embedder.time_embedder.linear_1.weight", "condition_embedder.time_proj.weight",
                 "scale_shift_table", "blocks.0.scale_shift_table", "blocks.1.norm2.weight"):
        assert dtypes[name] == torch.float32, name
    for name in ("blocks.0.attn1.to_q.weight", "patch_embedding.weight", "control_adapter.conv.weight",
                 "proj_out.weight", "condition_embedder.text_embedder.linear_1.weight"):
        assert dtypes[name] == torch.bfloat16, name
    residual_dtypes = []
    model.blocks[0].register_forward_hook(lambda module, args, out: residual_dtypes.append(out.dtype))
    inputs, ref = _dit0_inputs(tiny_task, "2view")
    inputs = {k: v.bfloat16() if k != "timestep" else v for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**inputs).sample
    assert residual_dtypes == [torch.float32]
    assert out.dtype == torch.bfloat16
    assert ((out.float() - ref).norm() / ref.norm()).item() < 0.02  # bf16 rounding only


# ------------------------------------------------------------------ RoPE shared by the two halves

def test_shared_width_rope_gives_identical_halves_for_identical_inputs():
    torch.manual_seed(1)
    half = torch.randn(1, 36, 2, 4, 6)
    hidden = torch.cat([half, half], dim=-1)
    inputs = {"hidden_states": hidden, "timestep": torch.tensor([500.0]),
              "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, 32),
              "encoder_hidden_states_image": torch.randn(1, 257, 32)}
    shared = _tiny(camera_in_channels=0, shared_width_rope=True)
    plain = _tiny(camera_in_channels=0, shared_width_rope=False)
    plain.load_state_dict(shared.state_dict())
    with torch.no_grad():
        out_shared = shared(**inputs).sample
        out_plain = plain(**inputs).sample
    torch.testing.assert_close(out_shared[..., :6], out_shared[..., 6:], rtol=0, atol=1e-6)
    assert (out_plain[..., :6] - out_plain[..., 6:]).abs().max() > 1e-3


def test_shared_rope_tables_repeat_the_left_half():
    rope = _tiny().rope
    cos, sin = rope(torch.zeros(1, 36, 2, 4, 12))  # token grid 2 x 2 x 6
    grid = cos.reshape(2, 2, 6, -1)
    torch.testing.assert_close(grid[:, :, :3], grid[:, :, 3:], rtol=0, atol=0)
    plain_cos, _ = _tiny(shared_width_rope=False).rope(torch.zeros(1, 36, 2, 4, 6))
    torch.testing.assert_close(grid[:, :, :3].reshape(1, -1, 1, cos.shape[-1]), plain_cos, rtol=0, atol=0)
    assert sin.shape == cos.shape == (1, 24, 1, 16)


@pytest.fixture(scope="module")
def ropes():
    return _tiny().rope, _tiny(shared_width_rope=False).rope


@settings(max_examples=25, deadline=None)
@given(frames=st.integers(1, 4), height=st.integers(1, 5), half_width=st.integers(1, 6))
def test_shared_rope_property(ropes, frames, height, half_width):
    """For any grid, token (t, i, j) and (t, i, w/2 + j) share a rotation, equal to the plain one of (t, i, j)."""
    shared, plain = ropes
    cos, sin = shared(torch.zeros(1, 1, frames, 2 * height, 4 * half_width))
    plain_cos, plain_sin = plain(torch.zeros(1, 1, frames, 2 * height, 2 * half_width))
    for table, reference in ((cos, plain_cos), (sin, plain_sin)):
        grid = table.reshape(frames, height, 2 * half_width, -1)
        reference = reference.reshape(frames, height, half_width, -1)
        torch.testing.assert_close(grid[:, :, :half_width], reference, rtol=0, atol=0)
        torch.testing.assert_close(grid[:, :, half_width:], reference, rtol=0, atol=0)


# ------------------------------------------------------------------ key mapping

def test_key_table_inverts_at_full_size():
    """(The full-size key set itself: tests/models/test_loading_contract.py.)"""
    with torch.device("meta"):
        model = Gen3RTransformer3DModel(**config_from_official(MANIFEST["config"]))
    ours = model.state_dict()
    assert from_official_state_dict(to_official_state_dict(ours)).keys() == ours.keys()


def test_key_table_agrees_with_diffusers_converter():
    official = load_file(str(TRANSFORMER_DIR / WEIGHTS))
    theirs = convert_wan_transformer_to_diffusers(dict(official))
    ours = from_official_state_dict(official)
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert to_official_state_dict(ours).keys() == official.keys()


def test_official_config_mapping():
    config = config_from_official(MANIFEST["config"])
    assert config["in_channels"] == 36 and config["num_attention_heads"] == 12
    assert config["attention_head_dim"] == 128 and config["image_dim"] == 1280
    assert config["added_kv_proj_dim"] == 1536 and config["camera_in_channels"] == 24
    no_camera = config_from_official({**MANIFEST["config"], "add_control_adapter": False})
    assert no_camera["camera_in_channels"] == 0
    t2v = config_from_official({**MANIFEST["config"], "model_type": "t2v"})
    assert t2v["image_dim"] is None and t2v["added_kv_proj_dim"] is None
    for bad in ({"text_len": 256}, {"qk_norm": False}, {"model_type": "ti2v"}, {"add_ref_conv": True},
                {"window_size": [8, 8]}):
        with pytest.raises(CheckpointError):
            config_from_official({**MANIFEST["config"], **bad})


# ------------------------------------------------------------------ strict loading

def test_loading_needs_config_and_weights(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        Gen3RTransformer3DModel.load_official(tmp_path, arch=ARCH)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Gen3RTransformer3DModel.load_official(tmp_path, arch=ARCH)
    (tmp_path / "config.json").write_text((TRANSFORMER_DIR / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no weights"):
        Gen3RTransformer3DModel.load_official(tmp_path, arch=ARCH)


def test_wrong_clip_width_is_reported():
    with pytest.raises(CheckpointError, match="image_embedder"):
        Gen3RTransformer3DModel.load_official(TRANSFORMER_DIR)  # default 1280 != tiny 32


def test_sharded_weights_load(tmp_path, official_model):
    shards = ["part-00001.safetensors", "part-00002.safetensors"]
    folder = write_sharded_component(tmp_path, TRANSFORMER_DIR, WEIGHTS, shards)
    model = Gen3RTransformer3DModel.load_official(folder, arch=ARCH)
    reference = official_model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


def test_save_pretrained_round_trip(tmp_path, official_model, tiny_task):
    official_model.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["shared_width_rope"] is True and saved["camera_in_channels"] == 24
    assert saved["num_layers"] == official_model.config.num_layers == len(official_model.blocks) == 2
    reloaded = Gen3RTransformer3DModel.from_pretrained(tmp_path / "ours").eval()
    assert isinstance(reloaded.rope.freqs_cos, torch.Tensor) and not reloaded.rope.freqs_cos.is_meta
    inputs, _ = _dit0_inputs(tiny_task, "1view")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).sample, official_model(**inputs).sample, rtol=0, atol=0)


# ------------------------------------------------------------------ input validation

@pytest.mark.parametrize("field, value, message", [
    ("encoder_hidden_states", torch.zeros(2, 511, 32), "zero-pad the T5 output to 512"),
    ("hidden_states", torch.zeros(2, 32, 3, 14, 28), r"\(B, 36, f, h, 2w\)"),
    ("hidden_states", torch.zeros(2, 36, 3, 14, 30), "even number of tokens"),
    ("hidden_states", torch.zeros(2, 36, 3, 15, 28), "not divisible by the patch size"),
    ("camera", torch.zeros(2, 24, 3, 112, 112), "camera must be"),
    ("encoder_hidden_states_image", None, "CLIP"),
    ("timestep", torch.zeros(3), "timestep"),
])
def test_bad_inputs_raise(official_model, field, value, message, tiny_task):
    inputs, _ = _dit0_inputs(tiny_task, "2view")
    inputs[field] = value
    if field == "hidden_states" and value.shape[-1] != 28:
        inputs["camera"] = None
    with pytest.raises(Gen3RError, match=message):
        official_model(**inputs)


def test_camera_without_adapter_is_refused():
    model = _tiny(camera_in_channels=0)
    with pytest.raises(Gen3RError, match="no camera adapter"):
        model(torch.zeros(1, 36, 1, 2, 4), torch.tensor([1.0]), torch.zeros(1, TEXT_TOKENS, 32),
              torch.zeros(1, 257, 32), camera=torch.zeros(1, 24, 1, 16, 32))


# ------------------------------------------------------------------ memory features

def test_group_offloading_matches(official_model, tiny_task):
    model = Gen3RTransformer3DModel.load_official(TRANSFORMER_DIR, arch=ARCH)
    model.enable_group_offload(onload_device=torch.device("cpu"), offload_type="block_level",
                               num_blocks_per_group=1)
    inputs, _ = _dit0_inputs(tiny_task, "1view")
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).sample, official_model(**inputs).sample, rtol=0, atol=0)


def test_gradient_checkpointing_matches(tiny_task):
    inputs, _ = _dit0_inputs(tiny_task, "1view")
    grads = []
    for checkpointing in (False, True):
        model = Gen3RTransformer3DModel.load_official(TRANSFORMER_DIR, arch=ARCH).train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(**inputs).sample.square().mean().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=1e-5, atol=1e-7)
