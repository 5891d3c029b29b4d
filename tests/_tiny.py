"""Helpers shared by the tests that use the tiny official fixture (``tests/data/official-tiny``).

The fixture's README says what every stored tensor is. Its comparison conventions: ``NAME__shape``
is the shape of a tensor too large to store, ``NAME__sK`` a copy strided by K over the last two
(spatial) axes and ``NAME__stats`` its :func:`tensor_stats`. The fixture tensor files themselves are
loaded once per session by the ``tiny_inputs`` / ``tiny_stages`` / ``tiny_task`` fixtures of
``conftest.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]  # the repository
DATA = Path(__file__).parent / "data"
TINY = DATA / "official-tiny"
TINY_CHECKPOINT = TINY / "checkpoint"
OFFICIAL_KEYS = DATA / "official-keys"
WEIGHTS = "diffusion_pytorch_model.safetensors"  # weight file name of the official component folders


def tiny_arch(component: str) -> dict:
    """A fresh copy of ``component``'s section of the tiny checkpoint's ``gen3r_arch.json``."""
    return json.loads((TINY_CHECKPOINT / "gen3r_arch.json").read_text())[component]


def official_manifest(component: str) -> dict:
    """The full-size key/shape manifest of ``component`` (``tests/data/official-keys/<component>.json``)."""
    return json.loads((OFFICIAL_KEYS / f"{component}.json").read_text())


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref|, computed in float64."""
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def tensor_stats(x: torch.Tensor) -> torch.Tensor:
    """The fixture's ``__stats`` vector of ``x``: [sum, sum |x|, sum x^2, min, max, mean] in float64."""
    d = x.double()
    return torch.stack([d.sum(), d.abs().sum(), (d * d).sum(), d.min(), d.max(), d.mean()])


def strided_copies(ours: torch.Tensor, ref: Mapping[str, torch.Tensor], name: str) -> dict[int, torch.Tensor]:
    """Check ``ours`` has the shape ``ref[name__shape]``; return the stored copies ``name__sK`` by K.

    At least one strided copy must exist; they come in the fixture file's order.
    """
    assert list(ours.shape) == ref[f"{name}__shape"].tolist(), name
    prefix = f"{name}__s"
    copies = {int(key[len(prefix):]): value for key, value in ref.items()
              if key.startswith(prefix) and key[len(prefix):].isdigit()}
    assert copies, f"the fixture stores no strided copy of {name}"
    return copies


def write_component_variant(tmp_path: Path, component_dir: Path, weight_file: str,
                            edit: Callable[[dict[str, torch.Tensor]], object] | None = None,
                            copy: Iterable[str] = ("config.json",)) -> Path:
    """Copy of a checkpoint component folder whose weights were changed by ``edit``.

    Writes ``tmp_path / component_dir.name`` with the files named in ``copy`` copied unchanged and
    ``weight_file`` re-saved after ``edit`` changed its state dict in place (its return value is
    ignored, so ``lambda sd: sd.pop(key)`` works). For the strict-loading failure tests.
    """
    folder, state = _start_copy(tmp_path, component_dir, weight_file, copy)
    if edit is not None:
        edit(state)
    save_file(state, str(folder / weight_file))
    return folder


def write_sharded_component(tmp_path: Path, component_dir: Path, weight_file: str, shard_files: Sequence[str],
                            copy: Iterable[str] = ("config.json",)) -> Path:
    """Copy of a checkpoint component folder with ``weight_file`` split over ``shard_files``.

    Writes ``tmp_path / component_dir.name``; the sorted keys are dealt to the shards in turn (for two
    shards: even and odd positions), so every shard holds part of every layer.
    """
    folder, state = _start_copy(tmp_path, component_dir, weight_file, copy)
    keys = sorted(state)
    for index, shard in enumerate(shard_files):
        save_file({key: state[key] for key in keys[index::len(shard_files)]}, str(folder / shard))
    return folder


def _start_copy(tmp_path: Path, component_dir: Path, weight_file: str,
                copy: Iterable[str]) -> tuple[Path, dict[str, torch.Tensor]]:
    """Create ``tmp_path / component_dir.name`` with the ``copy`` files; return it and the weights."""
    folder = tmp_path / component_dir.name
    folder.mkdir()
    for name in copy:
        shutil.copy(component_dir / name, folder / name)
    return folder, load_file(str(component_dir / weight_file))


def export_small_output(out: Path) -> Path:
    """A 3-frame output folder (24 x 32, constant depth 2, cameras stepping along z) as `gen3r generate`
    writes it, for the viewer and its bad-input tests."""
    import numpy as np

    from gen3r.cameras import Cameras
    from gen3r.geometry import unproject_depth
    from gen3r.io.results import export_scene

    ext = torch.eye(4).repeat(3, 1, 1)
    ext[:, 2, 3] = torch.tensor([0.0, 0.1, 0.2])
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 12], [0, 0, 1]]).repeat(3, 1, 1)
    cams = Cameras(extrinsics=ext, intrinsics=K, image_size=(24, 32))
    depth = np.full((3, 24, 32), 2.0, np.float32)
    wp = unproject_depth(depth, cams.extrinsics, cams.intrinsics, min_max_depth_mask=False)
    rgb = np.random.default_rng(0).random((3, 24, 32, 3)).astype(np.float32)
    return export_scene(out, rgb=rgb, depth=depth, world_points=wp, cameras=cams)


def small_scene_cache(out: Path) -> Path:
    """A 3-scene, 5-frame procedural scene cache (shards of 2) for the recipe and ablation tests."""
    from gen3r.data.cache import write_cache

    write_cache(out, range(3), num_frames=5, shard_size=2)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int = 2):
    """``torchrun --standalone --nproc-per-node nproc -m gen3r.cli args`` (one thread each, offline),
    run to completion from the repository root; returns the CompletedProcess (output captured)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           "-m", "gen3r.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
