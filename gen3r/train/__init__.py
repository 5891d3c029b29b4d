"""Training code for Gen3R: stage 1 (geometry adapter) and stage 2 (DiT fine-tune).

:mod:`gen3r.train.losses` holds the stage-1 losses as pure functions; :mod:`gen3r.train.config`
the JSON configs; :mod:`gen3r.train.data` the datasets; :mod:`gen3r.train.adapter_trainer` and
:mod:`gen3r.train.dit_trainer` the two stages (shared loop in :mod:`gen3r.train.loop`).
"""

from __future__ import annotations

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
)

__all__ = [
    "AdapterTrainConfig",
    "AdapterTrainer",
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
]

_LAZY = {
    "AdapterTrainConfig": "gen3r.train.config", "DitTrainConfig": "gen3r.train.config",
    "load_config": "gen3r.train.config",
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
