"""Pre-rendered procedural scenes: render once, read by every trainer and benchmark.

A cache folder holds shards ``shard-<first seed>/`` of ``shard_size`` consecutive seeds, each a
folder of plain ``.npy`` arrays (memory-mapped on read, so random access costs no decoding):

* ``rgb.npy`` (N, F, H, W, 3) uint8 (``round(255 * rgb)``);
* ``depth.npy`` (N, F, H, W) float16 z-depth in metres, 0 on invalid (sky) pixels;
* ``extrinsics.npy`` (N, F, 4, 4) float32 OpenCV world-to-camera (world in metres);
* ``intrinsics.npy`` (N, F, 3, 3) float32 pixels;
* ``scenes.json``: per scene ``seed``, ``kind``, ``trajectory``, ``captions``.

``cache.json`` at the top records the render settings; a run that is stopped resumes shard by
shard (each shard is written atomically). Seed ranges: below 1,000,000 for training, 1,000,000 to
1,000,999 for the dev set (every reported number), never 10^9 or more (kept for tests of others).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gen3r.atomic import atomic_dir, atomic_path
from gen3r.cameras import Cameras
from gen3r.data.procedural import TRAJECTORIES, render_scene
from gen3r.data.writers import write_official
from gen3r.errors import Gen3RError

logger = logging.getLogger(__name__)

CACHE_FILE = "cache.json"
SHARD_PREFIX = "shard-"
DEV_SEEDS = range(1_000_000, 1_001_000)
MAX_SEED = 10**9
_ARRAYS = ("rgb", "depth", "extrinsics", "intrinsics")


def seed_split(seed: int) -> str:
    """``"train"`` (< 1,000,000), ``"dev"`` (1,000,000..1,000,999) or ``"other"`` (no reported use)."""
    return "train" if seed < DEV_SEEDS.start else "dev" if seed in DEV_SEEDS else "other"


def render_seed(seed: int, settings: dict[str, Any]):
    """The :class:`gen3r.data.procedural.Scene` of ``seed`` with the cache ``settings`` (``num_frames``,
    ``height``, ``width``, ``kind``, ``trajectory`` (or ``"mixed"``), ``fov_deg``)."""
    return render_scene(seed, settings["num_frames"], settings["height"], settings["width"], kind=settings["kind"],
                        trajectory=_trajectory(seed, settings["trajectory"]), fov_deg=settings["fov_deg"])


def _render_shard(args: tuple[list[int], dict[str, Any]]) -> dict[str, Any]:
    """Render the scenes of one shard (runs in a worker process, one thread)."""
    seeds, settings = args
    out: dict[str, Any] = {name: [] for name in _ARRAYS}
    meta = []
    for seed in seeds:
        scene = render_seed(seed, settings)
        out["rgb"].append(np.round(scene.rgb * 255.0).astype(np.uint8))
        out["depth"].append(np.where(scene.valid, scene.depth, 0.0).astype(np.float16))
        out["extrinsics"].append(scene.extrinsics.astype(np.float32))
        out["intrinsics"].append(scene.intrinsics.astype(np.float32))
        meta.append({"seed": seed, "kind": scene.kind, "trajectory": scene.trajectory, "captions": scene.captions})
    return {"arrays": {k: np.stack(v) for k, v in out.items()}, "scenes": meta}


def _trajectory(seed: int, trajectory: str) -> str:
    """``"mixed"`` draws walk / orbit / pan / random from the seed (the renderer's own ``random``
    trajectory is one kind of smooth path, not a choice among them)."""
    if trajectory != "mixed":
        return trajectory

    return TRAJECTORIES[int(np.random.default_rng([seed, 7]).integers(len(TRAJECTORIES)))]


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise Gen3RError("no seeds to render; pass a range like 0:2000")
    if min(seeds) < 0 or max(seeds) >= MAX_SEED:
        raise Gen3RError(f"seeds must be in [0, {MAX_SEED}); got {min(seeds)}..{max(seeds)}")
    if len({seed_split(s) for s in seeds}) > 1:
        raise Gen3RError("the seeds mix the training range (< 1,000,000) and the dev range "
                         "(1,000,000..1,000,999); write them into separate caches")
    return seeds


def write_cache(out: str | Path, seeds: Sequence[int], *, num_frames: int = 17, height: int = 112,
                width: int = 112, kind: str = "random", trajectory: str = "mixed", fov_deg: float = 60.0,
                shard_size: int = 64, workers: int = 1) -> Path:
    """Render ``seeds`` into the cache folder ``out`` (created, or resumed when its settings match).

    ``trajectory``: a renderer trajectory or ``"mixed"`` (one drawn per seed). ``workers``
    processes render shards in parallel (each single-threaded). Returns ``out``.
    """
    seeds = _check_seeds(seeds)
    settings = {"num_frames": num_frames, "height": height, "width": width, "kind": kind,
                "trajectory": trajectory, "fov_deg": float(fov_deg), "format": 1}
    out = Path(out)
    header = out / CACHE_FILE
    if header.is_file():
        existing = json.loads(header.read_text())
        if {k: existing.get(k) for k in settings} != settings:
            raise Gen3RError(f"{out} holds a cache rendered with other settings ({existing}); "
                             "choose another folder")
    else:
        if out.exists() and any(out.iterdir()):
            raise Gen3RError(f"{out} exists and is not a scene cache; choose an empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(header) as tmp:
            tmp.write_text(json.dumps(settings, indent=1) + "\n")
    shards = [sorted(seeds)[i:i + shard_size] for i in range(0, len(seeds), shard_size)]
    todo = [s for s in shards if not (out / f"{SHARD_PREFIX}{s[0]:07d}" / "scenes.json").is_file()]
    logger.info("scene cache %s: %d of %d shards to render", out, len(todo), len(shards))
    from tqdm.auto import tqdm

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    for key in env:
        os.environ[key] = "1"
    try:
        jobs = [(s, settings) for s in todo]
        with tqdm(total=len(todo), desc="render scenes", unit="shard") as bar:
            if workers <= 1:
                results = map(_render_shard, jobs)
                for shard, result in zip(todo, results):
                    _write_shard(out, shard, result)
                    bar.update()
            else:
                with ProcessPoolExecutor(workers) as pool:
                    for shard, result in zip(todo, pool.map(_render_shard, jobs)):
                        _write_shard(out, shard, result)
                        bar.update()
    finally:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out


def _write_shard(out: Path, seeds: list[int], result: dict[str, Any]) -> None:
    with atomic_dir(out / f"{SHARD_PREFIX}{seeds[0]:07d}", overwrite=True) as tmp:
        for name, array in result["arrays"].items():
            np.save(tmp / f"{name}.npy", array)
        (tmp / "scenes.json").write_text(json.dumps(result["scenes"]) + "\n")


@dataclass
class CachedScene:
    """One cached scene: arrays as stored (see the module docstring) plus its metadata."""

    rgb: np.ndarray         # (F, H, W, 3) uint8
    depth: np.ndarray       # (F, H, W) float16 metres, 0 = invalid
    extrinsics: np.ndarray  # (F, 4, 4) float32 w2c
    intrinsics: np.ndarray  # (F, 3, 3) float32 px
    seed: int
    kind: str
    trajectory: str
    captions: list[str]

    def frames(self, indices=None):
        """Frames ``indices`` (default all) as a torch tensor (n, 3, H, W) float32 in [0, 1]."""
        import torch

        rgb = self.rgb if indices is None else self.rgb[indices]
        return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()

    @property
    def cameras(self):
        """:class:`gen3r.cameras.Cameras` of the frames (torch float32)."""
        import torch

        return Cameras(torch.from_numpy(np.array(self.extrinsics)), torch.from_numpy(np.array(self.intrinsics)),
                       image_size=tuple(self.rgb.shape[1:3]))


class SceneCache:
    """Read a cache folder written by :func:`write_cache` (arrays memory-mapped, shards lazily)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        header = self.folder / CACHE_FILE
        if not header.is_file():
            raise Gen3RError(f"{self.folder} is not a scene cache (no {CACHE_FILE}); write one with "
                             "`gen3r cache OUT --seeds 0:2000`")
        self.settings = json.loads(header.read_text())
        self._shards = sorted(p for p in self.folder.iterdir()
                              if p.name.startswith(SHARD_PREFIX) and (p / "scenes.json").is_file())
        if not self._shards:
            raise Gen3RError(f"scene cache {self.folder} holds no complete shard; run `gen3r cache` again")
        self._meta = [json.loads((p / "scenes.json").read_text()) for p in self._shards]
        self._offsets = np.cumsum([0] + [len(m) for m in self._meta])
        self._arrays: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def seeds(self) -> list[int]:
        return [s["seed"] for meta in self._meta for s in meta]

    def _shard(self, index: int) -> dict[str, np.ndarray]:
        if index not in self._arrays:
            self._arrays[index] = {name: np.load(self._shards[index] / f"{name}.npy", mmap_mode="r")
                                   for name in _ARRAYS}
        return self._arrays[index]

    def __getitem__(self, index: int) -> CachedScene:
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        local = index - int(self._offsets[shard])
        arrays = self._shard(shard)
        meta = self._meta[shard][local]
        return CachedScene(**{name: arrays[name][local] for name in _ARRAYS}, seed=meta["seed"], kind=meta["kind"],
                           trajectory=meta["trajectory"], captions=list(meta["captions"]))


