"""Training data: the official Gen3R training layout, procedural scenes, weighted multi-dataset draws.

A *sample* is a dict with

* ``frames``: (F, 3, H, W) float32 in [0, 1], resized to cover (H, W) and centre-cropped;
* ``cameras``: :class:`gen3r.cameras.Cameras` of the F frames for the (H, W) crop, poses relative
  to the first frame (frame 0 = identity; OpenCV world-to-camera; scene units of the source data);
* ``caption``: one line of the scene's captions (random);
* ``source``: ``"<dataset>/<scene index>"``.

Randomness (frame stride and start, padding split, caption line, dataset choice) comes from an
explicit ``numpy.random.Generator``. :class:`WeightedMultiDataset` derives it from ``(seed, draw
index)``, so draw ``k`` is the same sample on every run: resuming training only needs the step.

Official layout (spec section 8.2): ``<root>/<dataset>/<split>_videos_dirs.txt`` (one ``images``
folder per line), ``<split>_cameras_paths.txt`` (``transforms.json`` per line) and
``<split>_captions_paths.txt`` (``captions.txt`` per line); ``transforms.json`` holds per frame
``file_path``, ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` (pixels of the stored image) and
``transform_matrix`` = OpenCV camera-to-world 4x4. Relative paths in the index files are resolved
against the dataset folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from gen3r.cameras import Cameras
from gen3r.cameras.formats import TransformsFrame, natural_key, read_transforms_frames
from gen3r.data.cache import SceneCache
from gen3r.data.official_layout import read_official_index
from gen3r.data.procedural import render_scene
from gen3r.defaults import DEFAULT_NUM_FRAMES
from gen3r.errors import Gen3RError
from gen3r.pipeline.preprocess import IMAGE_SUFFIXES, read_image, resize_and_center_crop
from gen3r.train.config import OFFICIAL_DATASET_WEIGHTS, DataConfig

logger = logging.getLogger(__name__)

#: Prompts longer than this are replaced by "" (official ``clean_prompt``).
MAX_CAPTION_CHARS = 1000


# ------------------------------------------------------------------------------------ frame choice

def select_frames(num_available: int, num_frames: int, max_stride: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``num_frames`` frames out of ``num_available`` (official ``VideoDataset``).

    The stride is drawn uniformly from ``1..max_stride``; if the clip is too short for it the
    stride drops to 1; the start is uniform over the valid range. A clip shorter than
    ``num_frames`` is used whole and padded by repeating its first frame ``p`` times and its last
    frame ``num_frames - num_available - p`` times, ``p`` uniform in ``[0, missing]``.
    """
    if num_available < 1:
        raise Gen3RError("a training clip has no frames; remove it from the index files")
    stride = int(rng.integers(1, max_stride + 1))
    if (num_frames - 1) * stride + 1 > num_available:
        stride = 1
    span = (num_frames - 1) * stride + 1
    if span <= num_available:
        start = int(rng.integers(0, num_available - span + 1))
        return [start + i * stride for i in range(num_frames)]
    missing = num_frames - num_available
    before = int(rng.integers(0, missing + 1))
    return [0] * before + list(range(num_available)) + [num_available - 1] * (missing - before)


def clean_caption(text: str) -> str:
    """Strip whitespace; captions over :data:`MAX_CAPTION_CHARS` characters become ""."""
    text = text.strip()
    return "" if len(text) > MAX_CAPTION_CHARS else text


def _pick_caption(lines: Sequence[str], rng: np.random.Generator) -> str:
    lines = [line for line in lines if line.strip()]
    return clean_caption(lines[int(rng.integers(len(lines)))]) if lines else ""


def _finish(frames: torch.Tensor, cameras: Cameras, height: int, width: int) -> tuple[torch.Tensor, Cameras]:
    """Resize-to-cover + centre crop of frames (F, 3, h, w) and the matching intrinsics change."""
    src = tuple(frames.shape[-2:])
    frames = resize_and_center_crop(frames, height, width).clamp(0, 1)
    cameras = cameras.resize_and_center_crop(src, (height, width)).relative_to_first()
    return frames.float().contiguous(), cameras


