"""Reconstruction of videos of any length by overlapping windows.

A window holds ``window`` = 4k+1 frames; consecutive windows share ``overlap`` frames. Each window
is reconstructed on its own (in the frame of its first camera), then mapped into the frame of the
first window by the Umeyama sim(3) that best aligns its world points on the shared frames to the
already-aligned ones (valid pixels of both, at most 200k correspondences). Shared frames keep the
earlier window's values. The sim(3) (s, R, t) maps points X -> s R X + t; cameras follow as
w2c' = [Rc R^T | s tc - Rc R^T t] and depths scale by s, so depth, cameras and points stay
consistent. Units are those of the first window (VGGT normalised units).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from gen3r.cameras import Cameras
from gen3r.defaults import DEFAULT_NUM_FRAMES
from gen3r.errors import Gen3RError
from gen3r.geometry import umeyama

logger = logging.getLogger(__name__)

MAX_CORRESPONDENCES = 200_000


@dataclass
class Reconstruction:
    """Per-frame results of :func:`reconstruct_video` for N frames, in the first window's frame."""

    rgb: np.ndarray  # (N, H, W, 3) in [0, 1]
    depth: np.ndarray  # (N, H, W) camera z
    depth_conf: np.ndarray  # (N, H, W)
    world_points: np.ndarray  # (N, H, W, 3)
    point_mask: np.ndarray  # (N, H, W) bool
    cameras: object  # gen3r.cameras.Cameras, OpenCV w2c, px
    windows: list[tuple[int, int]] = field(default_factory=list)
    sim3: list[tuple[float, list, list]] = field(default_factory=list)


def default_overlap(window: int) -> int:
    """Frames shared by consecutive windows unless chosen: a sixth of the window, rounded (8 for the
    official 49 frames, 3 for the mini model's 17); enough shared frames for the sim(3) alignment
    without re-running most of every window."""
    return max(1, round(window / 6))


