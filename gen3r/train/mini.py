"""Assemble a mini Gen3R checkpoint (our layout) from trained stages and fresh components.

The mini recipe trains in the method's order (``docs/mini-model.md``): VGGT and the Wan VAE from
scratch, then the adapter against them, then the joint DiT. :func:`assemble` writes the checkpoint
each later stage (and finally the shipped model) loads: every component is either taken from a
trained run / component folder, copied from a ``base`` checkpoint, or freshly initialised (seeded)
with the sizes of :data:`gen3r.train.presets.MINI_ARCH`. A freshly trained VAE gets its latent
normalisation fitted on the scene cache (:func:`gen3r.train.vae_trainer.calibrate_latents`).

Text and CLIP towers of the mini model are small random encoders kept frozen (the real ones are
pretrained and frozen too; no pretrained weights exist at this size): they give the DiT a fixed,
deterministic embedding of the prompt and of the first frame. The tokenizer is a word-level umT5-style
tokenizer over the caption vocabulary of the procedural scenes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3r.data.cache import SceneCache
from gen3r.data.procedural.layout import KINDS, captions, sample_layout
from gen3r.data.procedural.trajectories import TRAJECTORIES
from gen3r.errors import Gen3RError
from gen3r.models.geo_adapter import GeometryAdapter
from gen3r.models.text_encoder import build_word_tokenizer
from gen3r.models.transformer import Gen3RTransformer3DModel
from gen3r.models.vggt import VGGT
from gen3r.pipeline import Gen3RPipeline
from gen3r.pipeline.loading import load_diffusers_model
from gen3r.train.loop import seeded
from gen3r.train.presets import MINI_ARCH, MINI_CALL_DEFAULTS
from gen3r.train.stages import resolve_component
from gen3r.train.vae_trainer import calibrate_latents

logger = logging.getLogger(__name__)

#: Components a trained run can provide, by the name of the stage that trains them.
TRAINED = {"vggt": "vggt", "vae": "wan_vae", "adapter": "geo_adapter", "dit": "transformer"}
#: Scenes of the cache used to fit the VAE latent statistics.
CALIBRATION_SCENES = 64


def caption_words(captions: list[str]) -> list[str]:
    """The distinct words of ``captions`` (lower case, punctuation split off)."""
    return sorted({w for text in captions for w in re.findall(r"[a-z0-9']+", text.lower())})


def procedural_vocabulary(num_scenes: int = 2000) -> list[str]:
    """Words of the procedural scene generator's captions (from the layouts of seeds 0..n-1, no rendering)."""
    texts = []
    for seed in range(num_scenes):
        rng = np.random.default_rng(seed)
        layout = sample_layout(rng, KINDS[seed % len(KINDS)], None)
        texts += captions(layout, TRAJECTORIES[seed % len(TRAJECTORIES)])
    return caption_words(texts)


