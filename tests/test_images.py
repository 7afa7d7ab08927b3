"""Photo I/O: 8/16-bit PNG, JPEG, EXIF orientation, clear errors."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from kpac_tf.data import images


def test_png_round_trips_8_and_16_bit(tmp_path, rng):
    for dtype, top in ((np.uint8, 256), (np.uint16, 65536)):
        array = rng.randint(0, top, (5, 7, 3)).astype(dtype)
        path = tmp_path / f"x{dtype.__name__}.png"
        images.write_png(path, array)
        back = images.read_image(path)
        assert back.dtype == dtype
        np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, rng, orientation):
    array = rng.randint(0, 256, (6, 10, 3)).astype(np.uint8)
    path = tmp_path / "photo.png"  # lossless, so only the orientation can differ
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    np.testing.assert_array_equal(images.read_image(path), expected)


def test_jpeg_is_decoded_and_turned_upright(tmp_path, rng):
    array = np.kron(rng.randint(0, 256, (3, 5, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(array).save(path, quality=95, exif=exif)
    out = images.read_image(path)
    assert out.shape == (40, 24, 3) and out.dtype == np.uint8
    assert np.median(np.abs(out.astype(int) - np.rot90(array, -1).astype(int))) <= 3


def test_unreadable_files_are_named(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 5)
    with pytest.raises(images.ImageReadError, match="broken.png: not a readable image"):
        images.read_image(broken)
    with pytest.raises(images.ImageReadError, match="missing.png: cannot read"):
        images.read_image(tmp_path / "missing.png")
    with pytest.raises(images.ImageReadError, match="notes.txt: not a PNG or JPEG"):
        images.read_image(tmp_path / "notes.txt")


def test_list_images(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.split("/")[-1] for p in images.list_images(tmp_path)] == ["a.jpg", "b.PNG"]
