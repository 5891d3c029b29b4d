"""Input preprocessing: official resize + centre crop, readers, size checks."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gen3r.errors import Gen3RError
from gen3r.pipeline.preprocess import (
    as_frames,
    check_size,
    count_frames,
    read_frames,
    read_image,
    read_video,
    resize_and_center_crop,
)
from tests._tiny import TINY


def test_resize_crop_matches_official_control_video():
    inputs = load_file(str(TINY / "inputs.safetensors"))
    src = inputs["source_frames_uint8"].permute(0, 3, 1, 2).float() / 255  # (9, 3, 120, 136)
    out = resize_and_center_crop(src, 112, 112)
    torch.testing.assert_close(out[None], inputs["control_video"], rtol=1e-5, atol=1e-5)


def test_as_frames_from_paths_equals_tensor(tmp_path):
    inputs = load_file(str(TINY / "inputs.safetensors"))
    frames = inputs["source_frames_uint8"].numpy()
    paths = []
    for i in (0, 8):
        Image.fromarray(frames[i]).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    got = as_frames(paths, 112, 112)
    torch.testing.assert_close(got, inputs["control_video"][:, [0, 8]], rtol=1e-5, atol=1e-5)


def test_read_image_errors(tmp_path):
    with pytest.raises(Gen3RError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(Gen3RError, match="cannot read image"):
        read_image(bad)


def test_read_frames_folder_and_video(tmp_path):
    frames = (np.random.default_rng(0).random((5, 16, 16, 3)) * 255).astype(np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    got = read_frames(folder)
    np.testing.assert_array_equal((got.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), frames)
    assert read_frames(folder, max_frames=2).shape == (2, 3, 16, 16)
    video = tmp_path / "v.mp4"
    with av.open(str(video), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert read_video(video).shape == (5, 3, 16, 16)
    corrupt = tmp_path / "c.mp4"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(Gen3RError, match="cannot decode video"):
        read_video(corrupt)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Gen3RError, match="holds no images"):
        read_frames(empty)


@pytest.mark.parametrize("f,h,w,msg", [(8, 112, 112, "4k\\+1"), (9, 100, 112, "height must be a multiple of 112"),
                                       (9, 112, 300, "width must be a multiple of 112")])
def test_check_size(f, h, w, msg):
    with pytest.raises(Gen3RError, match=msg):
        check_size(f, h, w)


def test_check_size_accepts_valid():
    check_size(49, 560, 560)
    check_size(5, 224, 336)


def test_as_frames_rejects_bad_values():
    with pytest.raises(Gen3RError, match="NaN"):
        as_frames(torch.full((1, 1, 3, 8, 8), float("nan")), 8, 8)
    with pytest.raises(Gen3RError, match="divide by 255"):
        as_frames(torch.full((1, 1, 3, 8, 8), 255.0), 8, 8)
    with pytest.raises(Gen3RError, match="B, F, 3, H, W"):
        as_frames(torch.zeros(2, 8, 8), 8, 8)


def test_count_frames_reads_nothing(tmp_path):
    """(batch, condition frames) from the argument alone: paths need not exist yet."""
    assert count_frames(torch.zeros(2, 3, 3, 8, 8)) == (2, 3)
    assert count_frames(torch.zeros(5, 3, 8, 8)) == (1, 5)
    assert count_frames(tmp_path / "missing.png") == (1, 1)
    assert count_frames(["a.png", "b.png"]) == (1, 2)
    with pytest.raises(Gen3RError, match="no input images"):
        count_frames([])
    with pytest.raises(Gen3RError, match=r"\(B, F, 3, H, W\)"):
        count_frames(torch.zeros(1, 1, 4, 8, 8))
