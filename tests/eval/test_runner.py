"""gen3r.eval.runner: the benchmark loop, scoring, JSONL resume and the paper-style tables.

Most tests use an *oracle* pipeline that returns the ground truth of the clip it is given (found
by matching the condition frames), so every metric has a known answer independent of any model:
PSNR = inf, SSIM = 1, LPIPS = 0, Chamfer = 0, pose AUC = 1. The real tiny checkpoint runs in
``tests/cli/test_eval.py`` (through ``gen3r eval``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gen3r.data.procedural import render_scene
from gen3r.data.writers import write_nerfstudio, write_official, write_re10k
from gen3r.errors import Gen3RError
from gen3r.eval import LPIPS
from gen3r.eval.datasets import NerfstudioReader, OfficialLayoutReader, RealEstate10KReader, sample_frame_indices
from gen3r.eval.report import CSV_FIELDS
from gen3r.eval.runner import (
    EvalConfig,
    evaluate,
    pending_methods,
    prepare_sequence,
    read_records,
    summarize,
)
from gen3r.pipeline.output import Gen3ROutput

SIZE = {"num_frames": 5, "height": 112, "width": 112}
#: No farthest point sampling (clouds of 5 x 112 x 112 points are kept whole): distances are exact.
EXACT = {**SIZE, "steps": 1, "num_points": 100_000}


# ------------------------------------------------------------------------------------------ oracle

class OracleBank:
    """Ground truth of every clip of a reader at the working size, found by frame content."""

    def __init__(self, reader, num_frames: int = 5, size: int = 112) -> None:
        self.entries = []
        for name in reader.names():
            if reader.num_frames(name) >= num_frames:
                data = reader.load(name, sample_frame_indices(reader.num_frames(name), num_frames))
                self.entries.append(prepare_sequence(data, size, size))

    def find(self, images: torch.Tensor):
        """(n, 3, H, W) frames -> (entry, clip indices of each frame)."""
        for e in self.entries:
            idx = [next((j for j in range(len(e.frames)) if torch.equal(img, e.frames[j])), None) for img in images]
            if all(i is not None for i in idx):
                return e, idx
        raise AssertionError("frames are not from any ground-truth clip")


class OracleVGGT(torch.nn.Module):
    """Fake VGGT: tokens are the images; cameras and depth are the ground truth of those frames."""

    def __init__(self, bank: OracleBank) -> None:
        super().__init__()
        self.bank = bank
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def aggregate(self, images):
        return [images], 5

    def predict_cameras(self, tokens):
        from gen3r.cameras import extri_intri_to_pose_encoding

        entry, idx = self.bank.find(tokens[-1][0])
        cams = entry.cameras.index(idx)
        return [extri_intri_to_pose_encoding(cams.extrinsics[:, :3], cams.intrinsics, cams.image_size)[None]]

    def predict_depth(self, tokens, image_size, patch_start_idx=5):
        entry, idx = self.bank.find(tokens[-1][0])
        depth = torch.from_numpy(entry.depth[idx])[None, ..., None]
        return depth, torch.ones(depth.shape[:-1])


class OraclePipeline:
    """Returns the ground truth of the clip whose condition frames it receives.

    ``sim3`` maps the returned world points and cameras into another frame / scale (the metrics
    must not care); ``rgb_noise`` adds Gaussian noise of that std to the frames.
    """

    def __init__(self, bank: OracleBank, sim3: tuple[float, np.ndarray, np.ndarray] | None = None,
                 rgb_noise: float = 0.0) -> None:
        self.bank, self.vggt = bank, OracleVGGT(bank)
        self.sim3, self.rgb_noise = sim3, rgb_noise
        self.calls: list[dict] = []

    def _geometry(self, entry) -> dict:
        ext = entry.cameras.extrinsics.double().clone()
        points = entry.points.copy()
        if self.sim3 is not None:
            s, r, t = self.sim3  # X' = s R X + t; w2c' = [Rc R^T | s tc - Rc R^T t]
            points = s * points @ r.T + t
            rc = ext[:, :3, :3] @ torch.from_numpy(r).T
            ext[:, :3, 3] = s * ext[:, :3, 3] - (rc @ torch.from_numpy(t))
            ext[:, :3, :3] = rc
        return {"extrinsics": ext[None, :, :3].float(), "intrinsics": entry.cameras.intrinsics[None].float(),
                "depth": torch.from_numpy(entry.depth)[None], "world_points": points[None],
                "point_mask": entry.valid[None]}

    def __call__(self, images, task=None, cameras=None, num_frames=49, generator=None, **kwargs):
        self.calls.append({"task": task, "cameras": cameras, "num_frames": num_frames, **kwargs})
        entry, idx = self.bank.find(images[0])
        rgb = entry.frames.permute(0, 2, 3, 1)
        if self.rgb_noise:
            noise = torch.randn(rgb.shape, generator=torch.Generator().manual_seed(0))
            rgb = (rgb + self.rgb_noise * noise).clamp(0, 1)
        geo = self._geometry(entry)
        ones = torch.ones(geo["depth"].shape)
        return Gen3ROutput(rgb=rgb[None].contiguous(), depth=geo["depth"], depth_conf=ones,
                           point_map=torch.from_numpy(geo["world_points"]).float(), point_conf=ones,
                           world_points=geo["world_points"], point_mask=geo["point_mask"],
                           extrinsics=geo["extrinsics"], intrinsics=geo["intrinsics"])

    def encode_geometry(self, frames):
        return SimpleNamespace(mean=frames)

    def decode_geometry(self, latents, height, width):
        entry, _ = self.bank.find(latents[0])
        return self._geometry(entry)


# ---------------------------------------------------------------------------------------- fixtures

def _scene(seed: int, frames: int = 5):
    return render_scene(seed, frames, 120, 144, kind="indoor", trajectory="walk")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The same kind of procedural scenes in three layouts; RE10K also holds a 3-frame sequence."""
    root = tmp_path_factory.mktemp("eval_data")
    scenes = [_scene(1), _scene(2, frames=6)]
    write_re10k(root / "re10k", {"test": [*scenes, _scene(3, frames=3)]})
    for i, s in enumerate(scenes):
        write_nerfstudio(root / "dl3dv" / f"scene{i}", s)
    write_official(root / "official", {"test": scenes})
    return root


