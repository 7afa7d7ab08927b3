"""kpac_tf.data.images: 8/16-bit PNG, JPEG, EXIF orientation, clear errors; views
paired by name (user folders) or by sorted position (DPDD's archive)."""

import os
import threading

import numpy as np
import pytest
from PIL import Image, ImageOps

from kpac_tf.data import images
from tests.test_case import streamed_png


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
    (tmp_path / "notes.txt").write_text("a note, not a photo")
    with pytest.raises(images.ImageReadError,
                       match=r"notes.txt: not a PNG or JPEG image \(it holds text\)"):
        images.read_image(tmp_path / "notes.txt")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(images.ImageReadError, match="empty.jpg: empty file"):
        images.read_image(tmp_path / "empty.jpg")


def test_damaged_files_are_worded_without_tensorflows_internals(tmp_path, rng):
    photo = rng.randint(0, 256, (40, 60, 3)).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "whole.jpg")
    images.write_png(tmp_path / "whole.png", photo)
    for name in ("whole.jpg", "whole.png"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[:len(data) // 3])
        with pytest.raises(images.ImageReadError) as error:
            images.read_image(tmp_path / f"cut_{name}")
        message = str(error.value)
        assert message.startswith(f"{tmp_path / f'cut_{name}'}: not a readable ")
        assert not any(internal in message for internal in ("{{", "function_node", "[Op:",
                                                            "::", "\n"))


def test_the_format_comes_from_the_content_not_the_name(tmp_path, rng):
    photo = rng.randint(0, 256, (24, 36, 3)).astype(np.uint8)
    images.write_png(tmp_path / "png_named.jpg", photo)
    np.testing.assert_array_equal(images.read_image(tmp_path / "png_named.jpg"), photo)
    Image.fromarray(photo).save(tmp_path / "jpeg_named.png", format="JPEG", quality=100,
                                subsampling=0)
    assert images.read_header(tmp_path / "jpeg_named.png").format == "JPEG"
    pillows = np.asarray(Image.open(tmp_path / "jpeg_named.png")).astype(int)
    assert np.abs(images.read_image(tmp_path / "jpeg_named.png") - pillows).max() <= 1
    frames = [Image.fromarray(photo), Image.fromarray(255 - photo)]
    frames[0].save(tmp_path / "webp.png", format="WEBP", lossless=True)
    frames[0].save(tmp_path / "anim.webp.png", format="WEBP", save_all=True,
                   append_images=frames[1:])
    frames[0].save(tmp_path / "gif.png", format="GIF")
    frames[0].save(tmp_path / "bmp.jpg", format="BMP")
    frames[0].save(tmp_path / "tiff.png", format="TIFF")
    frames[0].save(tmp_path / "apng.png", format="PNG", save_all=True, append_images=frames[1:])
    (tmp_path / "actl.png").write_bytes(  # an animation chunk cut short
        images.PNG_SIGNATURE + (tmp_path / "png_named.jpg").read_bytes()[8:33]
        + b"\x00\x00\x00\x08acTL\x00\x00")
    for name, held in (("actl.png", "not a readable PNG image .its header is cut short"),
                       ("webp.png", r"it holds WebP"), ("anim.webp.png", "animated WebP"),
                       ("gif.png", "it holds GIF"), ("bmp.jpg", "it holds BMP"),
                       ("tiff.png", "it holds TIFF"), ("apng.png", "an animated PNG of 2")):
        with pytest.raises(images.ImageReadError, match=f"{name}: .*{held}"):
            images.read_image(tmp_path / name)


@pytest.mark.parametrize("mode,shape,depth", [
    ("RGB", (30, 50, 3), 8), ("L", (30, 50, 1), 8), ("RGBA", (30, 50, 4), 8),
    ("I;16", (30, 50, 1), 16), ("P", (30, 50, 3), 8)])
def test_the_header_declares_what_decodes(tmp_path, rng, mode, shape, depth):
    photo = Image.fromarray(rng.randint(0, 256, (30, 50, 3)).astype(np.uint8)).convert(mode)
    photo.save(tmp_path / "photo.png")
    header = images.read_header(tmp_path / "photo.png")
    assert (header.format, header.height, header.width, header.channels,
            header.bit_depth) == ("PNG", *shape, depth)
    assert images.read_image(tmp_path / "photo.png").shape[:2] == shape[:2]
    if mode in ("RGB", "L"):
        photo.save(tmp_path / "photo.jpg", exif=Image.Exif())  # an APP1 segment first
        header = images.read_header(tmp_path / "photo.jpg")
        assert (header.format, header.height, header.width, header.channels) == (
            "JPEG", *shape)


def test_the_size_limit_is_read_before_decoding(tmp_path, monkeypatch):
    """A 400 MP PNG of a few MB is refused from its header: no pixel is decoded."""
    path = tmp_path / "huge.png"
    streamed_png(path, 20000, 20000)
    assert path.stat().st_size < 8e6
    decoded = []
    monkeypatch.setattr(images.tf.io, "decode_png", lambda *a, **k: decoded.append(a))
    with pytest.raises(images.PhotoTooLarge,
                       match=r"huge.png: 20000x20000 \(400.0 MP\), above the limit of 100 MP"):
        images.read_image(path, max_pixels=100e6)
    assert decoded == []


def test_only_regular_files_are_read(tmp_path):
    """A FIFO would block a read for ever: it is named, not opened."""
    os.mkfifo(tmp_path / "pipe.png")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(
        pytest.raises(images.ImageReadError, images.read_image, tmp_path / "pipe.png")))
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive(), "read_image opened a FIFO and is waiting on it"
    assert "pipe.png: a FIFO (named pipe), not a photo file" in str(outcome[0].value)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(images.ImageReadError, match="folder.png: a folder"):
        images.read_image(tmp_path / "folder.png")


def test_png_text_marks_a_file(tmp_path, rng):
    photo = rng.randint(0, 65536, (6, 9, 3)).astype(np.uint16)
    images.write_png(tmp_path / "marked.png", photo, text={"Software": "kpac-tf deblur"})
    np.testing.assert_array_equal(images.read_image(tmp_path / "marked.png"), photo)
    assert images.png_text(tmp_path / "marked.png") == {"Software": "kpac-tf deblur"}
    assert Image.open(tmp_path / "marked.png").info["Software"] == "kpac-tf deblur"
    images.write_png(tmp_path / "plain.png", photo)
    (tmp_path / "text.png").write_text("not a png")
    for name in ("plain.png", "text.png", "missing.png"):
        assert images.png_text(tmp_path / name) == {}


def test_list_images(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert images.list_images(tmp_path) == [tmp_path / "a.jpg", tmp_path / "b.PNG"]
    assert images.list_images(str(tmp_path)) == [f"{tmp_path}/a.jpg", f"{tmp_path}/b.PNG"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        images.list_images(tmp_path / "none")


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
    # str folders give str paths (path objects give path objects: the second test).
    assert [(name, {v: os.path.basename(p) for v, p in paths.items()})
            for name, paths in pairs] == [
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
