"""CLIP vision tower (transformers CLIPVisionModel) loaded from the official open-clip layout."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import CLIPVisionModel

from gen3r.errors import Gen3RError
from gen3r.models.image_encoder import (
    CLIP_MEAN,
    CLIP_STD,
    DROPPED_KEYS,
    DROPPED_PREFIXES,
    clip_vision_config,
    encode_image,
    from_official_state_dict,
    load_official_image_encoder,
    preprocess_clip_image,
    to_official_state_dict,
)
from tests._tiny import TINY_CHECKPOINT, WEIGHTS, official_manifest, rel_err, tiny_arch

CLIP_DIR = TINY_CHECKPOINT / "clip_image_encoder"
MAX_REL = 1e-4


@pytest.fixture(scope="module")
def arch() -> dict:
    return tiny_arch("clip_image_encoder")


@pytest.fixture(scope="module")
def encoder(arch) -> CLIPVisionModel:
    return load_official_image_encoder(CLIP_DIR, arch)


@pytest.fixture(scope="module")
def frame0(tiny_inputs) -> torch.Tensor:
    return tiny_inputs["control_video"][:, 0]


# --- parity with the official outputs ------------------------------------------------------------
def test_uint8_truncation_matches_official(frame0, tiny_stages):
    as_uint8 = (frame0.clamp(0, 1) * 255).to(torch.uint8)[0].permute(1, 2, 0)
    assert torch.equal(as_uint8, tiny_stages["clip_input_uint8"])


def test_encode_image_matches_official(encoder, frame0, tiny_stages, tiny_task):
    task1 = tiny_task("1view")
    with torch.no_grad():
        context = encode_image(encoder, frame0)
    assert context.shape == tiny_stages["clip_context"].shape == (1, 257, 32)
    assert rel_err(context, tiny_stages["clip_context"]) <= MAX_REL
    assert rel_err(context, task1["clip_context"]) <= MAX_REL


def test_preprocess_is_the_official_chain(tiny_stages):
    # Independent route from the stored uint8 image: to_tensor, [-1, 1], per-image bicubic, CLIP normalise.
    image = tiny_stages["clip_input_uint8"].permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)
    resized = F.interpolate(image[None], size=(224, 224), mode="bicubic", align_corners=False)
    expected = (resized * 0.5 + 0.5 - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(
        1, 3, 1, 1)
    frames = tiny_stages["clip_input_uint8"].permute(2, 0, 1)[None].float() / 255
    torch.testing.assert_close(preprocess_clip_image(frames), expected, rtol=0, atol=1e-6)


def test_penultimate_hidden_state_skips_last_block_and_post_norm(encoder, frame0):
    with torch.no_grad():
        pixels = preprocess_clip_image(frame0)
        x = encoder.pre_layrnorm(encoder.embeddings(pixels))
        for layer in encoder.encoder.layers[:-1]:
            x = layer(x, attention_mask=None)
        torch.testing.assert_close(encode_image(encoder, frame0), x, rtol=0, atol=1e-6)


def test_official_numerics_config(encoder):
    cfg = encoder.config
    assert cfg.hidden_act == "gelu" and cfg.layer_norm_eps == 1e-5
    assert encoder.embeddings.patch_embedding.bias is None  # bias-free patch conv, as open-clip with pre-norm


def test_bad_frames_raise(encoder):
    with pytest.raises(Gen3RError, match=r"\(B, 3, H, W\)"):
        encode_image(encoder, torch.zeros(1, 1, 3, 16, 16))
    with pytest.raises(Gen3RError, match="NaN"):
        preprocess_clip_image(torch.full((1, 3, 8, 8), float("nan")))


# --- key tables ----------------------------------------------------------------------------------
def test_dropped_tensors_are_exactly_the_unused_ones(caplog):
    official = load_file(str(CLIP_DIR / WEIGHTS))
    with caplog.at_level(logging.INFO, logger="gen3r.models.image_encoder"):
        ours = from_official_state_dict(official)
    dropped = {k for k in official if k.startswith(DROPPED_PREFIXES) or k in DROPPED_KEYS}
    assert "dropping 25 unused official tensors" in caplog.text
    assert len(dropped) == 25 and {"model.log_scale", "model.visual.head"} <= dropped
    back = to_official_state_dict(ours)
    assert set(back) == set(official) - dropped
    assert all(torch.equal(back[k], official[k]) for k in back)
    unprefixed = from_official_state_dict({k.removeprefix("model."): v for k, v in official.items()})
    assert unprefixed.keys() == ours.keys()


def test_qkv_split_order(encoder):
    official = load_file(str(CLIP_DIR / WEIGHTS))
    qkv = official["model.visual.transformer.0.attn.to_qkv.weight"]
    attn = encoder.encoder.layers[0].self_attn
    assert torch.equal(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]), qkv)


def test_dropped_official_tensors_at_full_size():
    """The official file's text tower, logit scale and projection head are dropped on purpose (the
    full-size key set of the rest: tests/models/test_loading_contract.py)."""
    manifest = official_manifest("clip_image_encoder")
    expected = manifest["keys"]
    assert len(expected) == manifest["num_tensors"] == 784
    dropped = {k for k in expected if k.startswith(DROPPED_PREFIXES) or k in DROPPED_KEYS}
    assert {k for k in dropped if not k.startswith("model.textual.")} == {"model.log_scale", "model.visual.head"}
    assert len(dropped) == 2 + sum(k.startswith("model.textual.") for k in expected) == 393
    ours = from_official_state_dict({k: torch.empty(v, device="meta") for k, v in expected.items()})
    assert not any(key.startswith(("textual", "log_scale", "head")) for key in ours)


# --- arch and dtype ------------------------------------------------------------------------------

def test_bad_arch_raises(arch):
    with pytest.raises(Gen3RError, match="unknown entries"):
        load_official_image_encoder(CLIP_DIR, {**arch, "vision_depth": 2})
    with pytest.raises(Gen3RError, match="activation"):
        clip_vision_config({**arch, "activation": "quick_gelu"})


def test_bfloat16_model_encodes_in_bfloat16(arch, frame0):
    model = load_official_image_encoder(CLIP_DIR, arch, torch_dtype=torch.bfloat16)
    with torch.no_grad():
        assert encode_image(model, frame0).dtype == torch.bfloat16


# --- transformers round trip ---------------------------------------------------------------------
def test_save_pretrained_round_trip(tmp_path, encoder, frame0):
    encoder.save_pretrained(tmp_path / "clip")
    again = CLIPVisionModel.from_pretrained(tmp_path / "clip", local_files_only=True)
    with torch.no_grad():
        torch.testing.assert_close(encode_image(again, frame0), encode_image(encoder, frame0), rtol=0, atol=0)
