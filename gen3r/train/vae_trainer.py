"""Base model: train a Wan-VAE-style causal video autoencoder from scratch (mini scale).

The model is diffusers ``AutoencoderKLWan`` with the sizes of ``config.model``. Per micro-batch of
clips (B, F, 3, H, W) in [0, 1] (F = 4k+1): a random ``crop x crop`` window per clip (the model is
fully convolutional), mapped to [-1, 1]; encode -> posterior sample -> decode;
:func:`gen3r.train.losses.vae_training_loss` (L1 + gradient L1 + small KL).

The latent normalisation (``latents_mean``/``latents_std`` of the config, used by
:func:`gen3r.models.wan_vae.encode_video`) is fitted after training by
:func:`calibrate_latents`, so the DiT sees unit-scale latents as with the official Wan VAE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import nn

from gen3r.errors import Gen3RError
from gen3r.train.config import VaeTrainConfig
from gen3r.train.loop import Trainer, TrainResult, init_posterior_logvar, initial_weights, run_training
from gen3r.train.losses import vae_training_loss

logger = logging.getLogger(__name__)

#: :func:`gen3r.train.loop.step_generator` streams of one micro-step.
_CROP_STREAM, _NOISE_STREAM = 1, 2


@dataclass
class VaeBatch:
    """Cropped clips (B, 3, F, crop, crop) in [-1, 1] and the posterior-sample noise generator seed."""

    video: torch.Tensor
    noise_seed: int


class VaeForward(nn.Module):
    """encode -> reparameterised sample -> decode (the unit DDP wraps)."""

    def __init__(self, vae: AutoencoderKLWan) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, video: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        posterior = cast(AutoencoderKLOutput, self.vae.encode(video)).latent_dist  # return_dict=True
        z = posterior.mean + posterior.std * noise
        return cast(DecoderOutput, self.vae.decode(z)).sample, posterior.mean, posterior.logvar


def random_crop(frames: torch.Tensor, size: int | None, generator: torch.Generator) -> torch.Tensor:
    """One random ``size x size`` window per clip of frames (B, F, C, H, W) (same for all frames)."""
    if size is None:
        return frames
    height, width = frames.shape[-2:]
    out = []
    for clip in frames:
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        out.append(clip[..., top:top + size, left:left + size])
    return torch.stack(out)


class VaeTrainer(Trainer):
    """Trains ``AutoencoderKLWan`` (sizes from ``config.model``, seeded init)."""

    component = "wan_vae"
    prepared_type = VaeBatch
    uses_pipeline = False
    config: VaeTrainConfig
    model: AutoencoderKLWan

    def build_model(self) -> nn.Module:
        vae = initial_weights(lambda: AutoencoderKLWan(**self.config.model), self.config.seed, self.config.init,
                              "wan_vae").float().requires_grad_(True)
        if self.config.init_logvar is not None and self.config.init == "random":
            init_posterior_logvar(vae.quant_conv, self.config.init_logvar)
        self._forward = VaeForward(vae)
        return vae

    def forward_module(self) -> nn.Module:
        return self._forward

    def prepare(self, batch: dict[str, Any], micro_step: int) -> VaeBatch:
        frames = random_crop(batch["frames"], self.config.crop, self.generator(micro_step, _CROP_STREAM))
        video = (frames * 2 - 1).clamp(-1, 1).permute(0, 2, 1, 3, 4).contiguous().to(self.device)
        return VaeBatch(video, micro_step)

    def loss(self, prepared: VaeBatch, micro_step: int) -> dict[str, Any]:
        vae = self.model
        latent_shape = _latent_shape(vae, prepared.video.shape)
        noise = torch.randn(latent_shape, generator=self.generator(prepared.noise_seed, _NOISE_STREAM))
        recon, mean, logvar = self.wrapped(prepared.video, noise.to(self.device))
        return vae_training_loss(recon.float(), prepared.video, mean.float(), logvar.float(),
                                 kl_weight=self.config.kl_weight, gradient_weight=self.config.gradient_weight)


def _latent_shape(vae: AutoencoderKLWan, video_shape: torch.Size) -> tuple[int, ...]:
    b, _, f, h, w = video_shape
    down = 2 ** sum(bool(t) for t in vae.config["temperal_downsample"])
    scale = 2 ** (len(vae.config["dim_mult"]) - 1)
    return (b, vae.config["z_dim"], (f - 1) // down + 1, h // scale, w // scale)


@torch.no_grad()
def calibrate_latents(vae: AutoencoderKLWan, clips: Iterable[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the raw posterior means of ``clips`` (each (B, F, 3, H, W) in [0, 1]).

    Writes them into ``vae.config`` (``latents_mean``/``latents_std``) and returns them.
    """
    total = total_sq = None
    count = 0
    for clip in clips:
        x = (clip * 2 - 1).clamp(-1, 1).permute(0, 2, 1, 3, 4).to(next(vae.parameters()))
        mu = cast(AutoencoderKLOutput, vae.encode(x)).latent_dist.mean.double()
        s, sq = mu.sum(dim=(0, 2, 3, 4)), mu.square().sum(dim=(0, 2, 3, 4))
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += mu.numel() // mu.shape[1]
    if total is None or total_sq is None:
        raise Gen3RError("calibrate_latents needs at least one clip")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp(min=1e-12).sqrt()
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    logger.info("calibrated VAE latents over %d cells: mean %s, std %s", count,
                [round(v, 3) for v in mean.tolist()], [round(v, 3) for v in std.tolist()])
    return mean.tolist(), std.tolist()


def train_vae(config: VaeTrainConfig | str | Path, *, pipeline=None, resume: bool = False,
              max_steps: int | None = None, allow_config_changes: bool = False) -> TrainResult:
    """Train the base video VAE from a config (object or JSON file); ``resume`` continues from the
    newest checkpoint in ``config.output_dir``."""
    return run_training(VaeTrainer, VaeTrainConfig, config, pipeline=pipeline, resume=resume, max_steps=max_steps,
                        allow_config_changes=allow_config_changes)
