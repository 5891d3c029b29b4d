"""PSNR / SSIM against closed forms and an independent double-loop SSIM reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gen3r.errors import Gen3RError
from gen3r.eval import psnr, ssim


def _ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Wang et al. SSIM written out position by position: (3, H, W) arrays, valid region, mean."""
    radius, sigma = 5, 1.5
    offsets = np.arange(-radius, radius + 1)
    w1 = np.array([math.exp(-(o * o) / (2 * sigma * sigma)) for o in offsets])
    w = np.outer(w1, w1)
    w /= w.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for c in range(x.shape[0]):
        for i in range(radius, x.shape[1] - radius):
            for j in range(radius, x.shape[2] - radius):
                px = x[c, i - radius:i + radius + 1, j - radius:j + radius + 1]
                py = y[c, i - radius:i + radius + 1, j - radius:j + radius + 1]
                mx, my = (w * px).sum(), (w * py).sum()
                vx = (w * (px - mx) ** 2).sum()
                vy = (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_identical_images_give_inf_psnr_and_unit_ssim():
    img = torch.rand(2, 3, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    p, s = psnr(img, img), ssim(img, img)
    assert p.shape == (2, 3) and s.shape == (2, 3)
    assert torch.isinf(p).all() and (p > 0).all()
    torch.testing.assert_close(s, torch.ones(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shift", [0.1, 0.01, 0.25])
def test_psnr_constant_shift_is_exact(shift):
    gt = torch.full((3, 16, 16), 0.5)
    assert psnr(gt + shift, gt).item() == pytest.approx(-20 * math.log10(shift), abs=1e-4)


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_psnr_of_gaussian_noise_matches_closed_form(sigma):
    gen = torch.Generator().manual_seed(1)
    gt = torch.full((4, 3, 128, 128), 0.5, dtype=torch.float64)
    noisy = gt + sigma * torch.randn(gt.shape, generator=gen, dtype=torch.float64)
    expected = 10 * math.log10(1 / sigma**2)
    # sample MSE has relative std sqrt(2/N) = 0.7 % -> 0.03 dB; 0.1 dB is > 3 std
    torch.testing.assert_close(psnr(noisy, gt), torch.full((4,), expected, dtype=torch.float64),
                               atol=0.1, rtol=0)


def test_psnr_data_range_255_matches_unit_range():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 8, 8, generator=gen), torch.rand(3, 8, 8, generator=gen)
    assert psnr(a * 255, b * 255, data_range=255.0).item() == pytest.approx(psnr(a, b).item(), abs=1e-6)


def test_ssim_matches_double_loop_reference_on_small_images():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 17, 19, generator=gen, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(x, y)
    for k in range(2):
        ref = _ssim_reference(x[k].numpy(), y[k].numpy())
        assert ours[k].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_of_two_constant_images_is_the_luminance_closed_form():
    a, b = 0.3, 0.7
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(torch.full((3, 16, 16), a), torch.full((3, 16, 16), b)).item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_ssim_constant_shift_keeps_structure_term_at_one():
    # y = x + c: variances equal and cov = var, so contrast-structure = 1 and only luminance drops
    gen = torch.Generator().manual_seed(4)
    x = 0.5 * torch.rand(3, 20, 20, generator=gen, dtype=torch.float64)
    y = x + 0.2
    assert ssim(x, y).item() == pytest.approx(_ssim_reference(x.numpy(), y.numpy()), abs=1e-10)
    assert ssim(x, y).item() < 1.0


def test_ssim_window_sum_and_valid_map_size_on_known_case():
    # A single bright pixel at the centre of a 11x11 black image: SSIM is one valid position.
    x = torch.zeros(3, 11, 11, dtype=torch.float64)
    y = x.clone()
    y[:, 5, 5] = 1.0
    g = np.array([math.exp(-(o * o) / 4.5) for o in range(-5, 6)])
    w_centre = (g[5] / g.sum()) ** 2
    c1, c2 = 1e-4, 9e-4
    my, vy = w_centre, w_centre - w_centre**2
    expected = c1 * c2 / ((my**2 + c1) * (vy + c2))
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), h=st.integers(11, 24), w=st.integers(11, 24))
def test_metrics_are_symmetric_and_ssim_bounded(seed, h, w):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.rand(3, h, w, generator=gen), torch.rand(3, h, w, generator=gen)
    assert psnr(a, b).item() == pytest.approx(psnr(b, a).item())
    s = ssim(a, b).item()
    assert s == pytest.approx(ssim(b, a).item(), abs=1e-12)
    assert -1.0 <= s < 1.0


@pytest.mark.parametrize("bad", [
    (torch.rand(3, 16, 16), torch.rand(3, 16, 15)),
    (torch.rand(4, 16, 16), torch.rand(4, 16, 16)),
    (torch.full((3, 16, 16), float("nan")), torch.rand(3, 16, 16)),
    (np.zeros((3, 16, 16)), torch.rand(3, 16, 16)),
])
def test_bad_inputs_raise_one_line_errors(bad):
    for fn in (psnr, ssim):
        with pytest.raises(Gen3RError) as info:
            fn(*bad)
        assert "\n" not in str(info.value)


def test_ssim_rejects_images_smaller_than_window():
    with pytest.raises(Gen3RError, match="11x11"):
        ssim(torch.rand(3, 10, 30), torch.rand(3, 10, 30))
