"""Stage 1: train the geometry adapter (official ``train_geo_adapter_pl.py``; spec sections 3.5, 8.1).

Per micro-batch of frames (B, F, 3, H, W) in [0, 1]:

1. frozen VGGT aggregator -> tapped tokens -> adapter input ``x`` (B, 5*2E, F, H/14, W/14); the
   frozen camera / depth / point heads on these tokens give the pseudo ground truth;
2. frozen Wan VAE -> appearance posterior ``q_A`` (normalised mean, raw logvar);
3. trainable adapter: ``q_G = encode(x)``, ``z = mean + std * noise``, ``decode(z)`` -> tokens;
   the frozen heads run on the decoded tokens (gradients flow through them into the adapter);
4. :func:`gen3r.train.losses.adapter_training_loss` (every term is logged).

Optimiser (official): AdamW lr 1e-5, betas (0.9, 0.999), weight decay 1e-4, cosine to 0.2 lr,
gradient clipping 0.5, accumulation 8.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from gen3r.models._loading import from_config, load_config
from gen3r.models.geo_adapter import GeometryAdapter
from gen3r.models.vggt import adapter_output_to_tokens, tokens_to_adapter_input
from gen3r.models.wan_vae import encode_video
from gen3r.pipeline import Gen3RPipeline
from gen3r.pipeline.tensors import module_dtype
from gen3r.pipeline.vggt_geometry import run_heads
from gen3r.train.config import AdapterTrainConfig
from gen3r.train.loop import Trainer, TrainResult, freeze, init_posterior_logvar, load_module_weights, run_training
from gen3r.train.losses import adapter_training_loss

logger = logging.getLogger(__name__)

#: :func:`gen3r.train.loop.step_generator` stream of the posterior-sample noise.
_NOISE_STREAM = 1


@dataclass
class AdapterTargets:
    """Frozen-model side of one stage-1 micro-batch (all float32, on the training device).

    ``tokens``: adapter input (B, 5*2E, F, H/14, W/14); ``poses``: camera-head pose encodings
    (B, F, 9) per refinement iteration; ``depth`` (B, F, H, W, 1) and ``points`` (B, F, H, W, 3):
    head outputs on the original tokens (VGGT units, first camera's frame); ``app_mean``/
    ``app_logvar``: Wan-VAE posterior (B, 16, f, H/8, W/8); ``noise``: the adapter posterior sample
    noise (same shape); ``image_size``: (H, W).
    """

    tokens: torch.Tensor
    poses: list[torch.Tensor]
    depth: torch.Tensor
    points: torch.Tensor
    app_mean: torch.Tensor
    app_logvar: torch.Tensor
    noise: torch.Tensor
    image_size: tuple[int, int]


class AdapterForward(nn.Module):
    """encode -> reparameterised sample -> decode, as one module (the unit DDP wraps)."""

    def __init__(self, adapter: GeometryAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def forward(self, tokens: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (B, C, F, h, w), noise shaped like the latent -> (mean, logvar, decoded tokens)."""
        posterior = self.adapter.encode(tokens)
        z = posterior.mean + posterior.std * noise.to(posterior.mean.dtype)
        decoded = self.adapter.decode(z, token_grid=(tokens.shape[3], tokens.shape[4]))
        return posterior.mean, posterior.logvar, decoded


class AdapterTrainer(Trainer):
    """Stage-1 trainer: frozen VGGT + Wan VAE, trainable :class:`GeometryAdapter`.

    ``pipeline``: an already loaded :class:`gen3r.pipeline.Gen3RPipeline` (else loaded from
    ``config.checkpoint``). With ``config.init == "random"`` the adapter gets the checkpoint
    adapter's config and fresh weights (seeded by ``config.seed``); see
    :class:`~gen3r.train.config.AdapterTrainConfig` for the other choices.
    """

    component = "geo_adapter"
    prepared_type = AdapterTargets
    config: AdapterTrainConfig
    pipe: Gen3RPipeline

    def build_model(self) -> nn.Module:
        freeze(self.pipe.vggt, self.pipe.wan_vae)
        self.pipe.vggt.to(self.device)
        self.pipe.wan_vae.to(self.device)
        source = self.pipe.geo_adapter
        init = self.config.init
        if init == "checkpoint":
            adapter = from_config(GeometryAdapter, source.config)
            adapter.load_state_dict(source.state_dict())
        elif init != "random":
            adapter = from_config(GeometryAdapter, load_config(GeometryAdapter, init))
            load_module_weights(adapter, init, f"geo_adapter ({init})")
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                adapter = from_config(GeometryAdapter, source.config)
        if self.config.init_logvar is not None:
            init_posterior_logvar(adapter.quant_conv, self.config.init_logvar)
        self._forward = AdapterForward(adapter)
        return adapter.float().requires_grad_(True)

    def forward_module(self) -> nn.Module:
        return self._forward

    def find_unused_parameters(self) -> bool:
        """Single-frame clips never reach the adapter's temporal resampling convolutions."""
        return self.config.data.num_frames == 1

    @torch.no_grad()
    def prepare(self, batch: dict[str, Any], micro_step: int) -> AdapterTargets:
        """Frozen-model targets of ``batch["frames"]`` (B, F, 3, H, W) and the posterior-sample noise."""
        frames = batch["frames"].to(self.device)
        vggt = self.pipe.vggt
        height, width = frames.shape[-2:]
        tokens, start = vggt.aggregate(frames.to(module_dtype(vggt)))
        grid = (height // vggt.config.patch_size, width // vggt.config.patch_size)
        heads = run_heads(vggt, tokens, start, (height, width))
        assert heads.points is not None, "run_heads runs the point head by default"
        app_mean, app_logvar = encode_video(self.pipe.wan_vae, frames)
        noise = torch.randn(app_mean.shape, generator=self.generator(micro_step, _NOISE_STREAM))
        return AdapterTargets(tokens=tokens_to_adapter_input(tokens, start, grid).float(),
                              poses=[p.float() for p in heads.poses], depth=heads.depth.float(),
                              points=heads.points.float(), app_mean=app_mean.float(), app_logvar=app_logvar.float(),
                              noise=noise.to(self.device), image_size=(height, width))

    def loss(self, prepared: AdapterTargets, micro_step: int) -> dict[str, Any]:
        t = prepared
        mean, logvar, decoded = self.wrapped(t.tokens, t.noise)
        q_geo = DiagonalGaussianDistribution(torch.cat([mean, logvar], 1).float())
        q_app = DiagonalGaussianDistribution(torch.cat([t.app_mean, t.app_logvar], 1))
        vggt = self.pipe.vggt
        special = vggt.num_special_tokens
        token_list = adapter_output_to_tokens(decoded, num_special_tokens=special)
        heads = run_heads(vggt, token_list, special, t.image_size)
        assert heads.points is not None, "run_heads runs the point head by default"
        w = self.config.loss_weights
        return adapter_training_loss(
            decoded.float(), t.tokens, q_geo, q_app, [p.float() for p in heads.poses], t.poses,
            heads.depth.float(), t.depth, heads.points.float(), t.points,
            recon_weight=w.get("recon", 0.5), similarity_weight=w.get("similarity", 0.1), kl_weight=w.get("kl", 2.0))


def train_adapter(config: AdapterTrainConfig | str | Path, *, pipeline=None, resume: bool = False,
                  max_steps: int | None = None, allow_config_changes: bool = False) -> TrainResult:
    """Run stage 1 from a config (object or JSON file); ``resume`` continues from the newest
    checkpoint in ``config.output_dir``. Returns the :class:`~gen3r.train.loop.TrainResult`."""
    return run_training(AdapterTrainer, AdapterTrainConfig, config, pipeline=pipeline, resume=resume,
                        max_steps=max_steps, allow_config_changes=allow_config_changes)
