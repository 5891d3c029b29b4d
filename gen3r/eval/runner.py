"""The Gen3R benchmark loop: run the pipeline (and baselines) on dataset sequences, score, aggregate.

One call of :func:`evaluate` processes the sequences of a dataset reader (``gen3r.eval.datasets``)
for one task of the paper (section 4.2 / 4.3):

* ``1view``: the first frame conditions generation; ``2view``: the first and last frames;
  ``recon``: all frames (the pipeline's ``allview`` task, feed-forward reconstruction, never with
  camera conditions, as the paper removes them "for fairness").
* Per sequence: ``num_frames`` consecutive frames (49 in the paper) are read, resized and
  centre-cropped to ``height x width`` (frames bilinear + antialias like the pipeline, depth by
  nearest neighbour, intrinsics adjusted the same way); with ``camera_cond`` the ground-truth
  cameras condition the generation (the pipeline makes them relative to the first frame).
* Methods: ``gen3r`` (the full pipeline) and the baselines ``vggt`` (VGGT alone on the condition
  frames), ``two_stage`` (VGGT on the frames Gen3R generated) and ``vae_only`` (recon only: VGGT
  tokens -> geometry adapter encode -> decode -> VGGT heads).
* Metrics per (sequence, method), see :func:`score_prediction`: PSNR / SSIM / LPIPS of generated
  vs ground-truth frames (the non-condition frames; all frames for ``recon``), accuracy /
  completeness / Chamfer of the unprojected point cloud after Umeyama Sim(3) alignment, and
  relative pose errors (AUC@30/15/5, RRA@30, RTA@30).

Output folder ``out_dir``: ``config.json`` (the settings; a resumed run must use the same),
``metrics.jsonl`` (one JSON object per line and (sequence, method), appended with flush + fsync, so
an interrupted run resumes where it stopped), ``results.md`` and ``results.csv`` (means per method,
written atomically). Units: appearance metrics on images in ``[0, 1]``; geometry in the unit of the
dataset's depth (metres for metric datasets); pose errors in degrees.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gen3r.atomic import atomic_path
from gen3r.cameras import Cameras, resize_and_center_crop_params
from gen3r.defaults import DEFAULT_NUM_FRAMES
from gen3r.distributed import init_distributed
from gen3r.errors import Gen3RError
from gen3r.eval.camera_metrics import auc_from_errors, pose_auc
from gen3r.eval.datasets import (
    Co3Dv2Reader,
    NerfstudioReader,
    OfficialLayoutReader,
    RealEstate10KReader,
    SequenceData,
    SequenceReader,
    TartanAirReader,
    TooFewFrames,
    WildRGBDReader,
    sample_frame_indices,
    sample_sequences,
)
from gen3r.eval.geometry_metrics import point_cloud_metrics
from gen3r.eval.image_metrics import psnr, ssim
from gen3r.eval.perceptual import LPIPS, lpips
from gen3r.eval.protocol import DEFAULT_BASELINES, METHOD_LABELS, METHODS, PIPELINE_TASK, TASKS
from gen3r.eval.report import write_tables
from gen3r.geometry import apply_sim3, umeyama, unproject_depth
from gen3r.pipeline.conditioning import condition_indices
from gen3r.pipeline.preprocess import check_size, resize_and_center_crop
from gen3r.pipeline.vggt_geometry import reconstruct

logger = logging.getLogger(__name__)

#: Dataset name -> reader class (the names of :data:`~gen3r.eval.protocol.DATASET_NAMES`); every reader
#: takes ``(root, split_file=...)``.
DATASETS: dict[str, Callable[..., SequenceReader]] = {
    "re10k": RealEstate10KReader,
    "dl3dv": NerfstudioReader,
    "co3d": Co3Dv2Reader,
    "wildrgbd": WildRGBDReader,
    "tartanair": TartanAirReader,
    "official": OfficialLayoutReader,
}
METRIC_KEYS = ("psnr", "ssim", "lpips", "accuracy", "completeness", "chamfer", "chamfer_relative_percent",
               "depth_abs_rel", "auc30", "auc15", "auc5", "rra30", "rta30", "rra_mean_deg", "rta_mean_deg")
JSONL_STEM = "metrics"
JSONL_NAME, CONFIG_NAME = f"{JSONL_STEM}.jsonl", "config.json"


# ------------------------------------------------------------------------------------------ config

@dataclass
class EvalConfig:
    """Settings of one evaluation run (stored in ``config.json``; a resumed run must match).

    Attributes:
        task: ``1view`` | ``2view`` | ``recon``.
        methods: subset of :data:`METHODS`; ``gen3r`` and ``two_stage`` share one pipeline call.
        num_frames: frames per clip (4k+1; 49 in the paper). ``stride``: frame step of the clip.
        height, width: working resolution (multiples of 112; 560 in the paper).
        num_sequences: sample this many sequences (``sample_sequences`` with ``seed``); None = all.
        steps, guidance, prompt: pipeline sampling settings. ``seed``: sequence sampling and the
            per-sequence generator seed (``seed`` combined with a CRC32 of the sequence name).
        camera_cond: condition on the ground-truth cameras; None = True for 1view/2view, False
            for recon (which never uses cameras).
        num_points: farthest-point-sampling size of each cloud (20 000 in the paper).
        max_depth: ground-truth pixels deeper than this (dataset unit) count as unknown, e.g. the
            ~10 km sky of TartanAir; None keeps every pixel with depth > 0.
        max_points: optional cap on the pixels entering the geometry metrics (a fixed random
            subset of the pixels, the same for prediction and ground truth); None = all pixels.
        lpips_net: trunk of the LPIPS model (stored for the record; the model is passed in).
    """

    task: str
    methods: tuple[str, ...] = ("gen3r",)
    num_frames: int = DEFAULT_NUM_FRAMES
    stride: int = 1
    height: int = 560
    width: int = 560
    num_sequences: int | None = None
    steps: int = 50
    guidance: float = 5.0
    prompt: str = ""
    seed: int = 0
    camera_cond: bool | None = None
    num_points: int = 20000
    max_depth: float | None = None
    max_points: int | None = None
    lpips_net: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise Gen3RError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        self.methods = tuple(m for m in METHODS if m in self.methods)  # table order, no duplicates
        if not self.methods:
            raise Gen3RError(f"no method to evaluate; choose from {', '.join(METHODS)}")
        if "vae_only" in self.methods and self.task != "recon":
            raise Gen3RError("vae_only is a reconstruction baseline (it encodes all frames); use --task recon")
        check_size(self.num_frames, self.height, self.width)
        if self.task == "2view" and self.num_frames < 2:
            raise Gen3RError("2view needs at least 2 frames; raise --frames")
        if self.camera_cond is None:
            self.camera_cond = self.task != "recon"
        if self.camera_cond and self.task == "recon":
            raise Gen3RError("recon runs without camera conditions (paper section 4.3); drop --camera-cond")
        if self.num_points < 1 or (self.max_points is not None and self.max_points < 3):
            raise Gen3RError("num_points must be >= 1 and max_points >= 3")
        if self.max_depth is not None and not self.max_depth > 0:
            raise Gen3RError(f"max_depth must be a positive depth, got {self.max_depth}")

    def condition_indices(self) -> list[int]:
        """Clip frames given to the model: first; first and last; or all (recon): the pipeline's rule."""
        return condition_indices(PIPELINE_TASK[self.task], self.num_frames)

    def appearance_indices(self) -> list[int]:
        """Clip frames scored for appearance: the generated (non-condition) ones; all for recon."""
        cond = set(self.condition_indices())
        rest = [i for i in range(self.num_frames) if i not in cond]
        return rest or list(range(self.num_frames))


