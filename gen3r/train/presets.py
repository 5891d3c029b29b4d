"""Named training settings of every stage (``gen3r train STAGE --preset NAME``).

* ``smoke``: tiny models and a few steps on procedural scenes rendered on the fly (< 1 min on a
  CPU, a ``metrics.jsonl`` record every step); what CI runs.
* ``mini``: the recipe of the shipped mini Gen3R (``docs/mini-model.md``), trained in the
  method's order on the pre-rendered scene cache ``runs/cache/train`` (``gen3r cache``):
  ``vggt`` and ``vae`` -> ``gen3r assemble`` (base checkpoint) -> ``adapter`` -> ``dit``.

:data:`MINI_ARCH` holds the sizes of every component of the mini model (the full-size classes with
small sizes); they travel with the weights in each component's ``config.json``.
"""

from __future__ import annotations

import copy
from typing import Any

from gen3r.errors import Gen3RError

#: Native clip of the mini model: frames, height, width (see docs/mini-model.md for the choice).
MINI_FRAMES, MINI_SIZE = 17, 112
#: Where the mini recipe keeps its data and runs (relative to the working directory; git-ignored).
MINI_CACHE = "runs/cache/train"
MINI_BASE = "runs/mini/base"

MINI_ARCH: dict[str, dict[str, Any]] = {
    # VGGT: 6 alternating frame/global steps of width 96 (tokens 2E = 192), 2-layer DINO-style patch
    # embedding, taps 1/3/4/5 for the DPT heads and the adapter.
    "vggt": dict(img_size=MINI_SIZE, patch_size=14, embed_dim=96, depth=6, num_heads=4, mlp_ratio=4.0,
                 patch_embed_depth=2, patch_embed_num_heads=4, camera_trunk_depth=2, camera_num_heads=4,
                 dpt_features=32, dpt_out_channels=[32, 64, 64, 64], dpt_head_features_2=16,
                 intermediate_layer_idx=[1, 3, 4, 5]),
    # Wan VAE (diffusers AutoencoderKLWan): base width 16 instead of 96, one residual block per stage;
    # latents_mean/std are fitted after training (gen3r.train.vae_trainer.calibrate_latents).
    "wan_vae": dict(base_dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0),
    # Geometry adapter: input 5 x 192 VGGT channels, hidden width 16; identity latent normalisation
    # (the KL alignment to the VAE posterior sets the latent scale).
    "geo_adapter": dict(latent_channels=16, hidden_dim=16, input_dim=960, output_dim=960, resample_scale=10,
                        dim_mult=[4, 2, 1, 1], num_res_blocks=1, latents_mean=[0.0] * 16, latents_std=[1.0] * 16),
    # Joint DiT: 6 blocks of width 128 (4 heads x 32), camera adapter on 24 Plücker channels.
    "transformer": dict(num_attention_heads=4, attention_head_dim=32, in_channels=36, out_channels=16,
                        text_dim=64, freq_dim=64, ffn_dim=384, num_layers=6, image_dim=64, added_kv_proj_dim=128,
                        camera_in_channels=24),
    # Text tower: a small UMT5 encoder (random, frozen: the real one is pretrained and frozen too).
    "text_encoder": dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=32,
                         relative_attention_max_distance=128, feed_forward_proj="gated-gelu", is_gated_act=True,
                         dense_act_fn="gelu_new", dropout_rate=0.0, layer_norm_epsilon=1e-6),
    # CLIP vision tower: 224 px / 14 = 256 patches + class token = the 257 image tokens the DiT expects.
    "clip_image_encoder": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5,
                               projection_dim=64),
}

