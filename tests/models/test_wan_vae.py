"""Wan VAE (diffusers AutoencoderKLWan) loaded from the official layout: parity, keys, strictness."""

from __future__ import annotations

import inspect
import shutil

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models.wan_vae import (
    WAN_LATENTS_MEAN,
    WAN_LATENTS_STD,
    decode_latents,
    encode_video,
    from_official_state_dict,
    load_official_wan_vae,
    sample_posterior,
    to_official_state_dict,
)
from tests._tiny import (
    TINY_CHECKPOINT,
    WEIGHTS,
    rel_err,
    tensor_stats,
    tiny_arch,
)

VAE_DIR = TINY_CHECKPOINT / "wan_vae"
MAX_REL = 1e-4


@pytest.fixture(scope="module")
def arch() -> dict:
    return tiny_arch("wan_vae")


@pytest.fixture(scope="module")
def vae(arch: dict) -> AutoencoderKLWan:
    return load_official_wan_vae(VAE_DIR, arch)


# --- parity with the official outputs ------------------------------------------------------------
def test_encode_video_matches_official(vae, tiny_inputs, tiny_stages):
    with torch.no_grad():
        mean, logvar = encode_video(vae, tiny_inputs["control_video"])
    assert mean.shape == tiny_stages["wan_vae_video_latent_mean"].shape == (1, 16, 3, 14, 14)
    assert rel_err(mean, tiny_stages["wan_vae_video_latent_mean"]) <= MAX_REL
    assert rel_err(logvar, tiny_stages["wan_vae_video_latent_logvar"]) <= MAX_REL


def test_decode_latents_matches_official(vae, tiny_stages):
    with torch.no_grad():
        video = decode_latents(vae, tiny_stages["wan_vae_video_latent_mean"])
    assert video.shape == (1, 9, 3, 112, 112)
    assert video.min() >= 0 and video.max() <= 1
    raw = (video * 2 - 1).permute(0, 2, 1, 3, 4)  # back to the official [-1, 1], (B, 3, F, H, W)
    assert list(raw.shape) == tiny_stages["wan_vae_decode_of_mean__shape"].tolist()
    assert rel_err(raw[..., ::2, ::2], tiny_stages["wan_vae_decode_of_mean__s2"]) <= MAX_REL
    torch.testing.assert_close(tensor_stats(raw), tiny_stages["wan_vae_decode_of_mean__stats"], rtol=MAX_REL,
                               atol=1e-4)


def test_condition_posterior_and_sample_match_official(vae, tiny_inputs, tiny_task):
    task1 = tiny_task("1view")
    cond = torch.zeros_like(tiny_inputs["control_video"])  # 1view: frame 0, then zeros (README §4)
    cond[:, 0] = tiny_inputs["control_video"][:, 0]
    with torch.no_grad():
        mean, logvar = encode_video(vae, cond)
    assert rel_err(mean, task1["control_vae_posterior_mean"]) <= MAX_REL
    assert rel_err(logvar, task1["control_vae_posterior_logvar"]) <= MAX_REL
    sample = sample_posterior(mean, logvar, task1["control_vae_posterior_noise"])
    assert rel_err(sample, task1["control_latents"][:, :16, ..., :14]) <= MAX_REL


def test_sample_posterior_does_not_scale_noise_by_std():
    mean, logvar, noise = torch.zeros(1, 16, 1, 2, 2), torch.full((1, 16, 1, 2, 2), 2.0), torch.ones(1, 16, 1, 2, 2)
    torch.testing.assert_close(sample_posterior(mean, logvar, noise), torch.full_like(mean, torch.e))
    with pytest.raises(Gen3RError, match="one shape"):
        sample_posterior(mean, logvar, noise[..., :1])


def test_latent_constants_equal_diffusers_defaults():
    params = inspect.signature(AutoencoderKLWan.__init__).parameters
    assert list(WAN_LATENTS_MEAN) == params["latents_mean"].default
    assert list(WAN_LATENTS_STD) == params["latents_std"].default


# --- key tables ----------------------------------------------------------------------------------
def test_conversion_equals_diffusers_converter():
    official = load_file(str(VAE_DIR / WEIGHTS))
    ours = from_official_state_dict(official)
    reference = convert_wan_vae_to_diffusers({k.removeprefix("model."): v for k, v in official.items()})
    assert set(ours) == set(reference)
    assert all(ours[k] is reference[k] for k in ours)
    unprefixed = from_official_state_dict({k.removeprefix("model."): v for k, v in official.items()})
    assert unprefixed.keys() == ours.keys()  # the original Wan2.1_VAE.pth layout (no prefix) loads too


def test_official_round_trip_is_identity():
    official = load_file(str(VAE_DIR / WEIGHTS))
    back = to_official_state_dict(from_official_state_dict(official))
    assert set(back) == set(official) and all(back[k] is official[k] for k in official)


@settings(max_examples=6, deadline=None)
@given(num_res_blocks=st.integers(1, 3), levels=st.integers(2, 4))
def test_key_tables_invert_for_any_depth(num_res_blocks, levels):
    with torch.device("meta"):
        model = AutoencoderKLWan(base_dim=4, dim_mult=[1, 2, 4, 4][:levels], num_res_blocks=num_res_blocks,
                                 temperal_downsample=[False, True, True][:levels - 1])
    ours = model.state_dict()
    official = to_official_state_dict(ours, num_res_blocks)
    assert len(official) == len(ours)
    assert from_official_state_dict(official, num_res_blocks).keys() == ours.keys()


# --- strict loading and bad input ----------------------------------------------------------------

def test_official_sizes_reject_tiny_checkpoint():
    with pytest.raises(CheckpointError, match="shape-mismatched"):
        load_official_wan_vae(VAE_DIR)  # base_dim 96 by default; the fixture is base_dim 4


def test_bad_arch_raises(arch):
    with pytest.raises(Gen3RError, match="unknown entries"):
        load_official_wan_vae(VAE_DIR, {**arch, "base_dimm": 4})


def test_bad_video_raises(vae):
    with pytest.raises(Gen3RError, match="4k\\+1"):
        encode_video(vae, torch.zeros(1, 8, 3, 16, 16))
    with pytest.raises(Gen3RError, match="\\(B, F, 3, H, W\\)"):
        encode_video(vae, torch.zeros(1, 5, 16, 16))
    with pytest.raises(Gen3RError, match="NaN"):
        encode_video(vae, torch.full((1, 1, 3, 16, 16), float("nan")))
    with pytest.raises(Gen3RError, match="latents must be"):
        decode_latents(vae, torch.zeros(1, 4, 1, 2, 2))


# --- diffusers round trip ------------------------------------------------------------------------
def test_save_pretrained_round_trip(tmp_path, vae, tiny_inputs):
    vae.save_pretrained(tmp_path / "vae")
    again = AutoencoderKLWan.from_pretrained(tmp_path / "vae")
    assert again.config.base_dim == 4 and list(again.config.latents_std) == list(WAN_LATENTS_STD)
    original = vae.state_dict()
    assert all(torch.equal(original[k], v) for k, v in again.state_dict().items())
    video = tiny_inputs["control_video"][:, :1, :, :32, :32]
    with torch.no_grad():
        torch.testing.assert_close(encode_video(again, video)[0], encode_video(vae, video)[0], rtol=0, atol=0)
    shutil.rmtree(tmp_path / "vae")
