"""`gen3r cameras` subcommands and the CLI's error contract (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gen3r.cli.main import main


def test_list_prints_every_preset(capsys):
    from gen3r.cameras import TRAJECTORY_PRESETS

    assert main(["cameras", "list"]) == 0
    out = capsys.readouterr().out
    for name in TRAJECTORY_PRESETS:
        assert name in out


def test_make_then_convert_roundtrip(tmp_path):
    from gen3r.cameras import load_cameras, make_trajectory

    src = tmp_path / "cams.json"
    assert main(["cameras", "make", "orbit_left", str(src), "--frames", "9", "--size", "224x336"]) == 0
    data = json.loads(src.read_text())
    assert np.asarray(data["extrinsics"]).shape == (9, 4, 4)
    assert main(["cameras", "convert", str(src), str(tmp_path / "colmap"), "--format", "colmap"]) == 0
    assert main(["cameras", "convert", str(tmp_path / "colmap"), str(tmp_path / "t.json"),
                 "--format", "nerfstudio"]) == 0
    a, b = load_cameras(src), load_cameras(tmp_path / "t.json")
    assert a.allclose(b, atol=1e-5)
    K = a.intrinsics[0]
    assert K[0, 2].item() == pytest.approx(168) and K[1, 2].item() == pytest.approx(112)
    ref = make_trajectory("orbit_left", 9, K, image_size=(224, 336))
    assert ref.allclose(a, atol=1e-5)


def test_bad_preset_and_bad_file_exit_2(tmp_path, capsys):
    assert main(["cameras", "make", "spin_around", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gen3r: error:") and "orbit_left" in err[0]
    bad = tmp_path / "bad.json"
    bad.write_text('{"extrinsics": [[1, 2]], "intrinsics": []}')
    assert main(["cameras", "convert", str(bad), str(tmp_path / "o.json")]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "o.json").exists()


def test_bad_cli_args_exit_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["cameras", "make", "zoom_in", str(tmp_path / "x.json"), "--size", "big"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["cameras", "make", "zoom_in", str(tmp_path / "x.json"), "--frames", "-3"])
    assert exc.value.code == 2


@pytest.mark.parametrize("fov", ["200", "180", "0", "-10", "nan", "inf"])
def test_make_refuses_an_impossible_field_of_view(tmp_path, capsys, fov):
    with pytest.raises(SystemExit) as exc:
        main(["cameras", "make", "zoom_in", str(tmp_path / "x.json"), f"--fov={fov}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "a field of view in degrees in (0, 180)" in err
    assert "focal" not in err and not (tmp_path / "x.json").exists()


def test_make_takes_the_preset_parameters(tmp_path, capsys):
    from gen3r.cameras import load_cameras

    wide, narrow = tmp_path / "wide.json", tmp_path / "narrow.json"
    assert main(["cameras", "make", "orbit_left", str(wide), "--frames", "5", "--angle", "40", "--radius", "2"]) == 0
    assert main(["cameras", "make", "orbit_left", str(narrow), "--frames", "5"]) == 0
    turn = [float(np.degrees(np.arccos((np.trace(c.extrinsics[-1, :3, :3].numpy()) - 1) / 2)))
            for c in (load_cameras(wide), load_cameras(narrow))]
    assert turn[0] == pytest.approx(40, abs=1e-3) and turn[1] == pytest.approx(15, abs=1e-3)
    assert main(["cameras", "make", "dolly_in", str(tmp_path / "d.json"), "--frames", "5", "--distance", "3"]) == 0
    moved = load_cameras(tmp_path / "d.json").c2w[-1, :3, 3].norm().item()
    assert moved == pytest.approx(3, rel=1e-5)
    capsys.readouterr()
    assert main(["cameras", "make", "zoom_in", str(tmp_path / "z.json"), "--angle", "10"]) == 2
    err = capsys.readouterr().err
    assert "does not take parameter(s) angle" in err and not (tmp_path / "z.json").exists()


def test_convert_names_the_real_size_flag(tmp_path, capsys):
    re10k = tmp_path / "cams.txt"
    re10k.write_text("https://youtube\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n")
    assert main(["cameras", "convert", str(re10k), str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "--size HxW" in err and "--image-size" not in err
