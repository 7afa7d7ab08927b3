"""kpac_tf.data.images: 8/16-bit PNG, JPEG, EXIF orientation, clear errors; views
paired by name (user folders) or by sorted position (DPDD's archive)."""

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


def _folders(tmp_path, listing):
    """Creates empty image files: {view: [file names]} -> {view: folder}."""
    folders = {}
    for view, names in listing.items():
        folders[view] = tmp_path / view
        folders[view].mkdir(parents=True)
        for name in names:
            (folders[view] / name).write_bytes(b"")
    return folders


def test_by_position_pairs_sorted_lists_whatever_the_names(tmp_path):
    folders = _folders(tmp_path, {
        "center": ["1P0A0984.png", "1P0A0917.png", "notes.txt"],
        "sharp": ["1P0A0985.png", "1P0A0916.png"],
        "left": ["1P0A0917_L.png", "1P0A0984_L.png"]})
    pairs = images.pair_views({v: str(f) for v, f in folders.items()}, by="position")
    assert [(name, {v: p.name for v, p in paths.items()}) for name, paths in pairs] == [
        ("1P0A0917", {"center": "1P0A0917.png", "sharp": "1P0A0916.png",
                      "left": "1P0A0917_L.png"}),
        ("1P0A0984", {"center": "1P0A0984.png", "sharp": "1P0A0985.png",
                      "left": "1P0A0984_L.png"})]


def test_by_name_stays_the_default(tmp_path):
    folders = _folders(tmp_path, {"blurry": ["b.png", "a.jpg"], "sharp": ["a.png", "b.png"],
                                  "left": ["a_L.png", "b_L.png"]})
    pairs = images.pair_views(folders)
    assert [(name, paths["sharp"].name, paths["left"].name) for name, paths in pairs] == [
        ("a", "a.png", "a_L.png"), ("b", "b.png", "b_L.png")]
    folders = _folders(tmp_path / "x", {"blurry": ["1P0A0917.png"], "sharp": ["1P0A0916.png"]})
    with pytest.raises(FileNotFoundError, match="1P0A0917.png has no sharp view"):
        images.pair_views(folders, label="x")


def test_by_position_needs_equal_counts_and_says_where(tmp_path):
    folders = _folders(tmp_path, {"center": ["a.png", "b.png", "c.png"],
                                  "sharp": ["x.png", "y.png"]})
    with pytest.raises(ValueError, match=r"DPDD: the view folders hold different numbers "
                                         r".*center 3, .*sharp 2\. Every folder needs"):
        images.pair_views(folders, label="DPDD", by="position")
    with pytest.raises(ValueError, match='by must be "name" or "position"'):
        images.pair_views(folders, by="order")


def test_any_photo_as_rgb():
    grey = np.arange(12, dtype=np.uint16).reshape(3, 4)
    for photo in (grey, grey[..., None], np.stack([grey, grey * 0], -1)):
        rgb = images.as_rgb(photo)
        assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint16
        np.testing.assert_array_equal(rgb, np.repeat(grey[..., None], 3, -1))
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4)).astype(np.uint8)
    np.testing.assert_array_equal(images.as_rgb(rgba), rgba[..., :3])