# ------------------------------------------------------------------------------- official layout

class OfficialLayoutDataset(Dataset):
    """One dataset folder of the official training layout (``<root>/<dataset>``, split ``split``).

    ``__getitem__(i)`` draws from scene ``i`` with randomness from ``(seed, i)``; :meth:`load`
    takes an explicit generator. Frames are read lazily (only the selected files).
    """

    def __init__(self, folder: str | Path, split: str = "train", num_frames: int = DEFAULT_NUM_FRAMES,
                 height: int = 560, width: int = 560, max_stride: int = 1, seed: int = 0) -> None:
        self.folder = Path(folder)
        self.scenes = [(s.images, s.transforms, s.captions) for s in read_official_index(self.folder, split)]
        self.name, self.num_frames, self.height, self.width = self.folder.name, num_frames, height, width
        self.max_stride, self.seed = max_stride, seed

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(index, np.random.default_rng([self.seed, index]))

    def _frame_table(self, images: Path, transforms_path: Path) -> list[tuple[Path, TransformsFrame]]:
        """(image file, transforms.json frame) pairs in the shared frame order
        (:func:`gen3r.cameras.formats.read_transforms_frames`): each frame's image by the name in its
        ``file_path``; frames without one pair with the images in natural name order."""
        if not images.is_dir():
            raise Gen3RError(f"frame folder {images} does not exist; fix {self.name}/*_videos_dirs.txt")
        files = sorted((p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: natural_key(p.name))
        frames, _ = read_transforms_frames(transforms_path, opengl=False)
        if not files or len(frames) != len(files):
            raise Gen3RError(f"{transforms_path}: {len(frames)} camera frames for {len(files)} images in "
                             f"{images}; every image needs one transforms.json frame")
        by_name = {p.name: p for p in files}
        named = [by_name[name] for f in frames
                 if f.file_path is not None and (name := Path(f.file_path).name) in by_name]
        if len(named) == len(frames):
            return list(zip(named, frames))
        return list(zip(files, frames))

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Sample from scene ``index``: official frame selection, crop, relative cameras, caption."""
        images, transforms_path, captions_path = self.scenes[index]
        table = self._frame_table(images, transforms_path)
        chosen = select_frames(len(table), self.num_frames, self.max_stride, rng)
        frames = torch.stack([read_image(table[i][0]) for i in chosen])
        found = [table[i][1].size for i in chosen]
        if None in found:
            raise Gen3RError(f"{transforms_path}: frames without 'w'/'h'; record the image size of every frame")
        sizes = {size for size in found if size is not None}
        if len(sizes) != 1:
            raise Gen3RError(f"{transforms_path}: frames have different sizes {sorted(sizes)}; "
                             "all frames of a clip must share one resolution")
        c2w = torch.from_numpy(np.stack([table[i][1].c2w for i in chosen]))
        intrinsics = torch.from_numpy(np.stack([table[i][1].K for i in chosen]))
        cameras = Cameras.from_c2w(c2w, intrinsics, sizes.pop())
        frames, cameras = _finish(frames, cameras, self.height, self.width)
        lines: list[str] = []
        if captions_path is not None and captions_path.is_file():
            lines = captions_path.read_text().splitlines()
        return {"frames": frames, "cameras": cameras, "caption": _pick_caption(lines, rng),
                "source": f"{self.name}/{index}"}


# ------------------------------------------------------------------------------------- procedural

class ProceduralDataset(Dataset):
    """Procedural scenes rendered on the fly: scene ``i`` is ``render_scene(seed + i, ...)``.

    Scenes are rendered with ``render_frames`` frames at ``render_size`` (default: the training
    size) and then go through the same frame selection / crop as real data; rendered at the
    training size, samples also carry the exact ``depth`` (F, H, W) in metres (0 = invalid). The
    last ``cache_size`` rendered scenes are kept in memory.
    """

    def __init__(self, num_scenes: int, num_frames: int, height: int, width: int, *, seed: int = 0,
                 render_frames: int | None = None, render_size: tuple[int, int] | None = None,
                 kind: str = "random", trajectory: str = "random", max_stride: int = 1,
                 cache_size: int = 8) -> None:
        if num_scenes < 1:
            raise Gen3RError(f"procedural data needs num_scenes >= 1, got {num_scenes}")
        self.num_scenes, self.num_frames, self.height, self.width = num_scenes, num_frames, height, width
        self.seed, self.kind, self.trajectory, self.max_stride = seed, kind, trajectory, max_stride
        self.render_frames = render_frames or num_frames
        self.render_size = tuple(render_size) if render_size else (height, width)
        self.cache_size = cache_size
        self._cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(index, np.random.default_rng([self.seed, index]))

    def scene(self, index: int):
        """The rendered :class:`gen3r.data.procedural.Scene` ``index`` (cached)."""
        if index not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = render_scene(self.seed + index, self.render_frames, *self.render_size,
                                              kind=self.kind, trajectory=self.trajectory)
        return self._cache[index]

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        scene = self.scene(index)
        chosen = select_frames(scene.num_frames, self.num_frames, self.max_stride, rng)
        frames = torch.from_numpy(scene.rgb[chosen]).permute(0, 3, 1, 2).float()
        frames, cameras = _finish(frames, scene.cameras.index(chosen), self.height, self.width)
        sample = {"frames": frames, "cameras": cameras, "caption": _pick_caption(scene.captions, rng),
                  "source": f"procedural/{index}"}
        if self.render_size == (self.height, self.width):  # exact ground truth only without resampling
            depth = np.where(scene.valid[chosen], scene.depth[chosen], 0.0)
            sample["depth"] = torch.from_numpy(depth.astype(np.float32))
        return sample


# --------------------------------------------------------------------------------- scene cache

class CachedSceneDataset(Dataset):
    """Pre-rendered procedural scenes (:mod:`gen3r.data.cache`): same sample dict as the other
    datasets plus ``depth`` (F, H, W) float32 metres (0 = invalid) and ``scene`` (the index in the
    cache). ``max_scenes`` restricts training to the first scenes of the cache.

    The cache must be rendered at the training size (no resampling of depth); the frame selection
    is the official one (stride ``1..max_stride``, random start).
    """

    def __init__(self, folder: str | Path, num_frames: int, height: int, width: int, *, max_stride: int = 1,
                 seed: int = 0, max_scenes: int | None = None) -> None:
        self.cache = SceneCache(folder)
        self.num_scenes = len(self.cache) if max_scenes is None else min(max_scenes, len(self.cache))
        size = (self.cache.settings["height"], self.cache.settings["width"])
        if size != (height, width):
            raise Gen3RError(f"scene cache {folder} was rendered at {size[0]}x{size[1]} but training uses "
                             f"{height}x{width}; render a cache at the training size (gen3r cache --size)")
        self.num_frames, self.max_stride, self.seed = num_frames, max_stride, seed

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(index, np.random.default_rng([self.seed, index]))

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        scene = self.cache[index]
        chosen = select_frames(len(scene.rgb), self.num_frames, self.max_stride, rng)
        frames = scene.frames(chosen)
        depth = torch.from_numpy(scene.depth[chosen].astype(np.float32))
        return {"frames": frames, "cameras": scene.cameras.index(chosen).relative_to_first(), "depth": depth,
                "caption": _pick_caption(scene.captions, rng), "source": f"cache/{scene.seed}", "scene": index}


# ----------------------------------------------------------------------------- weighted mixture

class SceneSource(Protocol):
    """What :class:`WeightedMultiDataset` draws from: a number of scenes and ``load(index, rng)``."""

    def __len__(self) -> int: ...

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]: ...


class WeightedMultiDataset(Dataset):
    """Weighted mixture of datasets (official ``BalancedDatasetWithResizeCrop``).

    Draw ``k`` picks a dataset with probability proportional to its weight, then a uniformly random
    scene of it, using ``numpy.random.default_rng([seed, k])``; the index is a draw counter, not a
    scene index, so any non-negative integer is valid.
    """

    def __init__(self, datasets: Mapping[str, SceneSource], weights: Mapping[str, float], seed: int = 0) -> None:
        missing = sorted(set(datasets) ^ set(weights))
        if missing:
            raise Gen3RError(f"datasets and weights name different folders: {missing}")
        self.names = sorted(datasets)
        self.datasets = dict(datasets)
        total = sum(weights[n] for n in self.names)
        self.probs = np.array([weights[n] / total for n in self.names])
        self.seed = seed

    def __len__(self) -> int:
        return 2 ** 62

    def draw(self, k: int) -> tuple[str, int, np.random.Generator]:
        """(dataset name, scene index, generator for the sample's own randomness) of draw ``k``."""
        rng = np.random.default_rng([self.seed, int(k)])
        name = self.names[int(rng.choice(len(self.names), p=self.probs))]
        return name, int(rng.integers(len(self.datasets[name]))), rng

    def __getitem__(self, k: int) -> dict[str, Any]:
        name, index, rng = self.draw(k)
        return self.datasets[name].load(index, rng)


class DrawSampler(Sampler):
    """Endless draw indices for one rank: micro-step ``s`` of rank ``r`` uses draws
    ``(s * world_size + r) * batch_size + j``, ``j < batch_size``, starting at ``start_step``.

    Ranks never share a draw, and a run resumed at step ``s`` sees exactly the draws an
    uninterrupted run would.
    """

    def __init__(self, rank: int, world_size: int, batch_size: int, start_step: int = 0) -> None:
        self.rank, self.world_size, self.batch_size, self.start_step = rank, world_size, batch_size, start_step

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = (step * self.world_size + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)
            step += 1


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples: ``frames`` (B, F, 3, H, W) and ``depth`` (B, F, H, W) when the samples have it;
    ``cameras``, ``caption``, ``source`` as lists."""
    batch = {"frames": torch.stack([s["frames"] for s in samples]), "cameras": [s["cameras"] for s in samples],
             "caption": [s["caption"] for s in samples], "source": [s["source"] for s in samples]}
    if all("depth" in s for s in samples):
        batch["depth"] = torch.stack([s["depth"] for s in samples])
    if all("scene" in s for s in samples):
        batch["scene"] = [s["scene"] for s in samples]
    return batch


def build_dataset(config: DataConfig, seed: int) -> WeightedMultiDataset:
    """The training mixture described by ``config`` (a scene cache, official folders, or procedural
    scenes rendered on the fly)."""
    common = dict(num_frames=config.num_frames, height=config.height, width=config.width,
                  max_stride=config.max_stride, seed=seed)
    if config.cache is not None:
        if config.root is not None:
            raise Gen3RError("data.cache and data.root are both set; train on one of them")
        dataset = CachedSceneDataset(config.cache, **common, max_scenes=config.max_scenes)
        return WeightedMultiDataset({"cache": dataset}, {"cache": 1.0}, seed)
    if config.root is None:
        p = config.procedural
        size = (p.render_height or config.height, p.render_width or config.width)
        dataset = ProceduralDataset(p.num_scenes, config.num_frames, config.height, config.width, seed=p.seed,
                                    render_frames=p.render_frames, render_size=size, kind=p.kind,
                                    trajectory=p.trajectory, max_stride=config.max_stride)
        return WeightedMultiDataset({"procedural": dataset}, {"procedural": 1.0}, seed)
    root = Path(config.root)
    if not root.is_dir():
        raise Gen3RError(f"data.root {root} does not exist; point it at the folder holding the dataset folders")
    weights = dict(config.weights) if config.weights else {
        name: w for name, w in OFFICIAL_DATASET_WEIGHTS.items() if (root / name).is_dir()}
    if not weights:
        raise Gen3RError(f"{root} holds none of the official dataset folders ({', '.join(OFFICIAL_DATASET_WEIGHTS)}); "
                         "set data.weights to name your folders")
    if not config.weights:
        logger.info("dataset weights (official table): %s", weights)
    datasets = {name: OfficialLayoutDataset(root / name, config.split, **common) for name in weights}
    return WeightedMultiDataset(datasets, weights, seed)
