"""Photos and videos as cameras and phones write them (gen3r.io.images), through every reader that
takes user pixels: the pipeline's image/frames/video readers, PIL inputs and the eval datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gen3r.io.images import image_size, pil_to_rgb, read_rgb
from gen3r.pipeline.preprocess import as_frames, read_frames, read_image, read_video


def _marked(width: int = 40, height: int = 20) -> np.ndarray:
    """Mid-grey image with a white block in the top-left corner (orientation is visible)."""
    rgb = np.full((height, width, 3), 128, np.uint8)
    rgb[: height // 4, : width // 4] = 255
    return rgb


def _corner_brightness(chw: torch.Tensor) -> dict[str, float]:
    h, w = chw.shape[-2:]
    return {"tl": float(chw[:, :3, :3].mean()), "tr": float(chw[:, :3, w - 3:].mean()),
            "bl": float(chw[:, h - 3:, :3].mean()), "br": float(chw[:, h - 3:, w - 3:].mean())}


@pytest.mark.parametrize("orientation,size,bright", [
    (1, (3, 20, 40), "tl"),  # as stored
    (3, (3, 20, 40), "br"),  # rotate 180
    (6, (3, 40, 20), "tr"),  # portrait phone photo: rotate 90 clockwise to view
    (8, (3, 40, 20), "bl"),  # rotate 90 counter-clockwise to view
])
def test_exif_orientation_is_applied(tmp_path, orientation, size, bright):
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_marked()).save(path, quality=100, exif=exif)
    image = read_image(path)
    assert tuple(image.shape) == size
    corners = _corner_brightness(image)
    assert max(corners, key=corners.get) == bright
    assert image_size(path) == (size[2], size[1])  # header only, same orientation


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)  # true mean 0.5
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    image = read_image(path)
    assert image.shape == (3, 32, 32)
    assert float(image.mean()) == pytest.approx(0.5, abs=1e-3)  # was 0.998 when clipped at 255
    torch.testing.assert_close(image[0], torch.from_numpy(ramp.astype(np.float32) / 65535))


def test_32bit_integer_and_float_images(tmp_path):
    ints = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.int32)
    assert float(pil_to_rgb(Image.fromarray(ints, mode="I")).max()) == pytest.approx(ints.max() / 65535)
    floats = np.linspace(-0.5, 1.5, 64, dtype=np.float32).reshape(8, 8)
    rgb = pil_to_rgb(Image.fromarray(floats, mode="F"))
    assert rgb.min() == 0.0 and rgb.max() == 1.0 and rgb.shape == (8, 8, 3)


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255          # red everywhere underneath ...
    rgba[:4, :, 3] = 255        # ... opaque in the top half, transparent below,
    rgba[4:6, :, 3] = 128       # half transparent in between
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    image = read_image(path)
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 7, 0], torch.tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(image[:, 5, 0], torch.tensor([1.0, 1 - 128 / 255, 1 - 128 / 255]))
    palette = Image.fromarray(rgba, mode="RGBA").convert("P")
    palette.info["transparency"] = palette.getpixel((0, 7))
    assert float(pil_to_rgb(palette)[7, 0].min()) == 1.0  # transparent palette entry -> white


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("P", ".png"), ("CMYK", ".jpg"), ("RGB", ".webp"),
                                         ("RGB", ".bmp"), ("RGB", ".tiff"), ("LA", ".png")])
def test_ordinary_formats_still_read(tmp_path, mode, suffix):
    rgb = Image.fromarray(_marked())
    path = tmp_path / f"img{suffix}"
    img = rgb.convert(mode)
    options = {".jpg": {"quality": 100}, ".webp": {"lossless": True}}.get(suffix, {})
    img.save(path, **options)
    image = read_image(path)
    expected = torch.from_numpy(np.asarray(img.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(image, expected, rtol=0, atol=2 / 255)


def test_8bit_rgb_values_are_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    assert torch.equal(read_image(path), expected)
    pil = as_frames([Image.fromarray(rgb)], 12, 10)
    assert torch.equal(pil[0, 0], expected)


def test_folder_of_phone_frames_and_pil_inputs_are_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_marked()).save(folder / f"{i:03d}.jpg", quality=100, exif=exif)
    frames = read_frames(folder)
    assert tuple(frames.shape) == (2, 3, 40, 20)
    with Image.open(folder / "000.jpg") as img:
        pil = as_frames([img], 40, 20)
    torch.testing.assert_close(pil[0, 0], frames[0])


def _video(path, rotation: int | None) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_marked(48, 32), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.mark.parametrize("rotation,size,bright", [(None, (32, 48), "tl"), (-90, (48, 32), "tr"),
                                                  (90, (48, 32), "bl"), (180, (32, 48), "br")])
def test_video_rotation_metadata_is_applied(tmp_path, rotation, size, bright):
    path = tmp_path / "phone.mp4"
    _video(path, rotation)
    video = read_video(path)
    assert tuple(video.shape) == (3, 3, *size)
    corners = _corner_brightness(video[0])
    assert max(corners, key=corners.get) == bright


def test_unreadable_files_are_one_line_errors(tmp_path):
    from gen3r.errors import Gen3RError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(Gen3RError, match="cannot read image .*broken.png"):
        read_rgb(bad)
    with pytest.raises(Gen3RError, match="does not exist"):
        read_rgb(tmp_path / "missing.png")
    with pytest.raises(Gen3RError, match="cannot read image"):
        image_size(bad)
