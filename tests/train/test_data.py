"""Training data: official frame selection / padding, the official-layout reader, procedural data,
the weighted mixture and the step-indexed sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gen3r.data.procedural import render_scene
from gen3r.data.writers import write_official
from gen3r.errors import Gen3RError
from gen3r.pipeline.preprocess import resize_and_center_crop
from gen3r.train.config import DataConfig, ProceduralDataConfig
from gen3r.train.data import (
    DrawSampler,
    OfficialLayoutDataset,
    ProceduralDataset,
    WeightedMultiDataset,
    build_dataset,
    collate,
    select_frames,
)

# ----------------------------------------------------------------------------- frame selection

@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), f=st.integers(1, 50), max_stride=st.integers(1, 3), seed=st.integers(0, 10 ** 6))
def test_select_frames_properties(n, f, max_stride, seed):
    idx = select_frames(n, f, max_stride, np.random.default_rng(seed))
    assert len(idx) == f and all(0 <= i < n for i in idx)
    steps = np.diff(idx)
    if f <= n:  # a real clip: constant stride in 1..max_stride
        assert len(set(steps.tolist())) <= 1 and all(1 <= s <= max_stride for s in steps)
        if (f - 1) * 2 + 1 > n:  # too short for stride 2 -> stride 1
            assert all(s == 1 for s in steps)
    else:  # padded: first frame repeated p times, the whole clip, last frame repeated
        assert any(idx == [0] * p + list(range(n)) + [n - 1] * (f - n - p) for p in range(f - n + 1))


def test_select_frames_padding_split_is_random():
    splits = {select_frames(3, 9, 1, np.random.default_rng(s)).count(0) for s in range(40)}
    assert splits == set(range(1, 8))  # 0..6 extra copies of frame 0 (the rest go to the last frame)


def test_select_frames_stride_distribution():
    strides = [np.diff(select_frames(100, 9, 2, np.random.default_rng(s)))[0] for s in range(200)]
    assert set(strides) == {1, 2} and 60 < strides.count(2) < 140


# ---------------------------------------------------------------------------- official layout

@pytest.fixture(scope="module")
def scenes():
    return [render_scene(s, 9, 96, 128, num_objects=2) for s in (3, 4)]


@pytest.fixture(scope="module")
def root(tmp_path_factory, scenes):
    root = tmp_path_factory.mktemp("train_data")
    write_official(root / "re10k", scenes)
    return root


def _expected(scene, chosen, height, width):
    """Independent crop of the written 8-bit frames, intrinsics and relative c2w (numpy)."""
    rgb = torch.from_numpy(np.round(np.clip(scene.rgb[chosen], 0, 1) * 255) / 255).permute(0, 3, 1, 2).float()
    frames = resize_and_center_crop(rgb, height, width)
    h, w = scene.image_size
    s = max(height / h, width / w)
    nh, nw = round(h * s), round(w * s)
    top, left = (nh - height) // 2, (nw - width) // 2
    k = scene.intrinsics[chosen].astype(np.float64).copy()
    k[:, 0] *= nw / w
    k[:, 1] *= nh / h
    k[:, 0, 2] -= left
    k[:, 1, 2] -= top
    c2w = np.linalg.inv(scene.extrinsics[chosen].astype(np.float64))
    rel = np.linalg.inv(c2w[0]) @ c2w
    return frames, k, rel


def test_official_layout_sample(root, scenes):
    ds = OfficialLayoutDataset(root / "re10k", "train", num_frames=5, height=112, width=112, max_stride=2, seed=7)
    assert len(ds) == 2
    for index in range(2):
        sample = ds[index]
        rng = np.random.default_rng([7, index])
        chosen = select_frames(9, 5, 2, rng)
        frames, k, rel = _expected(scenes[index], chosen, 112, 112)
        assert sample["frames"].shape == (5, 3, 112, 112) and sample["frames"].dtype == torch.float32
        torch.testing.assert_close(sample["frames"], frames, atol=1e-6, rtol=0)
        cams = sample["cameras"]
        assert cams.image_size == (112, 112)
        np.testing.assert_allclose(cams.intrinsics.double().numpy(), k, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(cams.c2w.double().numpy(), rel, atol=2e-5)
        np.testing.assert_allclose(cams.c2w[0].double().numpy(), np.eye(4), atol=1e-6)
        assert sample["caption"] in scenes[index].captions and sample["source"] == f"re10k/{index}"


def test_official_layout_pads_short_clips(root, scenes):
    ds = OfficialLayoutDataset(root / "re10k", num_frames=13, height=112, width=112, seed=1)
    sample = ds[0]
    chosen = select_frames(9, 13, 1, np.random.default_rng([1, 0]))
    assert sorted(set(chosen)) == list(range(9)) and len(chosen) == 13
    frames, _, rel = _expected(scenes[0], chosen, 112, 112)
    torch.testing.assert_close(sample["frames"], frames, atol=1e-6, rtol=0)
    np.testing.assert_allclose(sample["cameras"].c2w.double().numpy(), rel, atol=2e-5)


def test_official_layout_errors(tmp_path, root):
    with pytest.raises(Gen3RError, match="does not exist"):
        OfficialLayoutDataset(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train_videos_dirs.txt").write_text("a\nb\n")
    (tmp_path / "bad" / "train_cameras_paths.txt").write_text("a\n")
    with pytest.raises(Gen3RError, match="train_captions_paths.txt is missing"):
        OfficialLayoutDataset(tmp_path / "bad")
    (tmp_path / "bad" / "train_captions_paths.txt").write_text("a\n")
    with pytest.raises(Gen3RError, match="different numbers of scenes"):
        OfficialLayoutDataset(tmp_path / "bad")
    # a transforms.json with a frame missing
    ds = OfficialLayoutDataset(root / "re10k", num_frames=5, height=112, width=112)
    broken = tmp_path / "transforms.json"
    data = json.loads(Path(ds.scenes[0][1]).read_text())
    data["frames"] = data["frames"][:-1]
    broken.write_text(json.dumps(data))
    ds.scenes[0] = (ds.scenes[0][0], broken, ds.scenes[0][2])
    with pytest.raises(Gen3RError, match="8 camera frames for 9 images"):
        ds[0]


# ---------------------------------------------------------------------------------- mixtures

def test_build_dataset_uses_official_weights(root):
    mix = build_dataset(DataConfig(root=str(root), num_frames=5, height=112, width=112), seed=0)
    assert mix.names == ["re10k"] and mix[3]["frames"].shape == (5, 3, 112, 112)
    with pytest.raises(Gen3RError, match="none of the official dataset folders"):
        build_dataset(DataConfig(root=str(root / "re10k")), seed=0)
    with pytest.raises(Gen3RError, match="does not exist"):
        build_dataset(DataConfig(root=str(root / "missing"), weights={"x": 1.0}), seed=0)


def test_weighted_mixture_frequencies_and_determinism():
    class Sized:
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    mix = WeightedMultiDataset({"a": Sized(3), "b": Sized(5)}, {"a": 1.0, "b": 3.0}, seed=5)
    draws = [mix.draw(k)[:2] for k in range(4000)]
    share_b = sum(name == "b" for name, _ in draws) / len(draws)
    assert abs(share_b - 0.75) < 0.03
    assert {i for name, i in draws if name == "a"} == {0, 1, 2}
    assert draws[:50] == [mix.draw(k)[:2] for k in range(50)]
    with pytest.raises(Gen3RError, match="different folders"):
        WeightedMultiDataset({"a": Sized(1)}, {"b": 1.0})


def test_draw_sampler_ranks_disjoint_and_resumable():
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    r0, r1 = take(DrawSampler(0, 2, 3), 12), take(DrawSampler(1, 2, 3), 12)
    assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(24))
    assert take(DrawSampler(1, 2, 3, start_step=2), 6) == r1[6:]


def test_procedural_dataset_and_collate():
    ds = ProceduralDataset(2, 5, 112, 112, seed=11, render_frames=7, render_size=(96, 128), kind="indoor")
    a, b = ds[1], ds[1]
    torch.testing.assert_close(a["frames"], b["frames"])
    assert a["frames"].shape == (5, 3, 112, 112) and a["cameras"].image_size == (112, 112)
    np.testing.assert_allclose(a["cameras"].c2w[0].numpy(), np.eye(4), atol=1e-6)
    batch = collate([a, ds[0]])
    assert batch["frames"].shape == (2, 5, 3, 112, 112) and len(batch["cameras"]) == 2
    mix = build_dataset(DataConfig(num_frames=5, height=112, width=112,
                                   procedural=ProceduralDataConfig(num_scenes=2, render_frames=5)), seed=0)
    assert mix.names == ["procedural"] and mix[0]["source"].startswith("procedural/")


def test_loader_workers_give_the_same_batches(root):
    from torch.utils.data import DataLoader

    mix = build_dataset(DataConfig(root=str(root), num_frames=5, height=112, width=112), seed=3)
    batches = []
    for workers in (0, 1):
        loader = DataLoader(mix, batch_size=2, sampler=DrawSampler(1, 2, 2, start_step=1), num_workers=workers,
                            collate_fn=collate)
        batches.append(next(iter(loader)))
    torch.testing.assert_close(batches[0]["frames"], batches[1]["frames"], rtol=0, atol=0)
    assert batches[0]["source"] == batches[1]["source"] and batches[0]["caption"] == batches[1]["caption"]
    assert batches[0]["cameras"][0].allclose(batches[1]["cameras"][0])