def _records(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["sequence"], r["method"]): r for r in read_records(out)}


# ------------------------------------------------------------------------------------------ tests

def test_oracle_2view_gives_perfect_metrics(datasets, tmp_path):
    reader = RealEstate10KReader(datasets / "re10k")
    pipe = OraclePipeline(OracleBank(reader))
    summary = evaluate(pipe, reader, "2view", tmp_path / "out", methods=("gen3r", "vggt", "two_stage"),
                       lpips_model=LPIPS("alex"), **EXACT)
    recs = _records(tmp_path / "out")
    assert {k[1] for k in recs} == {"gen3r", "vggt", "two_stage"}
    assert {k[0] for k in recs} == {"scene_00000", "scene_00001", "scene_00002"}
    for seq in ("scene_00000", "scene_00001"):
        m = recs[(seq, "gen3r")]["metrics"]
        assert m["psnr"] == math.inf and m["ssim"] == pytest.approx(1.0, abs=1e-12) and m["lpips"] < 1e-9
        assert m["chamfer"] < 1e-9 and m["accuracy"] < 1e-9
        assert m["auc30"] == 1.0 and m["auc5"] == 1.0 and m["rra_mean_deg"] < 1e-6
        assert recs[(seq, "gen3r")]["frames"] == [0, 1, 2, 3, 4]
        # VGGT sees frames 0 and 4 only: its points lie on the GT surface, but it misses the rest
        v = recs[(seq, "vggt")]
        assert v["frames"] == [0, 4] and v["metrics"]["psnr"] is None
        assert v["metrics"]["accuracy"] < 1e-3 < v["metrics"]["completeness"]
        assert v["metrics"]["auc30"] == 1.0 and len(v["pose_errors"]["rra"]) == 1
        t = recs[(seq, "two_stage")]["metrics"]
        assert t["psnr"] == math.inf and t["auc30"] == 1.0 and t["accuracy"] < 1e-3
    # ground-truth cameras of the whole clip condition the generation; seed differs per sequence
    assert all(c["task"] == "2view" and len(c["cameras"]) == 5 for c in pipe.calls)
    assert recs[("scene_00002", "gen3r")]["skipped"].startswith("a clip of 5 frames")
    assert summary["gen3r"]["num_sequences"] == 2 and summary["gen3r"]["num_skipped"] == 1
    assert summary["gen3r"]["auc30"] == 1.0 and summary["gen3r"]["psnr"] == math.inf
    assert list(summary) == ["vggt", "two_stage", "gen3r"]


