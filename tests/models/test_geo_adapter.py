"""Geometry adapter: parity with the official implementation (tiny fixture), loading, key table, shapes."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from safetensors.torch import load_file

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models.geo_adapter import (
    GEO_LATENTS_MEAN,
    GEO_LATENTS_STD,
    GeometryAdapter,
    from_official_state_dict,
    to_official_state_dict,
)
from tests._tiny import (
    TINY_CHECKPOINT,
    WEIGHTS,
    rel_err,
    tensor_stats,
    tiny_arch,
    write_component_variant,
)

ADAPTER_DIR = TINY_CHECKPOINT / "geo_adapter"
RTOL = 1e-4  # max |ours - official| / max |official|


@pytest.fixture(scope="module")
def adapter() -> GeometryAdapter:
    return GeometryAdapter.load_official(ADAPTER_DIR)


@pytest.fixture(scope="module")
def input_tokens(tiny_stages) -> torch.Tensor:
    """Official adapter input: [L4 | L11 | L17 | L23 patch tokens | L23 camera token broadcast]."""
    layers = [tiny_stages[f"vggt_tokens_layer{i}"] for i in (4, 11, 17, 23)]
    b, f, _, c = layers[0].shape
    h = w = 8
    patches = [layer[:, :, 5:].reshape(b, f, h, w, c) for layer in layers]
    camera = layers[-1][:, :, 0].reshape(b, f, 1, 1, c).expand(b, f, h, w, c)
    return torch.cat(patches + [camera], dim=-1).permute(0, 4, 1, 2, 3).contiguous()


@pytest.fixture(scope="module")
def posterior(adapter, input_tokens) -> DiagonalGaussianDistribution:
    with torch.no_grad():
        return adapter.encode(input_tokens)


def _tiny(**overrides) -> GeometryAdapter:
    torch.manual_seed(0)
    config = dict(hidden_dim=2, input_dim=20, output_dim=20)
    config.update(overrides)
    model = GeometryAdapter(**config).eval()
    with torch.no_grad():  # zero-initialised pieces would hide bugs: randomise everything
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


# --------------------------------------------------------------------------- parity
def test_input_tokens_match_official_stats(input_tokens, tiny_stages):
    assert list(input_tokens.shape) == tiny_stages["adapter_input_tokens__shape"].tolist()
    torch.testing.assert_close(tensor_stats(input_tokens), tiny_stages["adapter_input_tokens__stats"],
                               rtol=1e-6, atol=1e-6)


def test_encode_matches_official(posterior, tiny_stages):
    assert rel_err(posterior.mean, tiny_stages["adapter_latent_mean"]) <= RTOL
    assert rel_err(posterior.logvar, tiny_stages["adapter_latent_logvar"]) <= RTOL
    torch.testing.assert_close(posterior.std, torch.exp(0.5 * tiny_stages["adapter_latent_logvar"]),
                               rtol=1e-4, atol=1e-6)


def test_decode_matches_official(adapter, tiny_stages):
    with torch.no_grad():
        tokens = adapter.decode(tiny_stages["adapter_latent_mean"])
    assert tokens.shape == tiny_stages["adapter_decoded_tokens"].shape == (1, 160, 9, 8, 8)
    assert rel_err(tokens, tiny_stages["adapter_decoded_tokens"]) <= RTOL


def test_decode_fixed_80_grid_matches_unpatched_official(adapter, tiny_stages):
    """token_grid=(40, 40) reproduces the official hard-coded Upsample(size=(80, 80)) decoder."""
    with torch.no_grad():
        tokens = adapter.decode(tiny_stages["adapter_latent_mean"], token_grid=(40, 40))
    assert list(tokens.shape) == tiny_stages["adapter_decoded_tokens_unpatched80__shape"].tolist()
    assert rel_err(tokens[..., ::8, ::8], tiny_stages["adapter_decoded_tokens_unpatched80__s8"]) <= RTOL
    torch.testing.assert_close(tensor_stats(tokens), tiny_stages["adapter_decoded_tokens_unpatched80__stats"],
                               rtol=1e-4, atol=1e-4)


def test_posterior_sample_and_mode(posterior):
    generator = torch.Generator().manual_seed(3)
    sample = posterior.sample(generator=generator)
    eps = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(sample, posterior.mean + posterior.std * eps)
    assert posterior.mode() is posterior.mean
    assert float(posterior.kl(posterior).abs().max()) == 0.0


# --------------------------------------------------------------------------- grids
def test_official_560_grids():
    model = _tiny()
    assert model.latent_grid((40, 40)) == (70, 70)  # official fixed x1.75
    assert model.token_grid((70, 70)) == (40, 40)  # official fixed 80x80 resize -> 40x40
    # our size-based nearest-exact resize equals the official scale_factor=1.75 one for every
    # token grid side that maps to a whole latent grid (multiples of 4 tokens = 56 px)
    for side in range(4, 204, 4):
        x = torch.arange(float(side)).view(1, 1, 1, side)
        ours = F.interpolate(x, size=(1, model.latent_grid((side, side))[1]), mode="nearest-exact")
        official = F.interpolate(x, scale_factor=(1.0, 1.75), mode="nearest-exact")
        assert torch.equal(ours, official), side


def test_non_square_round_trip_shapes():
    model = _tiny()
    tokens = torch.randn(1, 20, 5, 8, 16)
    with torch.no_grad():
        post = model.encode(tokens)
        assert post.mean.shape == (1, 16, 2, 14, 28)
        assert post.logvar.shape == (1, 16, 2, 14, 28)
        out = model.decode(post.mean)
    assert out.shape == (1, 20, 5, 8, 16)
    assert torch.isfinite(out).all()


def test_encode_is_causal_in_time():
    """Latent frames 0..1 depend only on input frames 0..4 (chunks 1, 4 with a causal cache)."""
    model = _tiny()
    tokens = torch.randn(1, 20, 9, 4, 4)
    altered = tokens.clone()
    altered[:, :, 5:] = torch.randn_like(altered[:, :, 5:])
    with torch.no_grad():
        a, b = model.encode(tokens).mean, model.encode(altered).mean
        short = model.encode(tokens[:, :, :5]).mean
    torch.testing.assert_close(a[:, :, :2], b[:, :, :2], rtol=0, atol=0)
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])
    torch.testing.assert_close(short, a[:, :, :2], rtol=1e-5, atol=1e-6)


def test_decode_is_causal_and_frame_counts():
    model = _tiny()
    z = torch.randn(1, 16, 3, 7, 7)
    with torch.no_grad():
        full = model.decode(z)
        head = model.decode(z[:, :, :2])
        single = model.decode(z[:, :, :1])
    assert full.shape == (1, 20, 9, 4, 4) and head.shape[2] == 5 and single.shape[2] == 1
    torch.testing.assert_close(head, full[:, :, :5], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(single, full[:, :, :1], rtol=1e-5, atol=1e-6)


def test_normalisation_constants_are_official():
    model = GeometryAdapter(hidden_dim=2, input_dim=10, output_dim=10)
    assert tuple(model.config.latents_mean) == GEO_LATENTS_MEAN
    assert tuple(model.config.latents_std) == GEO_LATENTS_STD
    # spot checks against the spec's MEAN_G / STD_G (the parity tests cover all 16 values)
    assert GEO_LATENTS_MEAN[0] == 0.14257538 and GEO_LATENTS_MEAN[-1] == 0.10679868
    assert GEO_LATENTS_STD[0] == 0.56929547 and GEO_LATENTS_STD[-1] == 0.71971470


def test_latent_normalisation_uses_config_stats():
    """encode: (mu - mean) * (1/std); decode: z / (1/std) + mean, with the config's statistics."""
    custom = _tiny(latents_mean=[0.5] * 16, latents_std=[2.0] * 16)
    official = _tiny()  # same seed -> same weights, official statistics
    mean = torch.tensor(GEO_LATENTS_MEAN).view(1, -1, 1, 1, 1)
    std = torch.tensor(GEO_LATENTS_STD).view(1, -1, 1, 1, 1)
    tokens = torch.randn(1, 20, 1, 4, 4)
    z = torch.randn(1, 16, 1, 7, 7)
    with torch.no_grad():
        raw_custom = custom.encode(tokens).mean * 2.0 + 0.5
        raw_official = official.encode(tokens).mean * std + mean
        decoded_custom = custom.decode(z)
        decoded_official = official.decode((z * 2.0 + 0.5 - mean) / std)
    torch.testing.assert_close(raw_custom, raw_official, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decoded_custom, decoded_official, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("shape, match", [
    ((1, 20, 6, 4, 4), "4k\\+1 frames"),
    ((1, 19, 5, 4, 4), "19 channels"),
    ((1, 20, 5, 6, 4), "token grid"),
    ((20, 5, 4, 4), "5-D"),
])
def test_encode_rejects_bad_tokens(shape, match):
    model = _tiny()
    with pytest.raises(Gen3RError, match=match):
        model.encode(torch.zeros(shape))


def test_encode_and_decode_reject_nan():
    model = _tiny()
    tokens = torch.zeros(1, 20, 1, 4, 4)
    tokens[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(Gen3RError, match="NaN"):
        model.encode(tokens)
    with pytest.raises(Gen3RError, match="NaN"):
        model.decode(torch.full((1, 16, 1, 7, 7), float("inf")))


def test_decode_rejects_bad_latent():
    model = _tiny()
    with pytest.raises(Gen3RError, match="8 channels"):
        model.decode(torch.zeros(1, 8, 1, 7, 7))
    with pytest.raises(Gen3RError, match="latent grid"):
        model.decode(torch.zeros(1, 16, 1, 6, 7))


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_dim=25), "divisible by resample_scale"),
    (dict(temporal_downsample=(False, True)), "temporal_downsample needs 3"),
    (dict(temporal_compression_ratio=2), "temporal_compression_ratio"),
    (dict(latents_mean=[0.0] * 4), "16 values"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(Gen3RError, match=match):
        GeometryAdapter(**{**dict(hidden_dim=2, input_dim=20, output_dim=20), **kwargs})


# --------------------------------------------------------------------------- keys and loading
def test_key_table_inverts_at_full_size():
    """(The full-size key set itself: tests/models/test_loading_contract.py.)"""
    with torch.device("meta"):
        model = GeometryAdapter()
    ours = model.state_dict()
    assert set(from_official_state_dict(to_official_state_dict(ours))) == set(ours)
    assert sum(v.numel() for v in ours.values()) == 317_844_304  # the adapter size of the paper's release


def test_to_official_rejects_unknown_key():
    with pytest.raises(CheckpointError, match="no official name"):
        to_official_state_dict({"encoder.bogus.weight": torch.zeros(1)})


def test_load_official_matches_file(adapter):
    raw = load_file(str(ADAPTER_DIR / WEIGHTS))
    ours = to_official_state_dict(adapter.state_dict())
    assert set(ours) == set(raw)
    for key, value in raw.items():
        assert torch.equal(ours[key], value), key
    assert adapter.config.hidden_dim == 4 and adapter.config.input_dim == 160


def _to_training_form(state: dict[str, torch.Tensor]) -> None:
    """The training script's layout: no ``model.`` prefix, plus the latent ``mean`` / ``std`` buffers."""
    for key in list(state):
        state[key.removeprefix("model.")] = state.pop(key)
    state["mean"] = torch.tensor(GEO_LATENTS_MEAN)
    state["std"] = torch.tensor(GEO_LATENTS_STD)


def test_load_unprefixed_training_form_drops_mean_std(tmp_path, adapter, caplog):
    folder = write_component_variant(tmp_path, ADAPTER_DIR, WEIGHTS, _to_training_form)
    with caplog.at_level(logging.INFO, logger="gen3r.models.geo_adapter"):
        model = GeometryAdapter.load_official(folder)
    assert "dropping ['mean', 'std']" in caplog.text
    for key, value in adapter.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_load_official_config_mismatch_is_reported(tmp_path):
    folder = write_component_variant(tmp_path, ADAPTER_DIR, WEIGHTS)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_dim"] = 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape-mismatched"):
        GeometryAdapter.load_official(folder)


def test_load_official_missing_files(tmp_path):
    folder = write_component_variant(tmp_path, ADAPTER_DIR, WEIGHTS)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        GeometryAdapter.load_official(folder)


def test_load_official_accepts_arch(adapter):
    arch = tiny_arch("geo_adapter")
    model = GeometryAdapter.load_official(ADAPTER_DIR, arch=arch)
    assert {k: model.config[k] for k in arch["config.json"]} == arch["config.json"]
    flat = GeometryAdapter.load_official(ADAPTER_DIR, arch=arch["config.json"])
    assert flat.config.hidden_dim == adapter.config.hidden_dim


def test_save_pretrained_round_trip(tmp_path, adapter, input_tokens):
    adapter.save_pretrained(str(tmp_path / "ours"))
    saved = load_file(str(tmp_path / "ours" / WEIGHTS))
    assert set(saved) == set(adapter.state_dict())  # our names, config travels with weights
    loaded = GeometryAdapter.from_pretrained(str(tmp_path / "ours")).eval()
    def public(config):
        return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))

    assert public(loaded.config) == public(adapter.config)
    tokens = input_tokens[:, :, :5]
    with torch.no_grad():
        a = adapter(tokens)
        b = loaded(tokens)
    assert torch.equal(a, b)
