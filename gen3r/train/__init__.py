"""Training code for Gen3R: the base models at mini scale (VGGT, Wan VAE), stage 1 (geometry
adapter) and stage 2 (joint DiT).

:mod:`gen3r.train.losses` holds the losses as pure functions; :mod:`gen3r.train.config` the JSON
configs and :mod:`gen3r.train.presets` the named ones; :mod:`gen3r.train.data` the datasets;
:mod:`gen3r.train.vggt_trainer`, :mod:`gen3r.train.vae_trainer`, :mod:`gen3r.train.adapter_trainer`
and :mod:`gen3r.train.dit_trainer` the stages (shared loop in :mod:`gen3r.train.loop`);
:mod:`gen3r.train.mini` assembles the mini model from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gen3r.train.losses import (
    adapter_training_loss,
    adaptive_kl_weight,
    camera_consistency_loss,
    camera_token_loss,
    cosine_similarity_loss,
    depth_consistency_loss,
    image_token_loss,
    kl_alignment_loss,
    point_consistency_loss,
    vae_training_loss,
    vggt_training_loss,
)

if TYPE_CHECKING:
    from gen3r.train.adapter_trainer import AdapterTrainer, train_adapter
    from gen3r.train.config import AdapterTrainConfig, DitTrainConfig, VaeTrainConfig, VggtTrainConfig, load_config
    from gen3r.train.data import CachedSceneDataset, OfficialLayoutDataset, ProceduralDataset, WeightedMultiDataset
    from gen3r.train.dit_trainer import DitTrainer, flow_matching_loss, train_dit
    from gen3r.train.vae_trainer import VaeTrainer, train_vae
    from gen3r.train.vggt_trainer import VggtTrainer, train_vggt

__all__ = [
    "AdapterTrainConfig",
    "AdapterTrainer",
    "CachedSceneDataset",
    "VaeTrainConfig",
    "VaeTrainer",
    "VggtTrainConfig",
    "VggtTrainer",
    "DitTrainConfig",
    "DitTrainer",
    "OfficialLayoutDataset",
    "ProceduralDataset",
    "WeightedMultiDataset",
    "adapter_training_loss",
    "adaptive_kl_weight",
    "camera_consistency_loss",
    "camera_token_loss",
    "cosine_similarity_loss",
    "depth_consistency_loss",
    "flow_matching_loss",
    "image_token_loss",
    "kl_alignment_loss",
    "load_config",
    "point_consistency_loss",
    "train_adapter",
    "train_dit",
    "train_vae",
    "train_vggt",
    "vae_training_loss",
    "vggt_training_loss",
]

_LAZY = {
    "AdapterTrainConfig": "gen3r.train.config", "DitTrainConfig": "gen3r.train.config",
    "load_config": "gen3r.train.config", "VggtTrainConfig": "gen3r.train.config",
    "VaeTrainConfig": "gen3r.train.config", "CachedSceneDataset": "gen3r.train.data",
    "VggtTrainer": "gen3r.train.vggt_trainer", "train_vggt": "gen3r.train.vggt_trainer",
    "VaeTrainer": "gen3r.train.vae_trainer", "train_vae": "gen3r.train.vae_trainer",
    "OfficialLayoutDataset": "gen3r.train.data", "ProceduralDataset": "gen3r.train.data",
    "WeightedMultiDataset": "gen3r.train.data",
    "AdapterTrainer": "gen3r.train.adapter_trainer", "train_adapter": "gen3r.train.adapter_trainer",
    "DitTrainer": "gen3r.train.dit_trainer", "train_dit": "gen3r.train.dit_trainer",
    "flow_matching_loss": "gen3r.train.dit_trainer",
}


def __getattr__(name: str):
    """Import the trainers lazily (they pull in diffusers / the pipeline)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gen3r.train' has no attribute {name!r}")