def fresh_components(arch: Mapping[str, Mapping[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Every component of a mini Gen3R, untrained (seeded; component ``i`` uses ``seed + i``).

    The transformer's output projection starts at zero (the DiT is trained from scratch here, not
    fine-tuned), so its first prediction is zero velocity.
    """
    from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
    from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    tokenizer = build_word_tokenizer(procedural_vocabulary())
    text_config = UMT5Config(vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1,
                             decoder_start_token_id=0, **arch["text_encoder"])
    clip_config = CLIPVisionConfig(**arch["clip_image_encoder"])
    transformer = seeded(lambda: Gen3RTransformer3DModel(**arch["transformer"]), seed + 3)
    torch.nn.init.zeros_(transformer.proj_out.weight)
    torch.nn.init.zeros_(transformer.proj_out.bias)
    return {
        "tokenizer": tokenizer,
        "text_encoder": seeded(lambda: UMT5EncoderModel(text_config), seed + 1).eval(),
        "clip_image_encoder": seeded(lambda: CLIPVisionModel(clip_config), seed + 2).eval(),
        "transformer": transformer.eval(),
        "wan_vae": seeded(lambda: AutoencoderKLWan(**arch["wan_vae"]), seed + 4).eval(),
        "geo_adapter": seeded(lambda: GeometryAdapter(**arch["geo_adapter"]), seed + 5).eval(),
        "vggt": seeded(lambda: VGGT(**arch["vggt"]), seed + 6).eval(),
        "scheduler": FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=2.0),
    }


def load_trained(component: str, path: str | Path) -> torch.nn.Module:
    """A trained ``component`` (vggt, wan_vae, geo_adapter, transformer) from a run, checkpoint or
    component folder (strict load, float32)."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan

    classes = {"vggt": VGGT, "wan_vae": AutoencoderKLWan, "geo_adapter": GeometryAdapter,
               "transformer": Gen3RTransformer3DModel}
    folder = resolve_component(path, component)
    logger.info("%s from %s", component, folder)
    return load_diffusers_model(classes[component], folder, torch.float32)


def calibration_clips(cache: str | Path, num_scenes: int = CALIBRATION_SCENES):
    """Whole clips (1, F, 3, H, W) in [0, 1] of the first ``num_scenes`` scenes of a scene cache."""
    scenes = SceneCache(cache)
    frames = scenes.settings["num_frames"]
    usable = frames - (frames - 1) % 4  # the VAE takes 4k+1 frames
    for i in range(min(num_scenes, len(scenes))):
        yield scenes[i].frames(slice(0, usable))[None]


def assemble(out: str | Path, *, base: str | Path | None = None, trained: Mapping[str, str | Path] | None = None,
             arch: Mapping[str, Mapping[str, Any]] | None = None, cache: str | Path | None = None,
             dtype: torch.dtype | None = None, seed: int = 0, overwrite: bool = False,
             call_defaults: Mapping[str, Any] | None = None, fresh: Sequence[str] = ()) -> Path:
    """Write a mini Gen3R checkpoint (our layout) to ``out``, atomically.

    ``trained``: stage name (``vggt``, ``vae``, ``adapter``, ``dit``) -> run / checkpoint / component
    folder. Components not given come from ``base`` (a checkpoint folder) or, without it, are fresh
    (:func:`fresh_components` with ``arch``, default :data:`~gen3r.train.presets.MINI_ARCH`).
    ``fresh``: stages whose component is built fresh from ``arch`` even when ``base`` has one (e.g.
    ``("dit",)`` with the ``mini-2stage`` sizes: the base models with an untrained appearance-only DiT).
    ``cache``: the scene cache on which a trained VAE's latent statistics are fitted (required
    when ``trained`` has ``vae``). ``dtype``: the stored dtype (e.g. float16 for the shipped copy).
    ``call_defaults``: the checkpoint's sampling defaults (default: those of ``base``, else
    :data:`~gen3r.train.presets.MINI_CALL_DEFAULTS`).
    """
    trained = dict(trained or {})
    unknown = sorted((set(trained) | set(fresh)) - set(TRAINED))
    if unknown:
        raise Gen3RError(f"unknown trained stage(s) {unknown}; use {', '.join(TRAINED)}")
    both = sorted(set(trained) & set(fresh))
    if both:
        raise Gen3RError(f"stage(s) {both} are both trained and fresh; give each stage one source")
    if "vae" in trained and cache is None:
        raise Gen3RError("a trained VAE needs --cache (the scene cache its latent statistics are fitted on)")
    if base is not None:
        base_pipe = Gen3RPipeline.from_pretrained(base, torch_dtype=torch.float32)
        components = dict(base_pipe.components)
        call_defaults = base_pipe.call_defaults if call_defaults is None else call_defaults
    else:
        components = fresh_components(arch or MINI_ARCH, seed)
    if fresh and base is not None:
        new = fresh_components(arch or MINI_ARCH, seed)
        components.update({TRAINED[stage]: new[TRAINED[stage]] for stage in fresh})
    for stage, path in trained.items():
        components[TRAINED[stage]] = load_trained(TRAINED[stage], path).eval()
    if "vae" in trained:
        assert cache is not None, "checked before any model loads"
        calibrate_latents(components["wan_vae"], calibration_clips(cache))
    pipe = Gen3RPipeline(**components)
    pipe.call_defaults.update(MINI_CALL_DEFAULTS if call_defaults is None else call_defaults)
    if dtype is not None:
        for name in ("text_encoder", "clip_image_encoder", "transformer", "wan_vae", "geo_adapter", "vggt"):
            getattr(pipe, name).to(dtype)
    pipe.save_converted(out, overwrite=overwrite)
    logger.info("wrote mini checkpoint %s", out)
    return Path(out)
