"""Per-image appearance metrics: PSNR and SSIM.

Convention: images are tensors ``(..., 3, H, W)`` with values in ``[0, 1]`` (any leading batch /
frame dimensions, e.g. ``(B, F, 3, H, W)``); both metrics return one value per image, shape
``(...)``, as a float64 tensor on the input's device.

SSIM follows Wang et al. 2004 ("Image quality assessment: from error visibility to structural
similarity"): an 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``,
``L = data_range``, population (biased) local statistics, evaluated on the **valid** region only
(no padding: the map has size ``(H - 10, W - 10)``, as ``filter2(..., 'valid')`` in the authors'
MATLAB reference and ``pytorch_msssim.ssim``). It is computed per colour channel and the map is
averaged over channels and positions. Unlike the MATLAB script there is no automatic 2x
downsampling of large images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gen3r.errors import Gen3RError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def check_image_pair(pred: torch.Tensor, gt: torch.Tensor, name: str, min_size: int = 1) -> None:
    """Raise :class:`Gen3RError` unless ``pred``/``gt`` are finite same-shape ``(..., 3, H, W)`` tensors."""
    for label, x in (("pred", pred), ("gt", gt)):
        if not isinstance(x, torch.Tensor):
            raise Gen3RError(f"{name}: {label} must be a torch.Tensor, got {type(x).__name__}; "
                             "convert with torch.as_tensor")
        if x.ndim < 3 or x.shape[-3] != 3:
            raise Gen3RError(f"{name}: {label} has shape {tuple(x.shape)}; expected (..., 3, H, W) RGB images")
        if not torch.isfinite(x).all():
            raise Gen3RError(f"{name}: {label} contains NaN or inf values; clean the images first")
    if pred.shape != gt.shape:
        raise Gen3RError(f"{name}: pred shape {tuple(pred.shape)} != gt shape {tuple(gt.shape)}; "
                         "resize the prediction to the ground-truth resolution")
    if min(pred.shape[-2:]) < min_size:
        raise Gen3RError(f"{name}: images of size {tuple(pred.shape[-2:])} are smaller than the "
                         f"{min_size}x{min_size} window; use images of at least {min_size} pixels per side")


def psnr(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image.

    Args:
        pred: predicted images ``(..., 3, H, W)``, values in ``[0, data_range]``.
        gt: ground-truth images of the same shape.
        data_range: peak value ``L``; PSNR = ``10 log10(L^2 / MSE)`` with the MSE over ``(3, H, W)``.

    Returns:
        ``(...)`` float64 tensor; ``inf`` where the images are identical.
    """
    check_image_pair(pred, gt, "psnr")
    if not data_range > 0:
        raise Gen3RError(f"psnr: data_range must be > 0, got {data_range}")
    diff = pred.to(torch.float64) - gt.to(torch.float64)
    mse = diff.square().mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``exp(-x^2 / 2 sigma^2)`` at ``x = -(size//2) .. size//2`` (float64)."""
    x = torch.arange(size, dtype=torch.float64) - (size // 2)
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of ``(N, C, H, W)`` per channel."""
    c = x.shape[1]
    kh = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def ssim(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004, Gaussian window, 'valid' convention) per image.

    Args:
        pred: predicted images ``(..., 3, H, W)`` in ``[0, data_range]``, ``H, W >= 11``.
        gt: ground-truth images of the same shape.
        data_range: dynamic range ``L`` in the constants ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``.

    Returns:
        ``(...)`` float64 tensor, 1 for identical images.
    """
    check_image_pair(pred, gt, "ssim", min_size=SSIM_WINDOW)
    if not data_range > 0:
        raise Gen3RError(f"ssim: data_range must be > 0, got {data_range}")
    lead = pred.shape[:-3]
    x = pred.to(torch.float64).reshape(-1, *pred.shape[-3:])
    y = gt.to(torch.float64).reshape(-1, *gt.shape[-3:])
    g = gaussian_window().to(x.device)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x**2
    var_y = _filter_valid(y * y, g) - mu_y**2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(-3, -2, -1)).reshape(lead)


__all__ = ["psnr", "ssim", "gaussian_window", "check_image_pair"]