# ------------------------------------------------------------------------------------------ inputs

@dataclass
class EvalSequence:
    """One clip at the working resolution with its ground truth.

    ``frames`` (F, 3, H, W) float32 in [0, 1]; ``cameras`` :class:`gen3r.cameras.Cameras` (OpenCV
    w2c in the dataset's unit, pixel intrinsics of H x W); ``depth`` (F, H, W) z-depth or None;
    ``points`` (F, H, W, 3) float64 world points (dataset frame and unit) or None; ``valid`` (F, H,
    W) bool (0 < depth <= max_depth).
    """

    name: str
    frames: torch.Tensor
    cameras: Any
    depth: np.ndarray | None
    points: np.ndarray | None
    valid: np.ndarray | None


def _resize_depth(depth: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Depth (F, h, w) -> (F, H, W) with the pipeline's resize + centre crop, nearest neighbour.

    Nearest neighbour never blends a valid depth with an unknown (0) one or across depth edges.
    """
    (new_h, new_w), top, left = resize_and_center_crop_params(depth.shape[-2:], dst_hw)
    t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[:, None]
    if (new_h, new_w) != tuple(depth.shape[-2:]):
        t = F.interpolate(t, size=(new_h, new_w), mode="nearest-exact")
    return t[:, 0, top:top + dst_hw[0], left:left + dst_hw[1]].numpy()


def prepare_sequence(data: SequenceData, height: int, width: int, max_depth: float | None = None) -> EvalSequence:
    """Resize + centre-crop frames, depth and intrinsics of ``data``; unproject the ground truth.

    Ground-truth pixels are valid where ``0 < depth`` (and ``depth <= max_depth`` when given).
    """
    src_hw = (int(data.frames.shape[-2]), int(data.frames.shape[-1]))
    frames = resize_and_center_crop(data.frames.float(), height, width).clamp(0, 1).contiguous()
    cameras = Cameras(torch.as_tensor(data.extrinsics, dtype=torch.float64),
                      torch.as_tensor(data.intrinsics, dtype=torch.float64), src_hw)
    cameras = cameras.resize_and_center_crop(None, (height, width))
    depth = points = valid = None
    if data.depth is not None:
        depth = _resize_depth(data.depth, (height, width))
        ext, intr = cameras.numpy()
        points = unproject_depth(depth, ext, intr)
        valid = (depth > 0) if max_depth is None else (depth > 0) & (depth <= max_depth)
    return EvalSequence(name=data.name, frames=frames, cameras=cameras, depth=depth, points=points, valid=valid)


# ----------------------------------------------------------------------------------- predictions

@dataclass
class Prediction:
    """What one method produced for the clip frames ``frames`` (indices into the clip).

    ``rgb`` (n, 3, H, W) float32 tensor in [0, 1] (the evaluation's frame layout) or None;
    ``extrinsics`` (n, 3, 4) OpenCV w2c or None;
    ``world_points`` (n, H, W, 3) in the method's own frame and unit, ``point_mask`` (n, H, W) bool;
    ``depth`` (n, H, W) z-depth in the method's unit or None.
    """

    frames: list[int]
    rgb: torch.Tensor | None = None
    extrinsics: np.ndarray | None = None
    world_points: np.ndarray | None = None
    point_mask: np.ndarray | None = None
    depth: np.ndarray | None = None


@torch.no_grad()
def vggt_reconstruct(vggt: torch.nn.Module, frames: torch.Tensor) -> dict[str, np.ndarray]:
    """VGGT on frames (n, 3, H, W) in [0, 1]: cameras + depth head, depth unprojected with them.

    Returns ``extrinsics`` (n, 3, 4) OpenCV w2c, ``intrinsics`` (n, 3, 3) px, ``world_points``
    (n, H, W, 3) float64 in the first frame's camera frame (VGGT normalised units) and
    ``point_mask`` (n, H, W) (the pipeline's percentile depth mask) and ``depth`` (n, H, W), as the
    paper's VGGT baseline.
    """
    rec = reconstruct(vggt, frames[None], point_head=False)
    return {"extrinsics": rec["extrinsics"][0].cpu().double().numpy(),
            "intrinsics": rec["intrinsics"][0].cpu().double().numpy(),
            "world_points": rec["world_points"][0].numpy(), "point_mask": rec["point_mask"][0].numpy(),
            "depth": rec["depth"][0].cpu().double().numpy()}


def _sequence_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 63)


def run_gen3r(pipe: Any, seq: EvalSequence, cfg: EvalConfig) -> Prediction:
    """The full pipeline on the condition frames of ``seq`` (GT cameras when ``cfg.camera_cond``)."""
    cond = cfg.condition_indices()
    out = pipe(seq.frames[cond][None], task=PIPELINE_TASK[cfg.task],
               cameras=seq.cameras if cfg.camera_cond else None, prompt=cfg.prompt, num_frames=cfg.num_frames,
               height=cfg.height, width=cfg.width, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance,
               generator=torch.Generator().manual_seed(_sequence_seed(cfg.seed, seq.name)))
    # the pipeline's frames are (B, F, H, W, 3) like its exports: the one conversion to the eval layout
    rgb = out.rgb[0].permute(0, 3, 1, 2).float().contiguous()
    return Prediction(frames=list(range(cfg.num_frames)), rgb=rgb,
                      extrinsics=np.asarray(out.extrinsics[0], dtype=np.float64),
                      world_points=np.asarray(out.world_points[0], dtype=np.float64),
                      point_mask=np.asarray(out.point_mask[0], dtype=bool),
                      depth=np.asarray(out.depth[0], dtype=np.float64))


def run_vggt(vggt: torch.nn.Module, frames: torch.Tensor, indices: Sequence[int],
             rgb: torch.Tensor | None = None) -> Prediction:
    """VGGT reconstruction of ``frames`` (the clip frames ``indices``), optionally carrying ``rgb``."""
    rec = vggt_reconstruct(vggt, frames)
    return Prediction(frames=list(indices), rgb=rgb, extrinsics=rec["extrinsics"],
                      world_points=rec["world_points"], point_mask=rec["point_mask"], depth=rec["depth"])


def run_vae_only(pipe: Any, seq: EvalSequence) -> Prediction:
    """VGGT tokens -> geometry adapter encode (posterior mean) -> decode -> VGGT heads (paper Table 3)."""
    posterior = pipe.encode_geometry(seq.frames[None])
    geo = pipe.decode_geometry(posterior.mean, seq.frames.shape[-2], seq.frames.shape[-1])
    return Prediction(frames=list(range(seq.frames.shape[0])),
                      extrinsics=np.asarray(geo["extrinsics"][0].cpu(), dtype=np.float64),
                      world_points=np.asarray(geo["world_points"][0], dtype=np.float64),
                      point_mask=np.asarray(geo["point_mask"][0], dtype=bool),
                      depth=np.asarray(geo["depth"][0].cpu(), dtype=np.float64))


def run_copy_first(seq: EvalSequence, cfg: EvalConfig) -> Prediction:
    """The appearance floor: the first condition frame copied to every clip frame (no geometry)."""
    first = seq.frames[cfg.condition_indices()[0]]
    return Prediction(frames=list(range(cfg.num_frames)), rgb=first[None].repeat(cfg.num_frames, 1, 1, 1))


def predict(pipe: Any, seq: EvalSequence, cfg: EvalConfig, methods: Sequence[str]) -> dict[str, Prediction]:
    """Run ``methods`` on one clip; ``gen3r`` and ``two_stage`` share one pipeline call."""
    preds: dict[str, Prediction] = {}
    if "copy_first" in methods:
        preds["copy_first"] = run_copy_first(seq, cfg)
    if "gen3r" in methods or "two_stage" in methods:
        ours = run_gen3r(pipe, seq, cfg)
        if "gen3r" in methods:
            preds["gen3r"] = ours
        if "two_stage" in methods:
            assert ours.rgb is not None, "run_gen3r decodes the frames"
            preds["two_stage"] = run_vggt(pipe.vggt, ours.rgb, ours.frames, rgb=ours.rgb)
    if "vggt" in methods:
        cond = cfg.condition_indices()
        preds["vggt"] = run_vggt(pipe.vggt, seq.frames[cond], cond)
    if "vae_only" in methods:
        preds["vae_only"] = run_vae_only(pipe, seq)
    return preds


# ---------------------------------------------------------------------------------------- scoring

def appearance_metrics(rgb: torch.Tensor, gt: torch.Tensor,
                       lpips_model: LPIPS | None) -> dict[str, Any]:
    """Mean over frames of PSNR / SSIM / LPIPS; ``rgb`` and ``gt`` (n, 3, H, W) in [0, 1].
    Also ``psnr_frames``: the n per-frame PSNR values."""
    pred = rgb.double().clamp(0, 1)
    target = gt.double()
    frame_psnr = psnr(pred, target)
    out: dict[str, Any] = {"psnr": float(frame_psnr.mean()), "ssim": float(ssim(pred, target).mean()),
                           "lpips": None, "psnr_frames": [float(v) for v in frame_psnr]}
    if lpips_model is not None:
        out["lpips"] = float(lpips(pred.float(), target.float(), model=lpips_model).mean())
    return out


def _subsample(arrays: Sequence[np.ndarray], max_points: int | None, seed: int) -> list[np.ndarray]:
    """The same random pixel subset (at most ``max_points``) of per-pixel arrays (n, H, W, ...)."""
    flat = [a.reshape(-1, *a.shape[3:]) for a in arrays]
    total = flat[0].shape[0]
    if max_points is None or total <= max_points:
        return flat
    keep = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
    return [a[keep] for a in flat]


def geometry_metrics(pred: Prediction, seq: EvalSequence, cfg: EvalConfig) -> dict[str, float]:
    """Accuracy / completeness / Chamfer (GT units) of ``pred`` against all ground-truth frames.

    Alignment: Umeyama Sim(3) on corresponding pixels (predicted frame i <-> ground-truth frame i)
    valid in both. When the prediction covers only some frames (the VGGT baseline on condition
    views), the alignment uses those frames and the predicted cloud is compared with the ground
    truth of the whole clip, so geometry the method did not produce lowers its completeness.
    """
    assert pred.world_points is not None and pred.point_mask is not None, "Prediction sets point_mask with world_points"
    assert seq.points is not None and seq.valid is not None, "prepare_sequence sets points and valid with depth"
    idx = pred.frames
    full = idx == list(range(seq.points.shape[0]))
    g_pts, g_mask = (seq.points, seq.valid) if full else (seq.points[idx], seq.valid[idx])
    p_pts, p_mask, g_sub, g_sub_mask = _subsample([pred.world_points, pred.point_mask, g_pts, g_mask],
                                                  cfg.max_points, cfg.seed)
    if full:
        res = point_cloud_metrics(p_pts, g_sub, align=True, num_points=cfg.num_points, seed=cfg.seed,
                                  pred_mask=p_mask, gt_mask=g_sub_mask)
    else:
        both = p_mask & g_sub_mask & np.isfinite(p_pts).all(-1)
        if both.sum() < 3:
            raise Gen3RError("fewer than 3 pixels are valid in both clouds; cannot align")
        scale, rot, trans = umeyama(p_pts[both], g_sub[both], with_scale=True)
        aligned = apply_sim3(p_pts, float(scale), np.asarray(rot), np.asarray(trans))
        g_all, g_all_mask = _subsample([seq.points, seq.valid], cfg.max_points, cfg.seed)
        res = point_cloud_metrics(aligned, g_all, align=False, num_points=cfg.num_points, seed=cfg.seed,
                                  pred_mask=p_mask, gt_mask=g_all_mask)
        res["scale"] = float(scale)
    return {k: float(res[k]) for k in ("accuracy", "completeness", "chamfer", "chamfer_relative_percent", "scale")}


def depth_abs_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """Mean over frames of AbsRel ``mean(|s d - d_gt| / d_gt)`` after per-frame median scaling
    ``s = median(d_gt) / median(d)`` on the pixels valid in the ground truth with a positive,
    finite prediction. ``pred``/``gt`` (n, H, W) z-depth, ``valid`` (n, H, W) bool."""
    values = []
    for d, g, m in zip(pred, gt, valid):
        m = m & np.isfinite(d) & (d > 0) & (g > 0)
        if m.sum() < 3:
            continue
        s = np.median(g[m]) / np.median(d[m])
        values.append(float(np.mean(np.abs(s * d[m] - g[m]) / g[m])))
    if not values:
        raise Gen3RError("no frame has 3 pixels with valid depth in both prediction and ground truth")
    return float(np.mean(values))


def camera_metrics(extrinsics: np.ndarray, gt_w2c: np.ndarray) -> tuple[dict[str, float], dict[str, list[float]]]:
    """VGGT-protocol pose accuracy of ``extrinsics`` (n >= 2) vs ``gt_w2c``; also the per-pair errors."""
    res = {t: pose_auc(extrinsics, gt_w2c, max_threshold=t) for t in (30, 15, 5)}
    rra, rta = np.asarray(res[30]["rra"], np.float64), np.asarray(res[30]["rta"], np.float64)
    metrics = {"auc30": res[30]["auc"], "auc15": res[15]["auc"], "auc5": res[5]["auc"],
               "rra30": res[30]["rra_acc"], "rta30": res[30]["rta_acc"],
               "rra_mean_deg": float(rra.mean()), "rta_mean_deg": float(rta.mean())}
    errors = {"rra": [round(float(x), 6) for x in rra], "rta": [round(float(x), 6) for x in rta]}
    return {k: float(v) for k, v in metrics.items()}, errors


def score_prediction(pred: Prediction, seq: EvalSequence, cfg: EvalConfig,
                     lpips_model: LPIPS | None = None) -> dict[str, Any]:
    """All metrics of one prediction: ``metrics`` (None where not applicable), ``pose_errors``, ``errors``.

    Appearance: frames of ``cfg.appearance_indices()`` the prediction covers. Geometry: needs
    ground-truth depth. Cameras: needs at least 2 predicted frames. A metric that fails on this
    sequence (e.g. no valid predicted pixel) is left empty and its message kept in ``errors``.
    """
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_KEYS)
    errors: dict[str, str] = {}
    pose_errors = None
    frame_psnr = None
    if pred.rgb is not None:
        frames = [i for i in cfg.appearance_indices() if i in pred.frames]
        local = [pred.frames.index(i) for i in frames]
        appearance = appearance_metrics(pred.rgb[local], seq.frames[frames], lpips_model)
        frame_psnr = dict(zip((str(i) for i in frames), appearance.pop("psnr_frames")))
        metrics.update(appearance)
    if pred.depth is not None and seq.depth is not None:
        assert seq.valid is not None, "prepare_sequence sets valid with depth"
        try:
            metrics["depth_abs_rel"] = depth_abs_rel(pred.depth, seq.depth[pred.frames], seq.valid[pred.frames])
        except Gen3RError as exc:
            errors["depth"] = str(exc)
    if pred.world_points is not None and seq.points is not None:
        try:
            metrics.update({k: v for k, v in geometry_metrics(pred, seq, cfg).items() if k in metrics})
        except Gen3RError as exc:
            errors["geometry"] = str(exc)
            logger.warning("%s: geometry metrics skipped: %s", seq.name, exc)
    if pred.extrinsics is not None and len(pred.frames) >= 2:
        gt_w2c = seq.cameras.extrinsics[pred.frames].double().numpy()
        try:
            cam, pose_errors = camera_metrics(pred.extrinsics, gt_w2c)
            metrics.update(cam)
        except Gen3RError as exc:
            errors["camera"] = str(exc)
            logger.warning("%s: camera metrics skipped: %s", seq.name, exc)
    return {"metrics": metrics, "pose_errors": pose_errors, "errors": errors, "frames": pred.frames,
            "psnr_frames": frame_psnr}


# ------------------------------------------------------------------------------------------ files

def read_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``out_dir/metrics.jsonl``; a torn last line (interrupted write) is dropped."""
    path = Path(out_dir) / JSONL_NAME
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw[: raw.rfind(b"\n") + 1]
        logger.warning("%s ends with an incomplete line (interrupted run); dropping it", path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(keep)
        raw = keep
    records = []
    for n, line in enumerate(raw.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise Gen3RError(f"line {n} of {path} is not JSON ({exc}); delete that line or use a fresh --out") from exc
        if not isinstance(rec, dict) or "sequence" not in rec or "method" not in rec:
            raise Gen3RError(f"line {n} of {path} is not an evaluation record; use a fresh --out")
        records.append(rec)
    return records


def _append_record(path: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def run_config(cfg: EvalConfig, reader: SequenceReader, sequences: Sequence[str], dataset: str | None = None,
               checkpoint: str | None = None) -> dict[str, Any]:
    """The ``config.json`` content of a run: dataset, every setting, the sequence list, the checkpoint."""
    return {"dataset": dataset or reader.dataset, "dataset_label": reader.dataset, **dataclasses.asdict(cfg),
            "methods": list(cfg.methods), "sequences": list(sequences), "checkpoint": checkpoint}


#: ``config.json`` keys that choose what runs rather than how: a later run may differ in them.
_MERGED_KEYS = ("methods", "sequences", "num_sequences", "checkpoint")


def check_config(out_dir: str | Path, config: dict[str, Any], write: bool = True) -> dict[str, Any]:
    """Check that ``out_dir`` holds no run with other settings (methods and sequences may differ: they
    choose what runs, not how); then write ``config.json`` (methods and sequences merged, so that the
    folder's tables cover every sequence it holds; the earlier checkpoint kept when this call has
    none) unless ``write`` is False. Returns the merged config."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise Gen3RError(f"--out {out_dir} is a file; pass a folder path")
    path = out_dir / CONFIG_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError as exc:
            raise Gen3RError(f"{path} is not JSON ({exc}); use a fresh --out") from exc
        diff = sorted(k for k in set(old) | set(config) if k not in _MERGED_KEYS and old.get(k) != config.get(k))
        if diff:
            raise Gen3RError(f"{out_dir} holds results of a run with other settings ({', '.join(diff)} differ); "
                             "use a fresh --out or the same settings")
        config = {**old, **config, "checkpoint": config.get("checkpoint") or old.get("checkpoint"),
                  "methods": [m for m in METHODS if m in set(old.get("methods", [])) | set(config["methods"])]}
        sequences = list(dict.fromkeys([*old.get("sequences", []), *config["sequences"]]))
        if sequences != config["sequences"]:  # more than this call chose: no one sample count describes them
            config.update(sequences=sequences, num_sequences=None)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(config, indent=1) + "\n")
    return config


#: ``reason`` of a skipped record: the sequence is too short for the clip (final), or its data could
#: not be read (recorded only with ``skip_unreadable``; retried by the next run).
TOO_FEW_FRAMES, UNREADABLE = "too few frames", "unreadable"


def latest_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """The newest record of each (sequence, method) of ``metrics.jsonl``, in file order: a sequence
    retried after unreadable data was fixed counts once, with its new result."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in read_records(out_dir):
        key = (rec["sequence"], rec["method"])
        latest.pop(key, None)
        latest[key] = rec
    return list(latest.values())


def pending_methods(out_dir: str | Path, sequences: Sequence[str], methods: Sequence[str]) -> dict[str, list[str]]:
    """Sequence -> methods still missing from ``metrics.jsonl`` (sequences with nothing left are omitted);
    a sequence recorded as unreadable is pending again."""
    done = {(r["sequence"], r["method"]) for r in latest_records(out_dir) if r.get("reason") != UNREADABLE}
    todo = {s: [m for m in methods if (s, m) not in done] for s in sequences}
    return {s: m for s, m in todo.items() if m}


def select_sequences(reader: SequenceReader, num_sequences: int | None, seed: int) -> list[str]:
    """The reader's sequences (split file applied), sampled down to ``num_sequences`` with ``seed``."""
    names = reader.names()
    if not names:
        raise Gen3RError(f"{reader.dataset}: no sequences found; check --root (and --split)")
    return names if num_sequences is None else sample_sequences(names, num_sequences, seed)


# ------------------------------------------------------------------------------------------- main

def check_readable(reader: SequenceReader, names: Sequence[str], cfg: EvalConfig,
                   skip_unreadable: bool = False) -> dict[str, str]:
    """Read every clip of ``names`` the run will use, before any model is loaded.

    Returns sequence -> problem for unreadable sequences when ``skip_unreadable``; otherwise the
    first unreadable sequence raises Gen3RError naming it, the problem and the way out. Sequences
    too short for the clip are not problems here (they are recorded as skipped).
    """
    problems: dict[str, str] = {}
    for name in tqdm(list(names), desc="check data", disable=None, leave=False):
        try:
            idx = sample_frame_indices(reader.num_frames(name), cfg.num_frames, cfg.stride, start=0)
            reader.load(name, idx)
        except TooFewFrames:
            continue
        except Gen3RError as exc:
            if not skip_unreadable:
                raise Gen3RError(f"sequence {name!r} cannot be read: {exc} (or pass --skip-unreadable to record "
                                 "it as unreadable and evaluate the others)") from None
            logger.warning("%s is unreadable (recorded, retried next run): %s", name, exc)
            problems[name] = str(exc)
    return problems


@dataclass
class EvalPlan:
    """What one evaluation run will do, decided once before any model loads (:func:`plan_run`): the
    settings, the sequences, the ``config.json`` content, the (sequence -> methods) still to run
    and the sequences whose data cannot be read (name -> reason)."""

    cfg: EvalConfig
    names: list[str]
    config: dict[str, Any]
    todo: dict[str, list[str]]
    unreadable: dict[str, str]


def plan_run(dataset_reader: SequenceReader, task: str, out_dir: str | Path, *, dataset: str | None = None,
             sequences: Sequence[str] | None = None, skip_unreadable: bool = False, checkpoint: str | None = None,
             **settings: Any) -> EvalPlan:
    """Plan an evaluation (see :func:`evaluate` for the arguments): settings checked, sequences chosen,
    an earlier run in ``out_dir`` checked for the same settings (and what its ranks appended merged),
    pending work listed and the data of every pending sequence checked readable. Writes nothing else."""
    import torch.distributed as dist

    cfg = EvalConfig(task=task, **settings)
    names = list(sequences) if sequences is not None else select_sequences(dataset_reader, cfg.num_sequences,
                                                                          cfg.seed)
    config = run_config(cfg, dataset_reader, names, dataset, checkpoint)
    check_config(out_dir, config, write=False)
    main_rank = not dist.is_initialized() or dist.get_rank() == 0
    if main_rank:
        merge_rank_records(out_dir, names)  # what ranks of a killed run appended
    if dist.is_initialized():
        dist.barrier()
    todo = pending_methods(out_dir, names, cfg.methods)
    unreadable = check_readable(dataset_reader, list(todo), cfg, skip_unreadable)
    return EvalPlan(cfg, names, config, todo, dict(unreadable))


def evaluate(pipe: Any, dataset_reader: SequenceReader, task: str, out_dir: str | Path, *,
             lpips_model: LPIPS | None = None, plan: EvalPlan | None = None,
             **options: Any) -> dict[str, dict[str, Any]]:
    """Evaluate ``pipe`` (a :class:`~gen3r.pipeline.Gen3RPipeline`) on a dataset; see the module docstring.

    Args:
        pipe: the pipeline (``__call__``, ``vggt``, ``encode_geometry``/``decode_geometry``); may be
            None when every sequence is already done (then only the tables are rewritten).
        dataset_reader: a reader of :mod:`gen3r.eval.datasets`.
        task: ``1view`` | ``2view`` | ``recon``.
        out_dir: output folder (created; resumed when it holds an earlier run of the same settings).
        lpips_model: an :class:`gen3r.eval.LPIPS` model, or None to leave LPIPS empty.
        plan: the :func:`plan_run` of this call when the caller made it (the CLI does, before loading
            the models); None = plan here from ``options``.
        **options: for :func:`plan_run`: ``dataset`` (name stored in the config and the table
            title), ``sequences`` (explicit names; default :func:`select_sequences`),
            ``skip_unreadable`` (record unreadable sequences, reason ``unreadable``, retried by the
            next run, instead of stopping at the first) and the :class:`EvalConfig` fields
            (methods, num_frames, height, ...).

    Returns:
        :func:`summarize` of ``out_dir`` (per method: means, dataset-level pose AUC, counts).
    """
    out_dir = Path(out_dir)
    ranks = init_distributed(str(getattr(pipe, "_exec_device", "cpu")))
    if plan is None:
        plan = plan_run(dataset_reader, task, out_dir, checkpoint=getattr(pipe, "checkpoint_path", None), **options)
    cfg, names, todo, unreadable = plan.cfg, plan.names, plan.todo, plan.unreadable
    if lpips_model is None and ranks.is_main:
        logger.warning("no LPIPS weights given: the LPIPS column stays empty (pass --lpips-weights)")
    config = {**plan.config, "checkpoint": getattr(pipe, "checkpoint_path", None) or plan.config.get("checkpoint")}
    if ranks.is_main:
        config = check_config(out_dir, config)
    ranks.barrier()
    if todo and pipe is None and set(todo) - set(unreadable):
        raise Gen3RError(f"{len(todo)} sequences still need a pipeline; pass one")
    mine = list(todo)[ranks.rank::ranks.world_size]
    logger.info("%s: %d sequences, %d to run (%s)%s", config["dataset"], len(names), len(todo), ", ".join(cfg.methods),
                f", {len(mine)} on rank {ranks.rank} of {ranks.world_size}" if ranks.distributed else "")
    jsonl = out_dir / (JSONL_NAME if not ranks.distributed else f"{JSONL_STEM}.rank{ranks.rank}.jsonl")
    for name in tqdm(mine, desc=f"eval {cfg.task}", disable=None if ranks.is_main else True):
        if name in unreadable:
            records = [{"sequence": name, "task": cfg.task, "method": m, "skipped": unreadable[name],
                        "reason": UNREADABLE} for m in todo[name]]
        else:
            records = _evaluate_sequence(pipe, dataset_reader, name, cfg, todo[name], lpips_model)
        for record in records:
            _append_record(jsonl, record)
    ranks.barrier()
    summary = {}
    if ranks.is_main:
        merge_rank_records(out_dir, names)
        summary = summarize(out_dir)
        write_tables(out_dir, summary, config)
    ranks.barrier()
    return summary if ranks.is_main else summarize(out_dir)


def merge_rank_records(out_dir: str | Path, names: Sequence[str]) -> int:
    """Append the records of the per-rank files ``metrics.rank<r>.jsonl`` (data-parallel evaluation)
    to ``metrics.jsonl`` in the order of ``names`` (so the file does not depend on the number of
    ranks), then delete them. Torn last lines of killed ranks are dropped. Returns the records moved."""
    out_dir = Path(out_dir)
    parts = sorted(out_dir.glob(f"{JSONL_STEM}.rank*.jsonl"))
    if not parts:
        return 0
    records = []
    for part in parts:
        for line in part.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "sequence" in rec and "method" in rec:
                records.append(rec)
    order = {n: i for i, n in enumerate(names)}
    records.sort(key=lambda r: (order.get(r["sequence"], len(order)), METHODS.index(r["method"])
                                if r["method"] in METHODS else len(METHODS)))
    target = out_dir / JSONL_NAME
    existing = target.read_text(encoding="utf-8") if target.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing = existing[: existing.rfind("\n") + 1]  # a torn last line
    with atomic_path(target) as tmp:
        tmp.write_text(existing + "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records),
                       encoding="utf-8")
    for part in parts:
        part.unlink()
    return len(records)


def _evaluate_sequence(pipe: Any, reader: SequenceReader, name: str, cfg: EvalConfig, methods: Sequence[str],
                       lpips_model: LPIPS | None) -> list[dict[str, Any]]:
    """Records of one sequence; a sequence too short for the clip yields ``skipped`` records (reason
    :data:`TOO_FEW_FRAMES`); any other data problem is an error (see :func:`check_readable`)."""
    base = {"sequence": name, "task": cfg.task}
    try:
        idx = sample_frame_indices(reader.num_frames(name), cfg.num_frames, cfg.stride, start=0)
    except TooFewFrames as exc:
        logger.warning("%s skipped: %s", name, exc)
        return [{**base, "method": m, "skipped": str(exc), "reason": TOO_FEW_FRAMES} for m in methods]
    start = time.perf_counter()
    data = reader.load(name, idx)
    seq = prepare_sequence(data, cfg.height, cfg.width, cfg.max_depth)
    if seq.points is None:
        logger.info("%s has no ground-truth depth: geometry metrics stay empty", name)
    preds = predict(pipe, seq, cfg, methods)
    records = [{**base, "method": m, "frame_ids": data.frame_ids, **score_prediction(preds[m], seq, cfg, lpips_model)}
               for m in methods]
    seconds = round(time.perf_counter() - start, 3)  # reading + all methods + scoring of this sequence
    return [{**r, "sequence_seconds": seconds} for r in records]


def summarize(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per method: mean of every metric over the sequences that have it, dataset-level pose metrics.

    Pose AUC@30/15/5 and RRA@30 / RTA@30 are computed, as VGGT does, from the per-pair errors of
    all sequences concatenated; the other metrics are means of per-sequence values (per-sequence
    appearance values are themselves means over frames). ``num_sequences`` counts scored
    sequences, ``num_skipped`` the others and ``skipped`` their reasons (reason -> sequence names).
    The newest record of each sequence counts (:func:`latest_records`).
    """
    by_method: dict[str, list[dict[str, Any]]] = {}
    for rec in latest_records(out_dir):
        by_method.setdefault(rec["method"], []).append(rec)
    summary: dict[str, dict[str, Any]] = {}
    for method in sorted(by_method, key=lambda m: METHODS.index(m) if m in METHODS else len(METHODS)):
        recs = [r for r in by_method[method] if "skipped" not in r]
        reasons: dict[str, list[str]] = {}
        for r in by_method[method]:
            if "skipped" in r:
                reasons.setdefault(r.get("reason", TOO_FEW_FRAMES), []).append(r["sequence"])
        row: dict[str, Any] = {"label": METHOD_LABELS.get(method, method), "num_sequences": len(recs),
                               "num_skipped": len(by_method[method]) - len(recs), "skipped": reasons}
        for key in METRIC_KEYS:
            values = [r["metrics"][key] for r in recs if r["metrics"].get(key) is not None]
            row[key] = float(np.mean(values)) if values else None
        rra = np.concatenate([r["pose_errors"]["rra"] for r in recs if r.get("pose_errors")] or [np.zeros(0)])
        rta = np.concatenate([r["pose_errors"]["rta"] for r in recs if r.get("pose_errors")] or [np.zeros(0)])
        if len(rra):
            row.update(auc30=auc_from_errors(rra, rta, 30), auc15=auc_from_errors(rra, rta, 15),
                       auc5=auc_from_errors(rra, rta, 5), rra30=float((rra < 30).mean()),
                       rta30=float((rta < 30).mean()), rra_mean_deg=float(rra.mean()), rta_mean_deg=float(rta.mean()))
        summary[method] = row
    return summary


__all__ = ["DATASETS", "TASKS", "METHODS", "METHOD_LABELS", "DEFAULT_BASELINES", "EvalConfig", "EvalSequence",
           "Prediction", "EvalPlan", "plan_run", "evaluate", "summarize", "prepare_sequence", "predict",
           "score_prediction",
           "vggt_reconstruct", "read_records", "latest_records", "pending_methods", "select_sequences", "run_config",
           "check_config", "check_readable", "merge_rank_records", "TOO_FEW_FRAMES", "UNREADABLE"]
