"""What a task conditions on: the condition frames of 1view / 2view / allview, the temporal mask and
the DiT condition latent ``y`` (spec section 4). Shared by the pipeline and the DiT trainer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gen3r.models.wan_vae import sample_posterior
from gen3r.pipeline.tensors import randn

#: The pipeline's tasks: first frame, first and last frame, every frame (reconstruction).
TASKS = ("1view", "2view", "allview")


def condition_indices(task: str, num_frames: int) -> list[int]:
    """Frame indices that hold condition images for ``task``."""
    if task == "1view":
        return [0]
    if task == "2view":
        return [0, num_frames - 1]
    return list(range(num_frames))


def build_condition_mask(task: str, batch: int, num_frames: int, latent_h: int, latent_w: int,
                         device=None, dtype=torch.float32, halves: int = 2) -> torch.Tensor:
    """Temporal condition mask (B, 4, f, h, halves * w): 1 on the appearance half of condition frames.

    Pixel-frame mask -> frame 0 repeated 4x (F+3 frames) -> groups of 4 consecutive frames moved
    to channels (spec §4). The geometry half (``halves=2``, the joint latent) is always 0.
    """
    mask = torch.zeros(batch, num_frames, latent_h, halves * latent_w, device=device, dtype=dtype)
    mask[:, condition_indices(task, num_frames), :, :latent_w] = 1
    mask = torch.cat([mask[:, :1].repeat(1, 3, 1, 1), mask], dim=1)
    f = (num_frames + 3) // 4
    return mask.view(batch, f, 4, latent_h, halves * latent_w).transpose(1, 2).contiguous()


def condition_from_posterior(mean: torch.Tensor, logvar: torch.Tensor, task: str, num_frames: int,
                             generator: torch.Generator | Sequence[torch.Generator] | None,
                             halves: int = 2) -> torch.Tensor:
    """DiT condition ``y`` (B, 20, f, h, halves * w) from the control video's Wan posterior
    (B, 16, f, h, w): a posterior sample (noise drawn from ``generator``) on the appearance half,
    zeros on the geometry half (``halves=2``, the joint latent; none for an appearance-only DiT),
    then the 4 mask channels of :func:`build_condition_mask`."""

    noise = randn(mean.shape, generator).to(mean.device)
    appearance = sample_posterior(mean.float(), logvar.float(), noise)
    latent = torch.cat([appearance] + [torch.zeros_like(appearance)] * (halves - 1), dim=-1)
    batch, _, _, latent_h, latent_w = appearance.shape
    mask = build_condition_mask(task, batch, num_frames, latent_h, latent_w, device=latent.device,
                                dtype=latent.dtype, halves=halves)
    return torch.cat([latent, mask], dim=1)