#: Tiny sizes for the smoke presets (seconds per step on a CPU).
SMOKE_ARCH: dict[str, dict[str, Any]] = {
    "vggt": dict(img_size=112, patch_size=14, embed_dim=16, depth=4, num_heads=2, mlp_ratio=2.0,
                 patch_embed_depth=1, patch_embed_num_heads=2, camera_trunk_depth=1, camera_num_heads=2,
                 camera_iterations=2, dpt_features=8, dpt_out_channels=[8, 8, 8, 8], dpt_head_features_2=8,
                 intermediate_layer_idx=[0, 1, 2, 3]),
    "wan_vae": dict(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0),
    "geo_adapter": dict(latent_channels=16, hidden_dim=4, input_dim=160, output_dim=160, resample_scale=10,
                        dim_mult=[4, 2, 1, 1], num_res_blocks=1, latents_mean=[0.0] * 16, latents_std=[1.0] * 16),
    "transformer": dict(num_attention_heads=2, attention_head_dim=16, in_channels=36, out_channels=16, text_dim=16,
                        freq_dim=16, ffn_dim=32, num_layers=1, image_dim=16, added_kv_proj_dim=32,
                        camera_in_channels=24),
    "text_encoder": dict(d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, relative_attention_num_buckets=32,
                         relative_attention_max_distance=128, feed_forward_proj="gated-gelu", is_gated_act=True,
                         dense_act_fn="gelu_new", dropout_rate=0.0, layer_norm_epsilon=1e-6),
    "clip_image_encoder": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                               image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5,
                               projection_dim=16),
}


