"""Stage-1 adapter losses: analytic values, closed forms and the combined objective."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal, kl_divergence

from gen3r.errors import Gen3RError
from gen3r.train import (
    adapter_training_loss,
    adaptive_kl_weight,
    camera_consistency_loss,
    camera_token_loss,
    cosine_similarity_loss,
    depth_consistency_loss,
    image_token_loss,
    kl_alignment_loss,
    point_consistency_loss,
)


def _posterior(mean: torch.Tensor, logvar: torch.Tensor) -> DiagonalGaussianDistribution:
    return DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))


def _smooth_l1(diff: float, beta: float) -> float:
    d = abs(diff)
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


# --------------------------------------------------------------------------- zero at identity
def test_identical_inputs_give_zero():
    torch.manual_seed(0)
    tokens = torch.randn(2, 10, 5, 3, 4)
    poses = [torch.randn(2, 5, 9) for _ in range(4)]
    depth = torch.rand(2, 5, 6, 7, 1)
    points = torch.randn(2, 5, 6, 7, 3)
    q = _posterior(torch.randn(2, 16, 2, 3, 4), torch.randn(2, 16, 2, 3, 4))
    assert image_token_loss(tokens, tokens).item() == 0.0
    assert camera_token_loss(tokens, tokens).item() == 0.0
    assert camera_consistency_loss(poses, poses).item() == 0.0
    assert depth_consistency_loss(depth, depth).item() == 0.0
    assert point_consistency_loss(points, points).item() == 0.0
    assert cosine_similarity_loss(tokens, tokens).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_alignment_loss(q, q).item() == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- token losses by hand
def test_image_token_loss_by_hand():
    """D = 1: channels 0..3 are image tokens, channel 4 the camera token (ignored here)."""
    target = torch.zeros(1, 5, 1, 1, 2)
    pred = target.clone()
    pred[0, 0, 0, 0, 0] = 0.1   # quadratic zone of beta 0.15
    pred[0, 3, 0, 0, 1] = -1.0  # linear zone
    pred[0, 4] = 7.0            # camera channel: not part of this loss
    expected = (_smooth_l1(0.1, 0.15) + _smooth_l1(1.0, 0.15)) / 8  # mean over 4 ch x 2 cells
    assert image_token_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert image_token_loss(pred, target, beta=2.0).item() == pytest.approx(
        (_smooth_l1(0.1, 2.0) + _smooth_l1(1.0, 2.0)) / 8, rel=1e-6)


def test_camera_token_loss_uses_spatial_means():
    target = torch.zeros(1, 10, 2, 2, 2)  # D = 2
    pred = target.clone()
    pred[0, 8, 0] = torch.tensor([[1.0, -1.0], [0.0, 0.0]])  # spatial mean 0 -> no loss
    pred[0, 9, 1] = 0.4                                       # spatial mean 0.4
    pred[0, 0] = 5.0                                          # image channel: ignored
    expected = _smooth_l1(0.4, 0.1) / 4  # (B=1, D=2, F=2) means
    assert camera_token_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert camera_token_loss(pred, target, embed_dim=2).item() == pytest.approx(expected, rel=1e-6)


def test_cosine_similarity_loss_by_hand():
    target = torch.zeros(1, 5, 1, 1, 2)
    target[0, 0] = 1.0  # image tokens along channel 0
    target[0, 4] = 2.0  # camera token
    pred = torch.zeros_like(target)
    pred[0, 1, 0, 0, 0] = 3.0   # orthogonal -> 1 - cos = 1
    pred[0, 0, 0, 0, 1] = -0.5  # opposite -> 1 - cos = 2
    pred[0, 4] = -1.0           # camera mean opposite -> 2
    assert cosine_similarity_loss(pred, target).item() == pytest.approx((1 + 2) / 2 + 2, rel=1e-6)


# --------------------------------------------------------------------------- camera / depth / points
def test_camera_consistency_loss_by_hand():
    target = [torch.zeros(1, 1, 9), torch.zeros(1, 1, 9)]
    first = torch.zeros(1, 1, 9)
    first[..., 0] = 3.0   # T error 3 over 3 dims -> mean 1
    last = torch.zeros(1, 1, 9)
    last[..., 3] = 4.0    # R error 4 over 4 dims -> mean 1
    last[..., 7] = 2.0    # FoV error 2 over 2 dims -> mean 1
    # iteration 0 weight 0.6, iteration 1 weight 1; divide by 2 iterations; FoV weight 0.5
    expected = (1.0 * 0.6 * 1.0 + 1.0 * 1.0 * 1.0 + 0.5 * 1.0 * 1.0) / 2
    assert camera_consistency_loss([first, last], target).item() == pytest.approx(expected, rel=1e-6)
    stacked = camera_consistency_loss(torch.stack([first, last]), torch.stack(target))
    assert stacked.item() == pytest.approx(expected, rel=1e-6)


def test_camera_translation_error_is_clamped():
    pred = torch.zeros(1, 1, 9)
    pred[..., :3] = 1000.0
    # one iteration: mean of 3 clamped errors (100 each), weight 1
    assert camera_consistency_loss([pred], [torch.zeros(1, 1, 9)]).item() == pytest.approx(100.0)


def test_depth_and_point_losses_by_hand():
    depth_t = torch.ones(1, 1, 2, 2)
    depth_p = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])
    assert depth_consistency_loss(depth_p, depth_t).item() == pytest.approx(0.5)
    points_t = torch.zeros(1, 1, 1, 2, 3)
    points_p = torch.tensor([[[[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]]])
    assert point_consistency_loss(points_p, points_t).item() == pytest.approx(2.5)  # (5 + 0) / 2


# --------------------------------------------------------------------------- KL
def test_kl_matches_closed_form_and_diffusers():
    torch.manual_seed(1)
    shape = (2, 16, 3, 4, 5)
    q_geo = _posterior(torch.randn(shape), torch.randn(shape) * 0.5)
    q_app = _posterior(torch.randn(shape), torch.randn(shape) * 0.5)
    ours = kl_alignment_loss(q_geo, q_app)
    closed = kl_divergence(Normal(q_geo.mean, q_geo.std), Normal(q_app.mean, q_app.std))
    expected = closed.sum(dim=[1, 2, 3]).mean()  # sum over C, T, H; mean over B, W
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, q_geo.kl(q_app).mean(), rtol=1e-6, atol=1e-6)


def test_kl_single_element_by_hand():
    q_geo = _posterior(torch.full((1, 1, 1, 1, 1), 1.0), torch.zeros(1, 1, 1, 1, 1))
    q_app = _posterior(torch.zeros(1, 1, 1, 1, 1), torch.full((1, 1, 1, 1, 1), math.log(4.0)))
    # 0.5 * (1/4 + 1/4 - 1 - 0 + log 4)
    expected = 0.5 * (0.25 + 0.25 - 1.0 + math.log(4.0))
    assert kl_alignment_loss(q_geo, q_app).item() == pytest.approx(expected, rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=4, max_size=4), st.lists(st.floats(-3, 3), min_size=4, max_size=4))
def test_kl_is_non_negative(means, logvars):
    q_geo = _posterior(torch.tensor(means).view(1, 1, 1, 2, 2), torch.tensor(logvars).view(1, 1, 1, 2, 2))
    q_app = _posterior(torch.zeros(1, 1, 1, 2, 2), torch.zeros(1, 1, 1, 2, 2))
    assert kl_alignment_loss(q_geo, q_app).item() >= -1e-6


# --------------------------------------------------------------------------- adaptive weight
@pytest.mark.parametrize("recon, kl, expected", [
    (1.0, 0.5, 0.1),       # kl <= 0.5 * recon -> 1 * 0.1
    (1.0, 0.4, 0.1),
    (1.0, 3.0, 0.01),      # 0.5/3 = 0.167 -> 10^-1
    (1.0, 600.0, 1e-5),    # 0.5/600 = 8.3e-4 -> 10^-4
    (2.0, 10.0, 0.01),     # 1/10 = 0.1 exactly -> 10^-1
    (0.0, 1.0, 0.0),       # log10(0) = -inf -> 0
    (0.0, 0.0, 0.1),
])
def test_adaptive_kl_weight(recon, kl, expected):
    assert adaptive_kl_weight(torch.tensor(recon), torch.tensor(kl)) == pytest.approx(expected, rel=1e-9)


def test_adaptive_kl_weight_rejects_nan():
    with pytest.raises(Gen3RError, match="non-finite"):
        adaptive_kl_weight(float("nan"), 1.0)


# --------------------------------------------------------------------------- combined objective
def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    return dict(
        pred_tokens=rnd(1, 10, 5, 2, 2).requires_grad_(), target_tokens=rnd(1, 10, 5, 2, 2),
        q_geo=_posterior(rnd(1, 16, 2, 3, 3), rnd(1, 16, 2, 3, 3)),
        q_app=_posterior(rnd(1, 16, 2, 3, 3), rnd(1, 16, 2, 3, 3)),
        pred_pose_iters=[rnd(1, 5, 9) for _ in range(4)], target_pose_iters=[rnd(1, 5, 9) for _ in range(4)],
        pred_depth=rnd(1, 5, 4, 4).exp(), target_depth=rnd(1, 5, 4, 4).exp(),
        pred_points=rnd(1, 5, 4, 4, 3), target_points=rnd(1, 5, 4, 4, 3),
    )


def test_adapter_training_loss_combines_terms():
    batch = _batch(2)
    out = adapter_training_loss(**batch)
    recon = (image_token_loss(batch["pred_tokens"], batch["target_tokens"])
             + camera_token_loss(batch["pred_tokens"], batch["target_tokens"])
             + 10 * camera_consistency_loss(batch["pred_pose_iters"], batch["target_pose_iters"])
             + 2 * depth_consistency_loss(batch["pred_depth"], batch["target_depth"])
             + point_consistency_loss(batch["pred_points"], batch["target_points"]))
    similarity = cosine_similarity_loss(batch["pred_tokens"], batch["target_tokens"])
    kl = kl_alignment_loss(batch["q_geo"], batch["q_app"])
    w_kl = adaptive_kl_weight(recon, kl)
    torch.testing.assert_close(out["recon"], recon)
    assert out["kl_adaptive_weight"] == w_kl
    torch.testing.assert_close(out["loss"], 0.5 * recon + 0.1 * similarity + 2.0 * (w_kl * kl))
    assert kl.item() > 0.5 * recon.item()  # the batch exercises the adaptive branch
    assert w_kl < 0.1
    out["loss"].backward()
    grad = batch["pred_tokens"].grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_loss_input_errors():
    tokens = torch.zeros(1, 10, 1, 2, 2)
    with pytest.raises(Gen3RError, match="same shape"):
        image_token_loss(tokens, torch.zeros(1, 10, 1, 2, 3))
    with pytest.raises(Gen3RError, match="5 \\* embed_dim"):
        image_token_loss(torch.zeros(1, 11, 1, 2, 2), torch.zeros(1, 11, 1, 2, 2))
    with pytest.raises(Gen3RError, match="5 \\* embed_dim"):
        camera_token_loss(tokens, tokens, embed_dim=3)
    with pytest.raises(Gen3RError, match="iterations"):
        camera_consistency_loss([torch.zeros(1, 1, 9)], [])
    with pytest.raises(Gen3RError, match="9 values"):
        camera_consistency_loss([torch.zeros(1, 1, 7)], [torch.zeros(1, 1, 7)])
    with pytest.raises(Gen3RError, match="3 coordinates"):
        point_consistency_loss(torch.zeros(1, 2), torch.zeros(1, 2))