def write_eval_layout(out: str | Path, seeds: Sequence[int], *, num_frames: int = 17, height: int = 112,
                      width: int = 112, kind: str = "random", trajectory: str = "mixed", fov_deg: float = 60.0,
                      overwrite: bool = False) -> Path:
    """Render ``seeds`` (same scenes as :func:`write_cache` with these settings) through the procedural
    writer into the official layout, split ``test``, that ``gen3r eval --dataset official`` reads
    (ground-truth depth included). Scene ``i`` is ``test/scene_<i:05d>``; ``seeds.json`` lists the
    seeds, the settings and each scene's name, seed, kind and trajectory."""
    seeds = _check_seeds(seeds)
    settings = {"num_frames": num_frames, "height": height, "width": width, "kind": kind,
                "trajectory": trajectory, "fov_deg": float(fov_deg)}
    out = Path(out)
    scenes = [render_seed(s, settings) for s in seeds]
    write_official(out, scenes, split="test", overwrite=overwrite)
    listing = [{"name": f"scene_{i:05d}", "seed": seed, "kind": scene.kind, "trajectory": scene.trajectory}
               for i, (seed, scene) in enumerate(zip(seeds, scenes))]
    with atomic_path(out / "seeds.json") as tmp:
        tmp.write_text(json.dumps({"seeds": seeds, **settings, "scenes": listing}) + "\n")
    return out
