"""The training stages by name, and how a trained component is found in a run folder."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from gen3r.errors import Gen3RError

#: stage -> (config class, train function), as "module:attribute" paths (imported on use).
_ENTRIES: dict[str, tuple[str, str]] = {
    "vggt": ("gen3r.train.config:VggtTrainConfig", "gen3r.train.vggt_trainer:train_vggt"),
    "vae": ("gen3r.train.config:VaeTrainConfig", "gen3r.train.vae_trainer:train_vae"),
    "adapter": ("gen3r.train.config:AdapterTrainConfig", "gen3r.train.adapter_trainer:train_adapter"),
    "dit": ("gen3r.train.config:DitTrainConfig", "gen3r.train.dit_trainer:train_dit"),
}


#: A run folder holds ``checkpoint-<step>`` folders; a complete one has its training state file.
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "training_state.pt"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)
             and p.name[len(CHECKPOINT_PREFIX):].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def _attr(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def stage_entry(stage: str) -> tuple[type, Callable]:
    """(config class, train function) of ``stage``."""
    if stage not in _ENTRIES:
        raise Gen3RError(f"unknown training stage {stage!r}; choose one of {', '.join(_ENTRIES)}")
    config_path, train_path = _ENTRIES[stage]
    return _attr(config_path), _attr(train_path)


def resolve_component(path: str | Path, component: str) -> Path:
    """The ``component`` folder (config.json + weights) that ``path`` names: the folder itself, a
    ``checkpoint-<step>`` folder holding it, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):  # a run folder has config.json too
        return path
    if (path / component / "config.json").is_file():
        return path / component
    found = list_checkpoints(path)
    if found and (found[-1] / component / "config.json").is_file():
        return found[-1] / component
    raise Gen3RError(f"{path} holds no trained {component}: pass a {component} folder, a checkpoint-<step> "
                     "folder or a run folder with checkpoints")