def appearance_only(arch: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``arch`` with an appearance-only DiT (the "2-stage" ablation: an RGB video model, no geometry
    half, plain RoPE); every other component and size unchanged."""
    out = copy.deepcopy(arch)
    out["transformer"].update(appearance_only=True, shared_width_rope=False)
    return out


#: Architectures by name (``gen3r assemble --arch``).
ARCHS = {"mini": MINI_ARCH, "mini-2stage": appearance_only(MINI_ARCH), "smoke": SMOKE_ARCH,
         "smoke-2stage": appearance_only(SMOKE_ARCH)}
#: Sampling defaults of the mini model (stored in its model_index.json).
MINI_CALL_DEFAULTS = {"num_frames": MINI_FRAMES, "height": MINI_SIZE, "width": MINI_SIZE,
                      "num_inference_steps": 25, "guidance_scale": 3.0}

_SMOKE_DATA = {"num_frames": 5, "height": 112, "width": 112, "batch_size": 1,
               "procedural": {"num_scenes": 2, "render_frames": 5, "kind": "random", "trajectory": "random"}}
_SMOKE_RUN = {"max_steps": 3, "save_every": 2, "log_every": 1, "grad_accum_steps": 1, "keep_last": 2}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "vggt": {
        "smoke": {**_SMOKE_RUN, "model": SMOKE_ARCH["vggt"], "data": _SMOKE_DATA},
        "mini": {"output_dir": "runs/mini/vggt", "model": MINI_ARCH["vggt"], "max_steps": 3500, "save_every": 500,
                 "log_every": 10, "grad_accum_steps": 1,
                 "data": {"cache": MINI_CACHE, "num_frames": 9, "height": MINI_SIZE, "width": MINI_SIZE,
                          "max_stride": 2, "batch_size": 2},
                 "optim": {"lr": 3e-4, "weight_decay": 0.05, "warmup_steps": 200, "min_lr_ratio": 0.05,
                           "max_grad_norm": 1.0}},
    },
    "vae": {
        "smoke": {**_SMOKE_RUN, "model": SMOKE_ARCH["wan_vae"], "crop": 32, "data": _SMOKE_DATA},
        # Whole 17-frame clips: trained on 5-frame clips (2 latent frames), the causal decoder falls
        # apart from the 3rd latent frame on (L1 0.23 -> 0.56 by frame 8); small crops keep it cheap.
        # No KL: with kl_weight 1e-6 Adam drove the log-variance to the prior within 300 steps (KL
        # 4517 -> 11) while the decoder still ignored the latent, and L1 rose to 0.47 (worse than the
        # mean colour, 0.31); the latent scale is fixed afterwards by calibrate_latents.
        "mini": {"output_dir": "runs/mini/vae", "model": MINI_ARCH["wan_vae"], "max_steps": 4000, "save_every": 250,
                 "log_every": 10, "grad_accum_steps": 1, "crop": 32, "kl_weight": 0.0, "gradient_weight": 0.5,
                 "init_logvar": -8.0,
                 "data": {"cache": MINI_CACHE, "num_frames": MINI_FRAMES, "height": MINI_SIZE, "width": MINI_SIZE,
                          "max_stride": 1, "batch_size": 2},
                 # lr 1e-3: overfitting one batch, 3e-4 stays at the mean colour for 150 steps, 3e-3 oscillates
                 "optim": {"lr": 1e-3, "weight_decay": 1e-4, "warmup_steps": 100, "min_lr_ratio": 0.05,
                           "max_grad_norm": 1.0}},
    },
    "adapter": {
        "smoke": {**_SMOKE_RUN, "data": {**_SMOKE_DATA, "max_stride": 1}},
        # 9-frame clips (stride 1-2) keep a step cheap; the causal adapter runs on 17 frames after.
        "mini": {"output_dir": "runs/mini/adapter", "checkpoint": MINI_BASE, "max_steps": 1500, "save_every": 250,
                 "log_every": 10, "grad_accum_steps": 1, "init_logvar": -8.0,
                 "data": {"cache": MINI_CACHE, "num_frames": 9, "height": MINI_SIZE, "width": MINI_SIZE,
                          "max_stride": 2, "batch_size": 2},
                 "optim": {"lr": 5e-4, "weight_decay": 1e-4, "warmup_steps": 100, "min_lr_ratio": 0.05,
                           "max_grad_norm": 1.0}},
    },
    "dit": {
        "smoke": {**_SMOKE_RUN, "gradient_checkpointing": False, "data": {**_SMOKE_DATA, "max_stride": 1}},
        "mini": {"output_dir": "runs/mini/dit", "checkpoint": MINI_BASE, "adapter_path": "runs/mini/adapter",
                 "max_steps": 1500, "save_every": 250, "log_every": 10, "grad_accum_steps": 1,
                 "gradient_checkpointing": False, "latent_cache": True,
                 "data": {"cache": MINI_CACHE, "max_scenes": 640, "num_frames": MINI_FRAMES, "height": MINI_SIZE,
                          "width": MINI_SIZE, "max_stride": 1, "batch_size": 4},
                 "optim": {"lr": 5e-4, "weight_decay": 0.01, "eps": 1e-8, "warmup_steps": 200, "min_lr_ratio": 0.05,
                           "max_grad_norm": 1.0, "initial_grad_norm_ratio": 1.0}},
    },
}


def preset(stage: str, name: str) -> dict[str, Any]:
    """A fresh copy of the config dict of preset ``name`` of ``stage``; Gen3RError names the choices."""
    if stage not in PRESETS:
        raise Gen3RError(f"unknown training stage {stage!r}; choose one of {', '.join(PRESETS)}")
    if name not in PRESETS[stage]:
        raise Gen3RError(f"stage {stage} has no preset {name!r}; choose one of {', '.join(PRESETS[stage])}")
    return copy.deepcopy(PRESETS[stage][name])


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` applied; nested objects merge key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Second VGGT phase (``--resume`` in runs/mini/vggt after ``mini``): after the first, the dev-set
# translation error equals the translation itself (the head predicts ~zero translation) while
# rotations and depth are learnt, so the camera loss and its translation term weigh more.
PRESETS["vggt"]["mini-cameras"] = merge(PRESETS["vggt"]["mini"], {
    "max_steps": 5000, "loss_weights": {"camera": 10.0, "translation": 5.0}})

# Second VAE phase (a new run in runs/mini/vae2 from the first run's weights): after 4000 steps the
# reconstruction L1 still fell (0.25 -> 0.22 over the last 1000 steps as the rate decayed), and the dev
# PSNR (17.6 dB) was under copying frame 0 on 3 of 8 scenes, which caps what generation can reach.
# Another seed: other clips and crops than the first run drew.
PRESETS["vae"]["mini-refine"] = merge(PRESETS["vae"]["mini"], {
    "output_dir": "runs/mini/vae2", "init": "runs/mini/vae", "max_steps": 4000, "seed": 1,
    "optim": {"lr": 5e-4, "warmup_steps": 50}})

# Second pass of the later stages on the refined VAE (runs/mini/base2 = base with the refined VAE,
# its latent statistics refitted, and the first pass's adapter and DiT): the adapter continues from
# the first pass's weights (its KL now aligns to the refined posterior) and the DiT continues from
# the first pass's weights on latents of the refined models (its loss was still falling at 1500).
MINI_BASE2 = "runs/mini/base2"
PRESETS["adapter"]["mini-refine"] = merge(PRESETS["adapter"]["mini"], {
    "output_dir": "runs/mini/adapter2", "checkpoint": MINI_BASE2, "init": "checkpoint", "init_logvar": None,
    "max_steps": 600, "seed": 1, "optim": {"lr": 2e-4, "warmup_steps": 50}})
PRESETS["dit"]["mini-refine"] = merge(PRESETS["dit"]["mini"], {
    "output_dir": "runs/mini/dit2", "checkpoint": MINI_BASE2, "adapter_path": "runs/mini/adapter2",
    "max_steps": 1800, "seed": 1, "data": {"max_scenes": 800}, "optim": {"lr": 3e-4, "warmup_steps": 50}})


# The released recipe (the config classes' defaults are the official ``train_geo_adapter_pl.sh`` /
# ``train_dit.sh`` settings): a named starting point for the full checkpoint and the official data
# layout, e.g. ``gen3r train dit --preset official --checkpoint checkpoints/Gen3R --data-root data``.
PRESETS["adapter"]["official"] = {"output_dir": "runs/adapter", "checkpoint": "checkpoints/Gen3R",
                                  "data": {"root": "data"}}
PRESETS["dit"]["official"] = {"output_dir": "runs/dit", "checkpoint": "checkpoints/Gen3R",
                              "adapter_path": "runs/adapter", "data": {"root": "data"}}


# Ablations of the mini model (issue 14, docs/benchmarks.md "Quality of the mini model"): each is
# trained with the same data, steps and sizes as the stage it replaces, in the same two passes.
# "w/o KL": the geometry adapter without the KL alignment to the VAE posterior (the other loss
# weights as the config's defaults), then the joint DiT retrained on its latents.
ABLATIONS = "runs/ablations"
_NO_KL = {"loss_weights": {"recon": 0.5, "similarity": 0.1, "kl": 0.0}}
PRESETS["adapter"]["mini-nokl"] = merge(PRESETS["adapter"]["mini"], {
    **_NO_KL, "output_dir": f"{ABLATIONS}/nokl/adapter"})
PRESETS["adapter"]["mini-nokl-refine"] = merge(PRESETS["adapter"]["mini-refine"], {
    **_NO_KL, "output_dir": f"{ABLATIONS}/nokl/adapter2", "checkpoint": f"{ABLATIONS}/nokl/base2"})
PRESETS["dit"]["mini-nokl"] = merge(PRESETS["dit"]["mini"], {
    "output_dir": f"{ABLATIONS}/nokl/dit", "adapter_path": f"{ABLATIONS}/nokl/adapter"})
# "2-stage": an appearance-only DiT (runs/ablations/2stage/base: runs/mini/base with a fresh DiT of the
# ``mini-2stage`` sizes; base2 likewise from runs/mini/base2), then mini VGGT on its generated frames.
# An appearance-only DiT never reads geometry latents: no adapter run to load (``adapter_path`` None).
PRESETS["dit"]["mini-2stage"] = merge(PRESETS["dit"]["mini"], {
    "output_dir": f"{ABLATIONS}/2stage/dit", "checkpoint": f"{ABLATIONS}/2stage/base", "adapter_path": None})
PRESETS["dit"]["mini-2stage-refine"] = merge(PRESETS["dit"]["mini-refine"], {
    "output_dir": f"{ABLATIONS}/2stage/dit2", "checkpoint": f"{ABLATIONS}/2stage/base2", "adapter_path": None})
PRESETS["dit"]["mini-nokl-refine"] = merge(PRESETS["dit"]["mini-refine"], {
    "output_dir": f"{ABLATIONS}/nokl/dit2", "checkpoint": f"{ABLATIONS}/nokl/base2",
    "adapter_path": f"{ABLATIONS}/nokl/adapter2"})
