"""``gen3r scene`` end to end: every format written and read back, argument errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gen3r.cli.main import main
from gen3r.data.procedural import render_scene

ARGS = ["scene", "--seed", "7", "--frames", "3", "--height", "20", "--width", "24", "--kind", "outdoor",
        "--trajectory", "orbit"]


@pytest.fixture(scope="module")
def expected():
    return render_scene(7, 3, 20, 24, kind="outdoor", trajectory="orbit")


def test_official(tmp_path: Path, expected) -> None:
    assert main([*ARGS, "--format", "official", "--out", str(tmp_path / "o")]) == 0
    dirs = (tmp_path / "o" / "train_videos_dirs.txt").read_text().splitlines()
    assert len(dirs) == 1 and len(list(Path(dirs[0]).glob("frame*.png"))) == 3
    cams = (tmp_path / "o" / "train_cameras_paths.txt").read_text().splitlines()
    frames = json.loads(Path(cams[0]).read_text())["frames"]
    np.testing.assert_allclose(np.linalg.inv(np.array(frames[2]["transform_matrix"])), expected.extrinsics[2],
                               atol=1e-5)
    caps = (tmp_path / "o" / "train_captions_paths.txt").read_text().splitlines()
    assert Path(caps[0]).read_text().splitlines()[0] == expected.caption


def test_re10k_with_split_and_preview(tmp_path: Path, expected) -> None:
    out = tmp_path / "r"
    assert main([*ARGS, "--format", "re10k", "--split", "val", "--out", str(out), "--preview"]) == 0
    table = np.loadtxt(out / "val" / "scene_00000.txt", skiprows=1)
    np.testing.assert_allclose(table[:, 7:].reshape(3, 3, 4), expected.extrinsics[:, :3], atol=1e-5)
    assert len(list((out / "val" / "frames" / "scene_00000").glob("*.png"))) == 3
    assert (out / "preview.mp4").stat().st_size > 0


def test_nerfstudio(tmp_path: Path, expected) -> None:
    assert main([*ARGS, "--format", "nerfstudio", "--out", str(tmp_path / "n")]) == 0
    transforms = json.loads((tmp_path / "n" / "transforms.json").read_text())
    assert len(transforms["frames"]) == 3 and "depth_file_path" in transforms["frames"][0]


def test_npz_and_overwrite(tmp_path: Path, expected, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "z"
    assert main([*ARGS, "--format", "npz", "--out", str(out)]) == 0
    with np.load(out / "scene.npz") as data:
        np.testing.assert_array_equal(data["depth"], expected.depth)
        np.testing.assert_array_equal(data["rgb"], expected.rgb)
    assert main([*ARGS, "--format", "npz", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["scene", "--seed", "8", "--frames", "2", "--height", "8", "--width", "8", "--format", "npz",
                 "--out", str(out), "--overwrite"]) == 0
    with np.load(out / "scene.npz") as data:
        assert data["rgb"].shape == (2, 8, 8, 3)


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["scene", "--frames", "1", "--height", "4", "--width", "4", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [
    ["--frames", "0"], ["--height", "-3"], ["--width", "abc"], ["--seed", "-1"], ["--kind", "moon"],
    ["--trajectory", "fly"], ["--format", "ply"], ["--fov", "0"], ["--fov", "200"], ["--num-objects", "100"],
    ["--split", "a/b"], [],
])
def test_bad_arguments_exit_2(tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture) -> None:
    out = [] if bad == [] else ["--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as exc:
        main(["scene", *bad, *out])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_help_lists_formats(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scene", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("official", "re10k", "nerfstudio", "npz", "--trajectory", "--overwrite"):
        assert word in text


@pytest.mark.parametrize("fmt,split", [("official", "test"), ("re10k", "test"), ("nerfstudio", None), ("npz", None)])
def test_many_scenes_make_one_dataset(tmp_path: Path, fmt, split) -> None:
    from gen3r.eval.datasets import NerfstudioReader, OfficialLayoutReader, RealEstate10KReader

    out = tmp_path / fmt
    extra = ["--split", split] if split else []
    assert main([*ARGS, "--scenes", "3", "--format", fmt, "--out", str(out), *extra]) == 0
    expected = [render_scene(7 + i, 3, 20, 24, kind="outdoor", trajectory="orbit") for i in range(3)]
    if fmt == "npz":
        names = sorted(p.name for p in out.iterdir())
        assert names == ["scene_00000", "scene_00001", "scene_00002"]
        for i, name in enumerate(names):
            with np.load(out / name / "scene.npz") as data:
                np.testing.assert_allclose(data["depth"], expected[i].depth)
        return
    reader = {"official": lambda: OfficialLayoutReader(out, split="test"),
              "re10k": lambda: RealEstate10KReader(out, split="test"),
              "nerfstudio": lambda: NerfstudioReader(out)}[fmt]()
    names = reader.names()
    assert len(names) == 3
    for name, scene in zip(names, expected):
        data = reader.load(name)
        np.testing.assert_allclose(data.extrinsics[:, :3], scene.extrinsics[:, :3], atol=1e-5)
        # the readers return the evaluation's layout, (F, 3, H, W)
        np.testing.assert_allclose(data.frames.permute(0, 2, 3, 1).numpy(), scene.rgb, atol=1 / 255 + 1e-6)