def test_metrics_ignore_frame_and_scale_but_see_noise(datasets, tmp_path):
    reader = NerfstudioReader(datasets / "dl3dv")
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    pipe = OraclePipeline(OracleBank(reader), sim3=(0.37, rot, np.array([3.0, -1.0, 2.0])), rgb_noise=0.05)
    evaluate(pipe, reader, "1view", tmp_path / "out", methods=("gen3r",), **EXACT)
    for rec in read_records(tmp_path / "out"):
        m = rec["metrics"]
        assert m["chamfer"] < 1e-9 and m["auc30"] == 1.0 and m["rta_mean_deg"] < 1e-3
        # noise std 0.05 clamped to [0, 1]: MSE <= 0.0025 -> PSNR >= 26 dB, and not perfect
        assert 26.0 <= m["psnr"] < 40.0 and m["ssim"] < 0.99
        assert m["lpips"] is None  # no LPIPS model given: the column stays empty, never a made-up value
    assert "LPIPS ↓" in (tmp_path / "out" / "results.md").read_text()


def test_wrong_cameras_lower_the_auc(datasets, tmp_path):
    reader = OfficialLayoutReader(datasets / "official")
    pipe = OraclePipeline(OracleBank(reader))
    original = pipe._geometry

    def reversed_cameras(entry):
        geo = original(entry)
        geo["extrinsics"] = geo["extrinsics"].flip(1)  # cameras in reverse order
        return geo

    pipe._geometry = reversed_cameras
    summary = evaluate(pipe, reader, "1view", tmp_path / "out", methods=("gen3r",), **EXACT)
    assert summary["gen3r"]["auc30"] < 0.9
    assert summary["gen3r"]["chamfer"] < 1e-6  # geometry is unaffected


def test_recon_vae_only_and_tables(datasets, tmp_path):
    reader = OfficialLayoutReader(datasets / "official")
    pipe = OraclePipeline(OracleBank(reader))
    out = tmp_path / "out"
    summary = evaluate(pipe, reader, "recon", out, methods=("gen3r", "vggt", "vae_only"), **EXACT)
    assert all(c["task"] == "allview" and c["cameras"] is None for c in pipe.calls)
    recs = _records(out)
    assert recs[("scene_00000", "vae_only")]["metrics"]["chamfer"] < 1e-9
    assert recs[("scene_00000", "vae_only")]["metrics"]["psnr"] is None
    assert recs[("scene_00000", "gen3r")]["metrics"]["psnr"] == math.inf  # recon: all frames are scored
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["method"] for r in rows] == ["vggt", "vae_only", "gen3r"]
    assert list(rows[0]) == list(CSV_FIELDS)
    assert rows[1]["psnr"] == "" and float(rows[1]["chamfer"]) < 1e-9 and rows[2]["num_sequences"] == "2"
    md = (out / "results.md").read_text().splitlines()
    table = [line for line in md if line.startswith("|")]
    assert table[0].split("|")[1:4] == [" Method ", " N ", " Appearance "] and "Geometry" in table[0]
    assert "**CD ↓**" in table[2] and "**AUC@30 ↑**" in table[2]
    assert [line.split("|")[1].strip() for line in table[3:]] == ["VGGT", "Ours (VAE only)", "Ours"]
    assert all(len(line.split("|")) == len(table[0].split("|")) for line in table)
    assert "feed-forward reconstruction, without camera conditions" in md[0]
    assert summary["vae_only"]["auc30"] == 1.0


