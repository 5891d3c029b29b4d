"""Audit: VGGT's tapped layers are configurable (``intermediate_layer_idx``) and really used.

The fixture tests use the official (4, 11, 17, 23); here a small random model taps other layers, in
a non-sorted order, and the aggregator, the adapter layout and the DPT heads must follow the config.
"""

from __future__ import annotations

import torch

from gen3r.models.vggt import VGGT, tokens_to_adapter_input

SMALL = dict(embed_dim=8, depth=4, num_heads=2, mlp_ratio=1.0, patch_embed_depth=1, patch_embed_num_heads=2,
             camera_trunk_depth=1, camera_num_heads=2, camera_iterations=2, dpt_features=8,
             dpt_out_channels=(4, 4, 4, 4), dpt_head_features_2=4)


def _model(layers: tuple[int, int, int, int]) -> VGGT:
    torch.manual_seed(0)
    return VGGT(**SMALL, intermediate_layer_idx=layers).eval()


def test_aggregate_returns_the_configured_layers_in_config_order() -> None:
    model = _model((3, 0, 2, 1))
    images = torch.rand(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        every, start = model.aggregate(images, all_layers=True)
        tapped, _ = model.aggregate(images)
    assert len(every) == 4 and len(tapped) == 4 and start == 5
    for index, tensor in zip((3, 0, 2, 1), tapped):
        assert torch.equal(tensor, every[index])
    # the layers differ from each other, so the equalities above identify the right ones
    assert not torch.equal(every[0], every[3])


def test_heads_and_adapter_layout_use_the_configured_layers() -> None:
    a, b = _model((0, 1, 2, 3)), _model((3, 2, 1, 0))
    b.load_state_dict(a.state_dict())  # same weights, only the taps differ
    images = torch.rand(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens_a, start = a.aggregate(images)
        tokens_b, _ = b.aggregate(images)
        assert all(torch.equal(x, y) for x, y in zip(tokens_a, reversed(tokens_b)))
        depth_a, _ = a.predict_depth(tokens_a, (28, 42))
        depth_b, _ = b.predict_depth(tokens_b, (28, 42))
        cams_a = a.predict_cameras(tokens_a)[-1]
        cams_b = b.predict_cameras(tokens_b)[-1]
    assert not torch.allclose(depth_a, depth_b)  # the DPT head consumes the taps by position
    assert not torch.allclose(cams_a, cams_b)  # the camera head reads the last tapped layer
    cam_from_layer3 = a.predict_cameras([tokens_b[0]] * 4)[-1]
    torch.testing.assert_close(cam_from_layer3, cams_a, rtol=0, atol=0)
    layout = tokens_to_adapter_input(tokens_b, start, (2, 3))
    assert layout.shape == (1, 5 * 16, 2, 2, 3)
    # channel block 0 holds the patches of the first configured tap (layer 3 for model b)
    first = tokens_b[0][:, :, start:].reshape(1, 2, 2, 3, 16).permute(0, 4, 1, 2, 3)
    assert torch.equal(layout[:, :16], first)
