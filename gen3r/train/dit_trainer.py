"""Stage 2: fine-tune the joint appearance/geometry DiT (official ``train_dit.py``; spec sections 4, 8.2).

Per micro-batch (frames (B, F, 3, H, W) in [0, 1], cameras relative to frame 0, captions), with the
DiT inputs built by the inference pipeline's own functions:

1. target ``Z0 = [A | G]`` along width: ``A`` = Wan-VAE posterior sample, ``G`` = adapter posterior
   sample of the VGGT tokens (both stochastic, as the official code);
2. condition mode per sample: 1view / allview / 2view with ``condition_probs`` (1/3 each);
   condition ``y`` = :meth:`Gen3RPipeline.prepare_condition` -> ``[VAE sample | zeros]`` + 4 mask
   channels (geometry half **zeros** as at inference; the released training code put adapter
   latents there, which the maintainers called a bug: issue #13);
3. prompt dropout (p 0.2, per sample) -> :meth:`Gen3RPipeline.encode_prompt`; CLIP context of frame 0;
4. camera dropout (p 0.5, whole batch): Plücker rays of the relative cameras, packed by the
   pipeline's packer (None when dropped: the transformer's all-zero rays, as at inference);
5. timestep index ``i`` uniform in [0, 1000) (stratified over ranks like the official
   ``DiscreteSampling``), ``t = timesteps[i]``, ``sigma = sigmas[i]`` of the training scheduler
   (FlowMatchEuler, shift from the checkpoint's scheduler config);
6. ``x_t = (1 - sigma) Z0 + sigma eps``, DiT input ``[x_t | y]`` (36 channels), target ``v = eps - Z0``;
7. loss: float32 MSE with elements ``|pred - target| > 50`` zeroed, mean over all elements.

An appearance-only transformer (``appearance_only`` in its config: the "2-stage" ablation) is
trained the same way on ``Z0 = A`` alone (no geometry half in the target, the condition or the
camera input); its latent cache then holds no geometry posteriors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from torch import nn

from gen3r.data.cache import SceneCache
from gen3r.errors import Gen3RError
from gen3r.models._loading import from_config, load_config
from gen3r.models.geo_adapter import GeometryAdapter
from gen3r.models.transformer import Gen3RTransformer3DModel
from gen3r.models.wan_vae import encode_video, sample_posterior
from gen3r.pipeline import Gen3RPipeline
from gen3r.pipeline.conditioning import condition_from_posterior, condition_indices
from gen3r.pipeline.tensors import module_dtype, randn
from gen3r.train.config import DitTrainConfig
from gen3r.train.latent_cache import APPEARANCE_POSTERIORS, LatentCache
from gen3r.train.loop import Trainer, TrainResult, freeze, load_module_weights, run_training
from gen3r.train.stages import resolve_component

logger = logging.getLogger(__name__)

NUM_TRAIN_TIMESTEPS = 1000
#: Order in which ``condition_probs`` split [0, 1) (official: u < 1/3 1view, u > 2/3 2view).
MODE_ORDER = ("1view", "allview", "2view")
#: :func:`gen3r.train.loop.step_generator` streams of one micro-step.
STREAMS = {"choices": 10, "target": 11, "noise": 12, "condition": 13}


def flow_matching_loss(pred: torch.Tensor, target: torch.Tensor, threshold: float = 50.0) -> torch.Tensor:
    """Official ``custom_mse_loss``: float32 squared error, elements with ``|pred - target| >
    threshold`` set to 0, mean over all elements (the excluded ones still count in the mean)."""
    pred, target = pred.float(), target.float()
    diff = pred - target
    return (diff.square() * (diff.abs() <= threshold)).mean()


def timestep_index_range(rank: int, world_size: int, num: int = NUM_TRAIN_TIMESTEPS) -> tuple[int, int]:
    """Half-open index interval rank ``rank`` samples from (official ``DiscreteSampling`` with
    ``uniform_sampling``): ranks form ``g`` groups, ``g`` the largest divisor of ``world_size``
    with ``num % g == 0``; group ``k`` draws from ``[k num/g, (k+1) num/g)``."""
    groups = next(world_size // i for i in range(1, world_size + 1)
                  if world_size % i == 0 and num % (world_size // i) == 0)
    width = world_size // groups
    interval = num // groups
    k = rank // width
    return k * interval, (k + 1) * interval


def training_scheduler(config: dict[str, Any]) -> FlowMatchEulerDiscreteScheduler:
    """A fresh FlowMatchEuler scheduler from the checkpoint's scheduler config (1000 train steps;
    ``sigmas = shift s / (1 + (shift - 1) s)``, ``timesteps = 1000 sigmas``, s = k/1000)."""
    return from_config(FlowMatchEulerDiscreteScheduler, config)


@dataclass
class DitRandom:
    """Generators of one micro-step: ``choices`` (modes, dropouts, timesteps), ``target``
    (posterior samples of Z0), ``noise`` (eps), ``condition`` (condition-latent posterior noise,
    drawn exactly like :meth:`Gen3RPipeline.prepare_condition` draws it)."""

    choices: torch.Generator
    target: torch.Generator
    noise: torch.Generator
    condition: torch.Generator


@dataclass
class DitInputs:
    """DiT inputs and target of one micro-batch (see the module docstring)."""

    hidden_states: torch.Tensor          # (B, 36, f, H/8, 2W/8) [x_t 16 | cond latent 16 | mask 4]
    timestep: torch.Tensor               # (B,) in [0, 1000]
    encoder_hidden_states: torch.Tensor  # (B, 512, text_dim)
    encoder_hidden_states_image: torch.Tensor | None  # (B, 257, image_dim)
    camera: torch.Tensor | None          # (B, 24, f, H, 2W) packed Plücker (None when dropped: zero rays)
    target: torch.Tensor                 # (B, 16, f, H/8, 2W/8) velocity eps - Z0
    sigmas: torch.Tensor                 # (B,)
    modes: list[str]
    prompts: list[str]
    camera_dropped: bool


class DitTrainer(Trainer):
    """Stage-2 trainer: frozen UMT5, CLIP, Wan VAE, VGGT, adapter; trainable transformer (full
    fine-tune, initialised from the checkpoint's transformer)."""

    component = "transformer"
    prepared_type = DitInputs
    config: DitTrainConfig
    pipe: Gen3RPipeline
    model: Gen3RTransformer3DModel

    def build_model(self) -> nn.Module:
        pipe, cfg = self.pipe, self.config
        self.adapter_folder = None
        if cfg.adapter_path is not None:
            self.adapter_folder = resolve_component(cfg.adapter_path, "geo_adapter")
            adapter = from_config(GeometryAdapter, load_config(GeometryAdapter, self.adapter_folder))
            load_module_weights(adapter, self.adapter_folder, f"geo_adapter ({self.adapter_folder})")
            pipe.register_modules(geo_adapter=adapter)
        frozen = (pipe.text_encoder, pipe.clip_image_encoder, pipe.wan_vae, pipe.vggt, pipe.geo_adapter)
        freeze(*frozen)
        for module in frozen:
            module.to(self.device)
        self.scheduler_train = training_scheduler(pipe.scheduler.config)
        self.t_range = timestep_index_range(self.dist.rank, self.dist.world_size)
        self.latents = self._build_latent_cache() if cfg.latent_cache else None
        transformer = pipe.transformer.float().requires_grad_(True)
        if cfg.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        return transformer

    def _build_latent_cache(self):
        """Encode the scene cache's clips once (rank 0; the others wait), see :mod:`gen3r.train.latent_cache`."""
        import torch.distributed as dist

        d, cfg = self.config.data, self.config
        assert d.cache is not None, "validate requires data.cache with latent_cache"
        frames = SceneCache(d.cache).settings["num_frames"]
        if d.num_frames != frames:
            raise Gen3RError(f"latent_cache needs whole clips: data.num_frames {d.num_frames} differs from the "
                             f"{frames} frames of the scene cache {d.cache}")
        folder = Path(cfg.output_dir) / "latents"
        source = {"checkpoint": str(cfg.checkpoint), "adapter": str(self.adapter_folder)}
        names = None if self.pipe.latent_halves == 2 else APPEARANCE_POSTERIORS
        if self.dist.is_main:
            LatentCache.build(folder, self.pipe, d.cache, d.max_scenes, source=source, names=names)
        if self.dist.distributed:
            dist.barrier()
        return LatentCache(folder)

    # -- randomness ----------------------------------------------------------------------------
    def random(self, micro_step: int) -> DitRandom:
        return DitRandom(**{name: self.generator(micro_step, stream) for name, stream in STREAMS.items()})

    def _draw_modes(self, batch: int, generator: torch.Generator) -> list[str]:
        probs = self.config.condition_probs
        weights = torch.tensor([probs.get(m, 0.0) for m in MODE_ORDER], dtype=torch.float64)
        edges = torch.cumsum(weights / weights.sum(), 0)
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        return [MODE_ORDER[min(int((edges <= x).sum()), len(MODE_ORDER) - 1)] for x in u]

    # -- inputs --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_target(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Z0 (B, 16, f, H/8, 2W/8) = [Wan-VAE sample | adapter sample] of frames (B, F, 3, H, W)
        (the Wan-VAE sample alone for an appearance-only transformer)."""
        pipe = self.pipe
        mean, logvar = encode_video(pipe.wan_vae, frames.to(module_dtype(pipe.wan_vae)))
        appearance = sample_posterior(mean.float(), logvar.float(), randn(mean.shape, generator).to(mean.device))
        if pipe.latent_halves == 1:
            return appearance
        posterior = pipe.encode_geometry(frames)
        noise = randn(posterior.mean.shape, generator).to(posterior.mean.device)
        geometry = sample_posterior(posterior.mean.float(), posterior.logvar.float(), noise)
        return torch.cat([appearance, geometry], dim=-1)

    @torch.no_grad()
    def build_inputs(self, batch: dict[str, Any], rand: DitRandom) -> DitInputs:
        """Everything the DiT sees for ``batch``, built with the inference pipeline's functions."""
        pipe, cfg, device = self.pipe, self.config, self.device
        frames = batch["frames"].to(device)
        b, num_frames, _, height, width = frames.shape
        dtype = module_dtype(self.model)
        modes = self._draw_modes(b, rand.choices)
        drop_prompt = torch.rand(b, generator=rand.choices) < cfg.prompt_dropout
        prompts = ["" if d else c for d, c in zip(drop_prompt.tolist(), batch["caption"])]
        camera_dropped = bool(torch.rand(1, generator=rand.choices) < cfg.camera_dropout)
        idx = torch.randint(*self.t_range, (b,), generator=rand.choices)
        # diffusers leaves the scheduler's tables unannotated (tensors after __init__)
        sigmas = cast(torch.Tensor, self.scheduler_train.sigmas)[idx].float()
        timesteps = cast(torch.Tensor, self.scheduler_train.timesteps)[idx].float()

        if self.latents is not None:
            z0, y = self._cached_target_and_condition(batch["scene"], modes, num_frames, rand)
            z0, y = z0.to(device), y.to(device)
        else:
            z0 = self.encode_target(frames, rand.target)
            y = torch.cat([pipe.prepare_condition(frames[i:i + 1, condition_indices(mode, num_frames)], mode,
                                                  num_frames, rand.condition).to(device)
                           for i, mode in enumerate(modes)])
        eps = randn(z0.shape, rand.noise).to(device)
        s = sigmas.to(device).view(-1, 1, 1, 1, 1)
        x_t = (1 - s) * z0 + s * eps
        plucker = None if camera_dropped else torch.stack(
            [c.to(device).relative_to_first().plucker(height, width) for c in batch["cameras"]]).float()
        camera = pipe.pack_camera_input(plucker, b, num_frames, height, width, device, dtype)
        context = pipe.encode_prompt(prompts, device, dtype)
        clip = pipe.encode_clip(frames[:, 0], dtype).to(device) if self.model.config["image_dim"] else None
        return DitInputs(hidden_states=torch.cat([x_t, y], dim=1).to(dtype), timestep=timesteps.to(device),
                         encoder_hidden_states=context, encoder_hidden_states_image=clip, camera=camera,
                         target=(eps - z0).float(), sigmas=sigmas, modes=modes, prompts=prompts,
                         camera_dropped=camera_dropped)

    def _cached_target_and_condition(self, scenes: list[int], modes: list[str], num_frames: int,
                                     rand: DitRandom) -> tuple[torch.Tensor, torch.Tensor]:
        """Z0 and the condition ``y`` from the latent cache, with the random draws of the uncached path
        (:meth:`encode_target`, then one :func:`condition_from_posterior` per sample)."""
        latents = self.latents
        assert latents is not None, "build_inputs reads the latent cache only when there is one"
        halves = self.pipe.latent_halves
        app_mean, app_logvar = latents.get(scenes, "appearance")
        parts = [sample_posterior(app_mean, app_logvar, randn(app_mean.shape, rand.target))]
        if halves == 2:
            geo_mean, geo_logvar = latents.get(scenes, "geometry")
            parts.append(sample_posterior(geo_mean, geo_logvar, randn(geo_mean.shape, rand.target)))
        conditions = []
        for i, mode in enumerate(modes):
            if mode == "allview":
                mean, logvar = app_mean[i:i + 1], app_logvar[i:i + 1]
            else:
                mean, logvar = latents.get(scenes[i:i + 1], f"cond_{mode}")
            conditions.append(condition_from_posterior(mean, logvar, mode, num_frames, rand.condition, halves))
        return torch.cat(parts, dim=-1), torch.cat(conditions)

    def prepare(self, batch: dict[str, Any], micro_step: int) -> DitInputs:
        return self.build_inputs(batch, self.random(micro_step))

    def loss(self, inputs: DitInputs, micro_step: int) -> dict[str, Any]:
        pred = self.wrapped(hidden_states=inputs.hidden_states, timestep=inputs.timestep,
                            encoder_hidden_states=inputs.encoder_hidden_states,
                            encoder_hidden_states_image=inputs.encoder_hidden_states_image,
                            camera=inputs.camera, return_dict=False)[0]
        loss = flow_matching_loss(pred, inputs.target, self.config.loss_threshold)
        counts = {m: sum(x == m for x in inputs.modes) / len(inputs.modes) for m in MODE_ORDER}
        return {"loss": loss, "sigma": float(inputs.sigmas.mean()), "camera_dropped": float(inputs.camera_dropped),
                **{f"mode_{m}": v for m, v in counts.items()}}


def train_dit(config: DitTrainConfig | str | Path, *, pipeline=None, resume: bool = False,
              max_steps: int | None = None, allow_config_changes: bool = False) -> TrainResult:
    """Run stage 2 from a config (object or JSON file); ``resume`` continues from the newest
    checkpoint in ``config.output_dir``. Returns the :class:`~gen3r.train.loop.TrainResult`."""
    return run_training(DitTrainer, DitTrainConfig, config, pipeline=pipeline, resume=resume, max_steps=max_steps,
                        allow_config_changes=allow_config_changes)