def test_resume_runs_only_missing_sequences_and_methods(datasets, tmp_path):
    reader = RealEstate10KReader(datasets / "re10k")
    pipe = OraclePipeline(OracleBank(reader))
    out = tmp_path / "out"
    evaluate(pipe, reader, "1view", out, methods=("gen3r",), sequences=["scene_00000"], **EXACT)
    assert len(pipe.calls) == 1
    # simulate a crash in the middle of writing the next line: the torn line is dropped
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"sequence": "scene_00001", "meth')
    evaluate(pipe, reader, "1view", out, methods=("gen3r",), sequences=["scene_00000"], **EXACT)
    assert len(pipe.calls) == 1
    assert len(read_records(out)) == 1
    # adding a method runs it for done sequences too; gen3r is not re-run when only vggt is missing
    evaluate(pipe, reader, "1view", out, methods=("gen3r", "vggt"), sequences=["scene_00000"], **EXACT)
    assert len(pipe.calls) == 1 and len(read_records(out)) == 2
    assert pending_methods(out, ["scene_00000", "scene_00001"], ["gen3r", "vggt"]) == {
        "scene_00001": ["gen3r", "vggt"]}
    assert json.loads((out / "config.json").read_text())["methods"] == ["vggt", "gen3r"]
    # nothing left to do: no pipeline needed, the tables are rewritten
    (out / "results.md").unlink()
    evaluate(None, reader, "1view", out, methods=("gen3r", "vggt"), sequences=["scene_00000"], **EXACT)
    assert (out / "results.md").is_file()
    with pytest.raises(Gen3RError, match="other settings"):
        evaluate(pipe, reader, "1view", out, methods=("gen3r",), sequences=["scene_00000"], **{**EXACT, "steps": 2})
    # adding a sequence runs only that one; the folder's config and tables cover both
    summary = evaluate(pipe, reader, "1view", out, methods=("gen3r",), sequences=["scene_00001"], **EXACT)
    assert len(pipe.calls) == 2
    assert json.loads((out / "config.json").read_text())["sequences"] == ["scene_00000", "scene_00001"]
    assert summary["gen3r"]["num_sequences"] == 2 and len(read_records(out)) == 3
    (out / "metrics.jsonl").write_text("not json\n")
    with pytest.raises(Gen3RError, match="line 1 of .* is not JSON"):
        read_records(out)


def test_max_points_subsamples_consistently(datasets, tmp_path):
    reader = RealEstate10KReader(datasets / "re10k")
    pipe = OraclePipeline(OracleBank(reader))
    evaluate(pipe, reader, "2view", tmp_path / "out", methods=("gen3r", "vggt"), sequences=["scene_00000"],
             **{**EXACT, "max_points": 5000})
    recs = _records(tmp_path / "out")
    # the same pixels are drawn from prediction and ground truth, so identical maps stay identical
    assert recs[("scene_00000", "gen3r")]["metrics"]["chamfer"] < 1e-9
    assert math.isfinite(recs[("scene_00000", "vggt")]["metrics"]["chamfer"])


def test_prepare_sequence_crops_frames_depth_and_intrinsics(datasets):
    reader = RealEstate10KReader(datasets / "re10k")
    data = reader.load("scene_00000")
    seq = prepare_sequence(data, 112, 112)
    assert seq.frames.shape == (5, 3, 112, 112) and seq.depth.shape == (5, 112, 112)
    # 120x144 -> resized to 112x134 (x scale 134/144, y scale 112/120) -> 11 columns cropped on the left
    k = seq.cameras.intrinsics[0]
    assert float(k[0, 0]) == pytest.approx(float(data.intrinsics[0, 0, 0]) * 134 / 144, rel=1e-9)
    assert float(k[1, 1]) == pytest.approx(float(data.intrinsics[0, 1, 1]) * 112 / 120, rel=1e-9)
    assert float(k[0, 2]) == pytest.approx(56.0, abs=0.6) and float(k[1, 2]) == pytest.approx(56.0, abs=1e-6)
    # unprojected GT points reproject onto their own pixels
    ext, intr = seq.cameras.numpy()
    cam = seq.points[2].reshape(-1, 3) @ ext[2, :3, :3].T + ext[2, :3, 3]
    uv = cam[:, :2] / cam[:, 2:] * np.diag(intr[2])[:2] + intr[2, :2, 2]
    grid = np.stack(np.meshgrid(np.arange(112), np.arange(112)), -1).reshape(-1, 2)
    assert np.abs(uv - grid).max() < 1e-3
    assert seq.valid.all()


