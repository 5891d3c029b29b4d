"""VGGT: parity with the official Gen3R code (tiny fixture), strict loading, key manifest, layouts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import pytest
import torch

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models.vggt import (
    VGGT,
    adapter_output_to_tokens,
    from_official_state_dict,
    to_official_state_dict,
    tokens_to_adapter_input,
)
from gen3r.models.vggt_layers import RotaryPositionEmbedding2D
from tests._tiny import (
    TINY_CHECKPOINT,
    strided_copies,
    tensor_stats,
    tiny_arch,
    write_component_variant,
)

VGGT_DIR = TINY_CHECKPOINT / "vggt"
LAYERS = (4, 11, 17, 23)


# ------------------------------------------------------------------------------ helpers


def _assert_close(mine: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-4) -> None:
    """Max error <= rtol relative to the reference magnitude (plus elementwise rtol)."""
    mine, ref = mine.float(), ref.float()
    assert mine.shape == ref.shape
    torch.testing.assert_close(mine, ref, rtol=rtol, atol=rtol * 0.1 * ref.abs().max().item())


def _check_full(mine: torch.Tensor, stages: Mapping[str, torch.Tensor], name: str) -> None:
    """Compare a full tensor with ``name__shape``, ``name__sK`` and ``name__stats`` of the fixture."""
    for k, copy in strided_copies(mine, stages, name).items():
        _assert_close(mine[:, :, ::k, ::k], copy)
    _check_stats(mine, stages[f"{name}__stats"])


def _check_stats(mine: torch.Tensor, ref: torch.Tensor) -> None:
    """[sum, sum|x|, sum x^2, min, max, mean] within 1e-4 of each statistic's natural scale."""
    got = tensor_stats(mine)
    scale = torch.tensor([ref[1], ref[1], ref[2], ref[3:5].abs().max(), ref[3:5].abs().max(),
                          ref[1] / mine.numel()], dtype=torch.float64)
    assert ((got - ref).abs() <= 1e-4 * scale).all(), (got, ref)


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """The tiny model is dominated by per-op overhead; one intra-op thread avoids OpenMP
    oversubscription on the shared 2-core runner (results are identical). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def arch() -> dict:
    return tiny_arch("vggt")


@pytest.fixture(scope="module")
def model(arch: dict) -> VGGT:
    return VGGT.load_official(VGGT_DIR, arch=arch)


@pytest.fixture(scope="module")
def video(tiny_inputs) -> torch.Tensor:
    return tiny_inputs["control_video"]


@pytest.fixture(scope="module")
def aggregated(model: VGGT, video: torch.Tensor) -> tuple[list[torch.Tensor], int]:
    with torch.no_grad():
        return model.aggregate(video)


@pytest.fixture(scope="module")
def decoded_tokens(tiny_stages) -> list[torch.Tensor]:
    return adapter_output_to_tokens(tiny_stages["adapter_decoded_tokens"])


# ------------------------------------------------------------------------------ key layout


def test_key_table_inverts_at_full_size() -> None:
    """(The full-size key set itself: tests/models/test_loading_contract.py.)"""
    with torch.device("meta"):
        model = VGGT()
    assert from_official_state_dict(to_official_state_dict(model.state_dict())).keys() == model.state_dict().keys()


def test_arch_section_sets_tiny_sizes(model: VGGT, arch: dict) -> None:
    cfg = model.config
    assert (cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.depth) == (16, 4, 1.0, 24)
    assert (cfg.patch_embed_depth, cfg.patch_embed_num_heads, cfg.patch_embed_mlp_ratio) == (2, 2, 2)
    assert (cfg.dpt_features, list(cfg.dpt_out_channels)) == (16, [8, 16, 24, 32])
    assert model.patch_start_idx == 5


# ------------------------------------------------------------------------------ parity: aggregator path


def test_aggregator_tokens_match_official(aggregated, tiny_stages) -> None:
    tokens, start = aggregated
    assert start == 5 and len(tokens) == 4
    for layer, t in zip(LAYERS, tokens):
        _assert_close(t, tiny_stages[f"vggt_tokens_layer{layer}"])


def test_all_layers_contains_tapped_layers(model, video, aggregated) -> None:
    with torch.no_grad():
        every, _ = model.aggregate(video[:, :3], all_layers=True)
        tapped, _ = model.aggregate(video[:, :3])
    assert len(every) == 24
    for layer, t in zip(LAYERS, tapped):
        assert torch.equal(every[layer], t)


def test_camera_head_matches_official(model, aggregated, tiny_stages) -> None:
    with torch.no_grad():
        iters = model.predict_cameras(aggregated[0])
    assert len(iters) == 4
    _assert_close(torch.stack(iters), tiny_stages["vggt_pose_enc_iters"])
    _assert_close(iters[-1], tiny_stages["vggt_pose_enc"])
    from gen3r.cameras import pose_encoding_to_extri_intri

    extrinsic, intrinsic = pose_encoding_to_extri_intri(iters[-1], (112, 112))
    _assert_close(extrinsic, tiny_stages["vggt_extrinsic"])
    _assert_close(intrinsic, tiny_stages["vggt_intrinsic"])


def test_depth_head_matches_official(model, aggregated, tiny_stages, video) -> None:
    with torch.no_grad():
        depth, conf = model.predict_depth(aggregated[0], tuple(video.shape[-2:]), aggregated[1])
    _check_full(depth, tiny_stages, "vggt_depth")
    _check_full(conf, tiny_stages, "vggt_depth_conf")


def test_point_head_matches_official(model, aggregated, tiny_stages, video) -> None:
    with torch.no_grad():
        points, conf = model.predict_points(aggregated[0], tuple(video.shape[-2:]), aggregated[1])
    _check_full(points, tiny_stages, "vggt_world_points")
    _check_full(conf, tiny_stages, "vggt_world_points_conf")


def test_adapter_input_matches_official(aggregated, tiny_stages) -> None:
    tokens, start = aggregated
    x = tokens_to_adapter_input(tokens, start, (8, 8))
    assert list(x.shape) == tiny_stages["adapter_input_tokens__shape"].tolist()
    _check_stats(x, tiny_stages["adapter_input_tokens__stats"])


def test_forward_equals_pieces(model, video) -> None:
    clip = video[:, :3, :, :56, :84]
    with torch.no_grad():
        out = model(clip)
        tokens, _ = model.aggregate(clip)
        depth, depth_conf = model.predict_depth(tokens, (56, 84))
        iters = model.predict_cameras(tokens)
    assert set(out) == {"pose_enc", "pose_enc_list", "depth", "depth_conf", "world_points", "world_points_conf"}
    assert torch.equal(out["depth"], depth) and torch.equal(out["depth_conf"], depth_conf)
    assert torch.equal(out["pose_enc"], iters[-1]) and len(out["pose_enc_list"]) == 4
    assert out["world_points"].shape == (1, 3, 56, 84, 3)


# ------------------------------------------------------------------------------ parity: decoded path


def test_decoded_special_tokens_match_official(decoded_tokens, tiny_stages) -> None:
    assert len(decoded_tokens) == 4
    for t in decoded_tokens:
        assert t.shape == (1, 9, 69, 32)
        _assert_close(t[:, :, :5], tiny_stages["decoded_cam_register_tokens"])


def test_decoded_cameras_match_official(model, decoded_tokens, tiny_stages) -> None:
    with torch.no_grad():
        iters = model.predict_cameras(decoded_tokens)
    _assert_close(torch.stack(iters), tiny_stages["decoded_pose_enc_iters"])
    _assert_close(iters[-1], tiny_stages["decoded_pose_enc"])
    from gen3r.cameras import pose_encoding_to_extri_intri

    extrinsic, intrinsic = pose_encoding_to_extri_intri(iters[-1], (112, 112))
    _assert_close(extrinsic, tiny_stages["decoded_extrinsic"])
    _assert_close(intrinsic, tiny_stages["decoded_intrinsic"])


def test_decoded_dense_heads_match_official(model, decoded_tokens, tiny_stages) -> None:
    with torch.no_grad():
        depth, depth_conf = model.predict_depth(decoded_tokens, (112, 112))
        points, points_conf = model.predict_points(decoded_tokens, (112, 112))
    _check_full(depth, tiny_stages, "decoded_depth")
    _check_full(depth_conf, tiny_stages, "decoded_depth_conf")
    _check_full(points, tiny_stages, "decoded_world_points")
    _check_full(points_conf, tiny_stages, "decoded_world_points_conf")


def test_adapter_layout_round_trip(aggregated) -> None:
    """Patch tokens survive the adapter layout exactly; special slots get the layer-23 camera token."""
    tokens, start = aggregated
    back = adapter_output_to_tokens(tokens_to_adapter_input(tokens, start, (8, 8)))
    for orig, rec in zip(tokens, back):
        assert torch.equal(rec[:, :, start:], orig[:, :, start:])
        torch.testing.assert_close(rec[:, :, :start], tokens[-1][:, :, :1].expand_as(rec[:, :, :start]))


# ------------------------------------------------------------------------------ loading


def _write_variant(tmp_path, edit):
    return write_component_variant(tmp_path, VGGT_DIR, "model.safetensors", edit)


def test_full_size_config_rejects_tiny_weights() -> None:
    with pytest.raises(CheckpointError, match="shape-mismatched"):
        VGGT.load_official(VGGT_DIR)  # no arch: official ViT-L sizes, tiny file


def test_track_head_keys_are_dropped_and_logged(tmp_path, arch, caplog, video) -> None:
    def add_track(sd):
        sd["track_head.feature_extractor.norm.weight"] = torch.ones(3)
        sd["track_head.tracker.fmap_norm.bias"] = torch.zeros(3)

    with caplog.at_level(logging.INFO, logger="gen3r.models.vggt"):
        loaded = VGGT.load_official(_write_variant(tmp_path, add_track), arch=arch)
    assert "dropping 2 tracking-head tensors" in caplog.text
    assert not any(k.startswith("track_head") for k in loaded.state_dict())


def test_arch_disagreeing_with_config_is_rejected(arch) -> None:
    bad = json.loads(json.dumps(arch))
    bad["config.json"]["embed_dim"] = 32
    with pytest.raises(Gen3RError, match="embed_dim"):
        VGGT.load_official(VGGT_DIR, arch=bad)
    bad = json.loads(json.dumps(arch))
    bad["aggregator"]["aa_block_size"] = 2
    with pytest.raises(Gen3RError, match="aa_block_size"):
        VGGT.load_official(VGGT_DIR, arch=bad)
    bad = json.loads(json.dumps(arch))
    bad["dpt_heads"]["dim_in"] = 64
    with pytest.raises(Gen3RError, match="dpt_heads.dim_in"):
        VGGT.load_official(VGGT_DIR, arch=bad)


def test_from_pretrained_in_bfloat16(tmp_path, model) -> None:
    model.save_pretrained(tmp_path / "ours")
    bf16 = VGGT.from_pretrained(tmp_path / "ours", torch_dtype=torch.bfloat16)
    with torch.no_grad():
        out = bf16(torch.rand(1, 2, 3, 28, 28))
    assert out["depth"].dtype == torch.bfloat16 and out["pose_enc"].dtype == torch.bfloat16


def test_save_pretrained_round_trip(tmp_path, model) -> None:
    model.save_pretrained(tmp_path / "ours")
    again = VGGT.from_pretrained(tmp_path / "ours")
    public = {k: v for k, v in model.config.items() if not k.startswith("_")}
    assert {k: v for k, v in again.config.items() if not k.startswith("_")} == public
    x = torch.rand(1, 2, 3, 56, 70, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), again(x)
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------------------ shapes, dtypes, inputs


def test_non_square_and_frame_chunking(model) -> None:
    x = torch.rand(2, 3, 3, 42, 70, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens, start = model.aggregate(x)
        assert tokens[0].shape == (2, 3, 5 + 3 * 5, 32)
        depth, conf = model.predict_depth(tokens, (42, 70), start)
        depth1, conf1 = model.predict_depth(tokens, (42, 70), start, frames_chunk_size=1)
        points, _ = model.predict_points(tokens, (42, 70), start, frames_chunk_size=2)
        adapter_in = tokens_to_adapter_input(tokens, start, (3, 5))
    assert depth.shape == (2, 3, 42, 70, 1) and conf.shape == (2, 3, 42, 70)
    assert points.shape == (2, 3, 42, 70, 3)
    assert adapter_in.shape == (2, 160, 3, 3, 5)
    assert bool((depth > 0).all()) and bool((conf >= 1).all())
    torch.testing.assert_close(depth1, depth, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conf1, conf, rtol=1e-5, atol=1e-6)


def test_bfloat16_close_to_float32(arch, model, video) -> None:
    """bf16 weights + activations vs fp32 on 3 fixture frames at 56x56 (errors relative to max |fp32|)."""
    bf16 = VGGT.load_official(VGGT_DIR, arch=arch, torch_dtype=torch.bfloat16)
    clip = video[:, :3, :, ::2, ::2]
    with torch.no_grad():
        ref, out = model(clip), bf16(clip.to(torch.bfloat16))
    for key, tol in (("pose_enc", 0.02), ("depth", 0.06), ("world_points", 0.1)):
        assert out[key].dtype == torch.bfloat16
        err = (out[key].float() - ref[key]).abs().max() / ref[key].abs().max()
        assert err < tol, (key, float(err))


def test_bad_inputs_raise(model, aggregated) -> None:
    with pytest.raises(Gen3RError, match="multiple of the patch size"):
        model.aggregate(torch.rand(1, 2, 3, 100, 112))
    with pytest.raises(Gen3RError, match=r"\(B, F, 3, H, W\)"):
        model.aggregate(torch.rand(2, 3, 112, 112))
    bad = torch.rand(1, 1, 3, 56, 56)
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(Gen3RError, match="NaN"):
        model.aggregate(bad)
    tokens, start = aggregated
    with pytest.raises(Gen3RError, match="tapped layers"):
        model.predict_depth(tokens[:3], (112, 112), start)
    with pytest.raises(Gen3RError, match="image_size"):
        model.predict_points(tokens, (56, 112), start)
    with pytest.raises(Gen3RError, match="grid"):
        tokens_to_adapter_input(tokens, start, (8, 9))
    with pytest.raises(Gen3RError, match=r"\(B, 5\*2E, F, h, w\)"):
        adapter_output_to_tokens(torch.zeros(1, 161, 2, 4, 4))


def test_pos_embed_interpolation(model) -> None:
    embed = model.aggregator.patch_embed
    assert embed.interpolate_pos_encoding(1 + 37 * 37, 518, 518, torch.float32) is embed.pos_embed
    resized = embed.interpolate_pos_encoding(1 + 6 * 10, 84, 140, torch.float32)
    assert resized.shape == (1, 61, 16)
    assert torch.equal(resized[:, 0], embed.pos_embed[:, 0])


# ------------------------------------------------------------------------------ RoPE analytic properties


def test_rope_is_relative_and_norm_preserving() -> None:
    gen = torch.Generator().manual_seed(3)
    rope = RotaryPositionEmbedding2D(100.0)
    q, k = torch.randn(1, 2, 1, 8, generator=gen), torch.randn(1, 2, 1, 8, generator=gen)

    def score(pq, pk):
        return (rope(q, torch.tensor([[pq]])) * rope(k, torch.tensor([[pk]]))).sum(-1)

    torch.testing.assert_close(score((3, 5), (1, 2)), score((7, 9), (5, 6)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score((3, 5), (1, 2)), score((3, 5), (2, 1)))
    rotated = rope(q, torch.tensor([[(4, 6)]]))
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(rope(q, torch.tensor([[(0, 0)]])), q)


def test_pos_embed_offset_mode_uses_scale_factor(model) -> None:
    """DINOv2's legacy offset path (scale factor (h+off)/37) keeps the grid size, values shift slightly."""
    embed = model.aggregator.patch_embed
    by_size = embed.interpolate_pos_encoding(1 + 6 * 10, 84, 140, torch.float32)
    embed.interpolate_offset = 0.1
    try:
        by_scale = embed.interpolate_pos_encoding(1 + 6 * 10, 84, 140, torch.float32)
    finally:
        embed.interpolate_offset = 0.0
    assert by_scale.shape == by_size.shape
    assert not torch.equal(by_scale, by_size)
    torch.testing.assert_close(by_scale, by_size, rtol=0.0, atol=0.5 * by_size.abs().max().item())


def test_tiny_random_config_without_rope_runs() -> None:
    torch.manual_seed(0)
    model = VGGT(embed_dim=8, depth=2, num_heads=2, mlp_ratio=1.0, rope_freq=0, patch_embed_depth=1,
                 patch_embed_num_heads=2, camera_trunk_depth=1, camera_num_heads=2, camera_iterations=2,
                 dpt_features=8, dpt_out_channels=(4, 4, 4, 4), dpt_head_features_2=4,
                 intermediate_layer_idx=(0, 1, 1, 1)).eval()
    assert model.aggregator.rope is None
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 28, 42))
    assert out["depth"].shape == (1, 2, 28, 42, 1) and len(out["pose_enc_list"]) == 2
    assert all(torch.isfinite(v).all() for k, v in out.items() if k != "pose_enc_list")
    with pytest.raises(Gen3RError, match="intermediate_layer_idx"):
        VGGT(depth=2, intermediate_layer_idx=(0, 1, 2, 3))
