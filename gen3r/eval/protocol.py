"""The names of the evaluation protocol: datasets, tasks and methods (the paper's section 4).

Plain constants, imported without torch, so the command line lists them without loading the
evaluation code (:mod:`gen3r.eval.runner` maps each dataset name to its reader).
"""

from __future__ import annotations

#: Dataset names of ``gen3r eval --dataset`` (readers in :mod:`gen3r.eval.datasets`).
DATASET_NAMES = ("re10k", "dl3dv", "co3d", "wildrgbd", "tartanair", "official")
TASKS = ("1view", "2view", "recon")
#: Evaluation task -> the pipeline task that runs it.
PIPELINE_TASK = {"1view": "1view", "2view": "2view", "recon": "allview"}
#: Methods in the row order of the paper's tables (baselines first, ours last).
METHODS = ("copy_first", "vggt", "vae_only", "two_stage", "gen3r")
METHOD_LABELS = {"copy_first": "Copy frame 0", "vggt": "VGGT", "vae_only": "Ours (VAE only)", "two_stage": "2-Stage",
                 "gen3r": "Ours"}
#: Baselines run when none are named: the ones the paper compares against for the task, plus the
#: appearance floor of copying the first condition frame to every frame (1view/2view).
DEFAULT_BASELINES = {"1view": ("copy_first", "vggt", "two_stage"), "2view": ("copy_first", "vggt", "two_stage"),
                     "recon": ("vggt", "vae_only")}