@pytest.mark.parametrize("settings,needle", [
    ({"task": "4view"}, "unknown task"),
    ({"task": "1view", "methods": ("gen3r", "vae_only")}, "vae_only is a reconstruction baseline"),
    ({"task": "recon", "camera_cond": True}, "without camera conditions"),
    ({"task": "1view", "num_frames": 6}, r"4k\+1"),
    ({"task": "1view", "height": 100}, "multiple of 112"),
    ({"task": "1view", "methods": ()}, "no method"),
])
def test_bad_settings(settings, needle):
    with pytest.raises(Gen3RError, match=needle):
        EvalConfig(**settings)


def test_summary_pools_pose_errors_over_sequences_like_vggt(tmp_path):
    """Dataset AUC comes from all pairs pooled (VGGT), not from the mean of per-sequence AUCs."""
    from gen3r.eval.report import csv_table, markdown_table

    empty = dict.fromkeys(("ssim", "lpips", "accuracy", "completeness", "chamfer"))
    lines = [
        {"sequence": "a", "method": "gen3r", "metrics": {**empty, "psnr": 20.0},
         "pose_errors": {"rra": [1.0, 10.0], "rta": [2.0, 40.0]}},
        {"sequence": "b", "method": "gen3r", "metrics": {**empty, "psnr": 30.0},
         "pose_errors": {"rra": [50.0], "rta": [0.5]}},
        {"sequence": "c", "method": "gen3r", "skipped": "too short"},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    row = summarize(tmp_path)["gen3r"]
    # worst errors 2, 40, 50 degrees: only the 2-degree pair counts, from bin [2, 3) on: 28 of 30 bins at 1/3
    assert row["auc30"] == pytest.approx(28 / 30 / 3)  # per-sequence mean would be (28/30/2 + 0) / 2
    assert row["auc5"] == pytest.approx(3 / 5 / 3)
    assert row["rra30"] == pytest.approx(2 / 3) and row["rta30"] == pytest.approx(2 / 3)
    assert row["rra_mean_deg"] == pytest.approx(61 / 3) and row["psnr"] == 25.0
    assert row["num_sequences"] == 2 and row["num_skipped"] == 1
    assert row["lpips"] is None and row["chamfer"] is None
    md = markdown_table({"gen3r": row}, {"dataset": "x", "task": "1view", "camera_cond": True, "sequences": ["a"]})
    assert "| Ours | 2 | 25.00 | – | – | – | – | – | – | 0.3111 |" in md
    assert "Skipped: Ours: 1 too few frames (c)." in md
    parsed = list(csv.DictReader(csv_table({"gen3r": row}).splitlines()))
    assert parsed[0]["psnr"] == "25.0" and parsed[0]["chamfer"] == "" and parsed[0]["num_skipped"] == "1"


def test_metric_failure_is_recorded_not_invented(datasets, tmp_path):
    """max_depth below every ground-truth depth leaves no valid GT pixel: geometry stays empty with
    the reason in ``errors``; appearance and cameras are still scored."""
    reader = RealEstate10KReader(datasets / "re10k")
    pipe = OraclePipeline(OracleBank(reader))
    summary = evaluate(pipe, reader, "1view", tmp_path / "out", methods=("gen3r",), sequences=["scene_00000"],
                       max_depth=1e-3, **EXACT)
    rec = read_records(tmp_path / "out")[0]
    assert rec["metrics"]["chamfer"] is None and "fewer than 3 points" in rec["errors"]["geometry"]
    assert rec["metrics"]["auc30"] == 1.0 and rec["metrics"]["psnr"] == math.inf
    assert summary["gen3r"]["chamfer"] is None
    with pytest.raises(Gen3RError, match="max_depth"):
        EvalConfig(task="1view", max_depth=0.0)
