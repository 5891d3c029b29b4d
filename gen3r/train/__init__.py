"""Training code for Gen3R: stage 1 (geometry adapter) and stage 2 (DiT fine-tune).

:mod:`gen3r.train.losses` holds the stage-1 losses as pure functions.
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
    "adapter_training_loss",
    "adaptive_kl_weight",
    "camera_consistency_loss",
    "camera_token_loss",
    "cosine_similarity_loss",
    "depth_consistency_loss",
    "image_token_loss",
    "kl_alignment_loss",
    "point_consistency_loss",
]