def plan_windows(num_frames: int, window: int, overlap: int | None = None) -> list[tuple[int, int]]:
    """Windows [start, end) of ``window`` frames covering 0..num_frames, sharing >= ``overlap``
    (None: :func:`default_overlap` of the window actually used)."""
    if window < 1 or (window - 1) % 4:
        raise Gen3RError(f"window (--frames) must be 4k+1, got {window}")
    if num_frames < 5 and num_frames != 1:
        raise Gen3RError(f"need at least 5 frames (or exactly 1) to reconstruct, got {num_frames}")
    if num_frames < window:
        window = 4 * ((num_frames - 1) // 4) + 1
        logger.warning("video has %d frames: using windows of %d frames", num_frames, window)
    if overlap is None:
        overlap = default_overlap(window)
    if num_frames <= window:  # one window covers everything: the overlap plays no part
        logger.info("%d frames -> 1 window of %d frames", num_frames, window)
        return [(num_frames - window, num_frames)]
    if overlap >= window:
        raise Gen3RError(f"--overlap ({overlap}) must be smaller than the window ({window} frames); "
                         f"pass --overlap {default_overlap(window)} or a longer --frames")
    windows, start = [], 0
    while True:
        end = start + window
        if end >= num_frames:
            windows.append((num_frames - window, num_frames))
            break
        windows.append((start, end))
        start = end - overlap
    windows = list(dict.fromkeys(windows))
    logger.info("%d frames -> %d window(s) of %d frames, overlap %d", num_frames, len(windows), window, overlap)
    return windows


def _transform_cameras(extrinsics: torch.Tensor, scale: float, rot: np.ndarray, trans: np.ndarray) -> torch.Tensor:
    ext = extrinsics.double().clone()
    r = torch.as_tensor(rot, dtype=torch.float64)
    t = torch.as_tensor(trans, dtype=torch.float64)
    rc, tc = ext[:, :3, :3], ext[:, :3, 3]
    new_r = rc @ r.T
    ext[:, :3, :3] = new_r
    ext[:, :3, 3] = scale * tc - (new_r @ t[:, None])[..., 0]
    return ext.float()


def _run_window(pipe, frames: torch.Tensor, mode: str, **kwargs) -> dict:
    height, width = frames.shape[-2:]
    if mode == "vae":
        posterior = pipe.encode_geometry(frames[None])
        geo = pipe.decode_geometry(posterior.mean, height, width)
        rgb = frames.permute(0, 2, 3, 1).cpu().numpy()
    else:
        out = pipe(frames[None], task="allview", num_frames=frames.shape[0], height=height, width=width,
                   **kwargs)
        geo = {"extrinsics": out.extrinsics, "intrinsics": out.intrinsics, "depth": out.depth,
               "depth_conf": out.depth_conf, "world_points": out.world_points, "point_mask": out.point_mask}
        rgb = out.rgb[0].numpy()
    return {"rgb": rgb, "depth": geo["depth"][0].cpu().numpy(), "depth_conf": geo["depth_conf"][0].cpu().numpy(),
            "world_points": np.asarray(geo["world_points"][0], dtype=np.float64),
            "point_mask": np.asarray(geo["point_mask"][0], dtype=bool),
            "extrinsics": geo["extrinsics"][0].cpu(), "intrinsics": geo["intrinsics"][0].cpu()}


def reconstruct_video(pipe, frames: torch.Tensor, window: int = DEFAULT_NUM_FRAMES, overlap: int | None = None,
                      mode: str = "generate", **call_kwargs) -> Reconstruction:
    """Reconstruct frames (N, 3, H, W) in [0, 1] with ``pipe`` (allview task or ``mode="vae"``)."""
    if mode not in ("generate", "vae"):
        raise Gen3RError(f"unknown reconstruction mode {mode!r}; use 'generate' or 'vae'")
    num, _, height, width = frames.shape
    windows = plan_windows(num, window, overlap)
    rgb = np.zeros((num, height, width, 3), np.float32)
    depth = np.zeros((num, height, width), np.float32)
    conf = np.zeros((num, height, width), np.float32)
    points = np.zeros((num, height, width, 3), np.float64)
    mask = np.zeros((num, height, width), bool)
    extr = torch.zeros(num, 3, 4)
    intr = torch.zeros(num, 3, 3)
    done = np.zeros(num, bool)
    sims = []
    for k, (start, end) in enumerate(windows):
        logger.info("window %d/%d: frames %d..%d", k + 1, len(windows), start, end - 1)
        res = _run_window(pipe, frames[start:end], mode, **call_kwargs)
        scale, rot, trans = 1.0, np.eye(3), np.zeros(3)
        shared = np.nonzero(done[start:end])[0]
        if len(shared):
            both = res["point_mask"][shared] & mask[start + shared]
            src = res["world_points"][shared][both]
            dst = points[start + shared][both]
            if len(src) < 3:
                raise Gen3RError(f"window {k + 1} shares fewer than 3 valid points with the previous one; "
                                 "increase --overlap")
            if len(src) > MAX_CORRESPONDENCES:
                pick = np.random.default_rng(k).choice(len(src), MAX_CORRESPONDENCES, replace=False)
                src, dst = src[pick], dst[pick]
            scale, rot, trans = umeyama(src, dst, with_scale=True)
            scale, rot, trans = float(scale), np.asarray(rot, np.float64), np.asarray(trans, np.float64)
        sims.append((scale, rot.tolist(), trans.tolist()))
        new = ~done[start:end]
        idx = np.arange(start, end)[new]
        wp = res["world_points"][new]
        points[idx] = scale * wp @ rot.T + trans
        depth[idx] = scale * res["depth"][new]
        conf[idx] = res["depth_conf"][new]
        mask[idx] = res["point_mask"][new]
        rgb[idx] = res["rgb"][new]
        extr[idx] = _transform_cameras(res["extrinsics"][new], scale, rot, trans)[:, :3]
        intr[idx] = res["intrinsics"][new].float()
        done[start:end] = True
    cameras = Cameras(extrinsics=extr, intrinsics=intr, image_size=(height, width))
    return Reconstruction(rgb=rgb, depth=depth, depth_conf=conf, world_points=points, point_mask=mask,
                          cameras=cameras, windows=windows, sim3=sims)
