"""Precomputed posteriors of the DiT stage: encode every training clip once, not every step.

Stage 2 needs, per clip, the Wan-VAE posterior of the video (the appearance target, and the
allview condition, which is the same control video), the geometry-adapter posterior of its VGGT
tokens (the geometry target) and the Wan-VAE posteriors of the 1view and 2view control videos. The
frozen encoders are deterministic, so these (mean, logvar) pairs are computed once per clip of a
scene cache (whole clips: ``data.num_frames`` equals the cache's frames) and stored in float32;
the per-step randomness (posterior samples, noise, modes) is drawn exactly as without the cache,
so a cached run sees the same inputs as an uncached one.

Layout: ``<folder>/latents.json`` (what was encoded) and shards ``shard-<first scene>/`` with
``<name>_mean.npy`` / ``<name>_logvar.npy`` (N, 16, f, h, w) for each name of :data:`POSTERIORS`.
Shards are written atomically; an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3r.atomic import atomic_dir, atomic_path
from gen3r.data.cache import SceneCache
from gen3r.errors import Gen3RError
from gen3r.models.wan_vae import encode_video
from gen3r.pipeline.tensors import module_dtype

logger = logging.getLogger(__name__)

HEADER = "latents.json"
#: Stored posteriors: the clip's Wan posterior (appearance target = allview condition), the adapter
#: posterior (geometry target), the Wan posteriors of the 1view and 2view control videos.
POSTERIORS = ("appearance", "geometry", "cond_1view", "cond_2view")
#: What an appearance-only transformer (the "2-stage" ablation) needs: no geometry, no VGGT run.
APPEARANCE_POSTERIORS = ("appearance", "cond_1view", "cond_2view")
SHARD = 32


@torch.no_grad()
def encode_posteriors(pipe, frames: torch.Tensor,
                      names: Sequence[str] = POSTERIORS) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The posteriors ``names`` (default :data:`POSTERIORS`) of clips ``frames`` (B, F, 3, H, W) in
    [0, 1]: name -> (mean, logvar)."""
    num_frames = frames.shape[1]
    encoders = {
        "appearance": lambda: encode_video(pipe.wan_vae, frames.to(module_dtype(pipe.wan_vae))),
        "geometry": lambda: tuple(getattr(pipe.encode_geometry(frames), k) for k in ("mean", "logvar")),
        "cond_1view": lambda: pipe.encode_condition_video(frames[:, [0]], "1view", num_frames),
        "cond_2view": lambda: pipe.encode_condition_video(frames[:, [0, num_frames - 1]], "2view", num_frames),
    }
    return {name: encoders[name]() for name in names}


class LatentCache:
    """Posteriors of the first ``num_scenes`` scenes of a scene cache (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        header = self.folder / HEADER
        if not header.is_file():
            raise Gen3RError(f"{self.folder} holds no latent cache ({HEADER} missing)")
        self.info = json.loads(header.read_text())
        self.num_scenes = int(self.info["num_scenes"])
        self.names = tuple(self.info.get("posteriors", POSTERIORS))
        self._arrays: dict[int, dict[str, np.ndarray]] = {}

    @classmethod
    def build(cls, folder: str | Path, pipe, scene_cache: str | Path, num_scenes: int | None, *,
              source: dict[str, Any], batch_size: int = 4, names: Sequence[str] | None = None) -> LatentCache:
        """Encode (or finish encoding) the first ``num_scenes`` scenes of ``scene_cache`` into ``folder``.

        ``source`` describes the frozen encoders (checkpoint, adapter); an existing cache made from
        other encoders or another scene cache is an error rather than silently reused. ``names``: a
        subset of :data:`POSTERIORS` to store (None = all; a subset is recorded in the header).
        """
        from tqdm.auto import tqdm

        scenes = SceneCache(scene_cache)
        count = len(scenes) if num_scenes is None else min(int(num_scenes), len(scenes))
        info = {"scene_cache": str(Path(scene_cache).resolve()), "num_scenes": count, "source": source}
        names = POSTERIORS if names is None else tuple(n for n in POSTERIORS if n in names)
        if names != POSTERIORS:
            info["posteriors"] = list(names)
        folder = Path(folder)
        header = folder / HEADER
        if header.is_file():
            existing = json.loads(header.read_text())
            if existing != info:
                raise Gen3RError(f"latent cache {folder} was made for {existing}, not {info}; delete it or "
                                 "choose another output folder")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(header) as tmp:
                tmp.write_text(json.dumps(info, indent=1) + "\n")
        todo = [s for s in range(0, count, SHARD) if not (folder / f"shard-{s:07d}" / "done").is_file()]
        if todo:
            logger.info("encoding %d scenes of %s for the DiT stage (%d shards to do)", count, scene_cache, len(todo))
        for start in tqdm(todo, desc="encode latents", unit="shard"):
            stop = min(start + SHARD, count)
            parts: dict[str, list[np.ndarray]] = {}
            for i in range(start, stop, batch_size):
                idx = range(i, min(i + batch_size, stop))
                clips = torch.stack([scenes[j].frames() for j in idx])
                for name, (mean, logvar) in encode_posteriors(pipe, clips, names).items():
                    parts.setdefault(f"{name}_mean", []).append(mean.float().cpu().numpy())
                    parts.setdefault(f"{name}_logvar", []).append(logvar.float().cpu().numpy())
            with atomic_dir(folder / f"shard-{start:07d}", overwrite=True) as tmp:
                for key, arrays in parts.items():
                    np.save(tmp / f"{key}.npy", np.concatenate(arrays))
                (tmp / "done").write_text(f"{start} {stop}\n")
        return cls(folder)

    def _shard(self, start: int) -> dict[str, np.ndarray]:
        if start not in self._arrays:
            path = self.folder / f"shard-{start:07d}"
            if not (path / "done").is_file():
                raise Gen3RError(f"latent cache shard {path} is missing; rebuild the latent cache")
            self._arrays[start] = {p.stem: np.load(p, mmap_mode="r") for p in path.glob("*.npy")}
        return self._arrays[start]

    def get(self, scenes: Sequence[int], name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of posterior ``name`` for scene indices ``scenes``, stacked (B, 16, f, h, w)."""
        if name not in self.names:
            raise Gen3RError(f"posterior {name!r} is not in the latent cache {self.folder} (it holds "
                             f"{', '.join(self.names)})")
        out = []
        for key in (f"{name}_mean", f"{name}_logvar"):
            rows = []
            for s in scenes:
                if not 0 <= s < self.num_scenes:
                    raise Gen3RError(f"scene {s} is outside the latent cache ({self.num_scenes} scenes)")
                start = s - s % SHARD
                rows.append(torch.from_numpy(np.array(self._shard(start)[key][s - start])))
            out.append(torch.stack(rows))
        return out[0], out[1]
