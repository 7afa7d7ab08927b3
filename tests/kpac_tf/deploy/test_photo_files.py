"""kpac_tf.deploy.photo_files: outputs planned before writing, compared with the inputs
as the files they reach; files this app did not write are never replaced; a failing
photo is named and the others go on; an unwritable output or a NaN model stops."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kpac_tf import build_model
from kpac_tf.data import images
from kpac_tf.deploy import photo_files
from kpac_tf.deploy.deblurring import Deblurrer
from tests.test_case import remount, small_disk


@pytest.fixture(scope="module")
def deblurrer():
    return Deblurrer.from_keras(build_model("single_2level", channels=4))


def photo(path, rng, size=(20, 30), fmt=None):
    Image.fromarray(rng.randint(0, 256, (*size, 3)).astype(np.uint8)).save(path, format=fmt)
    return path


def contents(folder):
    """{name: bytes} of every file in `folder` but the manifest."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))
            if (folder / name).is_file() and name != photo_files.MANIFEST}


def names(report):
    return {os.path.basename(job.source): os.path.basename(job.output)
            for job in report.jobs}


def test_an_output_folder_reached_through_a_link_never_replaces_an_input(tmp_path, rng):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.png", rng)
    (tmp_path / "link").symlink_to(photos)
    with pytest.raises(photo_files.PlanError, match=r"the output .*link/a.png would "
                       r"replace the input .*photos/a.png"):
        photo_files.plan(photos / "a.png", tmp_path / "link" / "a.png")
    with pytest.raises(photo_files.PlanError, match="would replace the input"):
        photo_files.plan(tmp_path / "link" / "a.png", photos / "a.png")
    os.link(photos / "a.png", tmp_path / "hard.png")  # another name for the same file
    with pytest.raises(photo_files.PlanError, match="hard.png would replace the input"):
        photo_files.plan(photos / "a.png", tmp_path / "hard.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").symlink_to(photos / "a.png")
    with pytest.raises(photo_files.PlanError, match="would replace the input"):
        photo_files.plan(photos, tmp_path / "out")


def test_photos_sharing_a_name_get_distinct_outputs(tmp_path, rng):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("e.jpg", "e.png", "E.jpeg", "f.jpg"):
        photo(photos / name, rng)
    report = photo_files.plan(photos, tmp_path / "out", save_attention=True)
    assert names(report) == {"E.jpeg": "E.jpeg.png", "e.jpg": "e.jpg.png",
                             "e.png": "e.png.png", "f.jpg": "f.png"}
    assert os.path.basename(report.jobs[0].extras["blur_map"]) == "E.jpeg_blur_map.png"
    photo(photos / "e.jpg.png", rng)  # its stem, e.jpg, is one more of the e's ...
    photo(photos / "g_attention.png", rng)
    photo(photos / "g.png", rng)
    with pytest.raises(photo_files.PlanError, match=r"photos/e.jpg and .*e.jpg.png would both "
                       r"be written to .*refused/e.jpg.png; rename one of them"):
        photo_files.plan(photos, tmp_path / "refused")
    os.unlink(photos / "e.jpg.png")  # ... and g's attention map is g_attention's output
    with pytest.raises(photo_files.PlanError, match="g.png and .*g_attention.png would "
                       "both be written to .*g_attention.png"):
        photo_files.plan(photos, tmp_path / "refused", save_attention=True)
    assert not (tmp_path / "refused").exists()  # refused before anything was written


def test_files_already_there_are_skipped_and_only_ours_are_redone(tmp_path, rng, deblurrer):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("a.png", "b.jpg", "c.png"):
        photo(photos / name, rng)
    out.mkdir()
    photo(out / "b.png", rng)  # somebody's own b.png
    report = photo_files.run(deblurrer, photo_files.plan(photos, out))
    assert [os.path.basename(p) for p in report.done] == ["a.png", "c.png"]
    assert [(os.path.basename(p), kind) for p, kind, _ in report.skipped] == [
        ("b.jpg", "in_the_way")]
    assert "b.png is already there and was not written by this app" in report.skipped[0][2]
    before = contents(out)
    ours = photo_files.Manifest(out)
    assert all(ours.owns(out / name) for name in ("a.png", "c.png"))
    assert not ours.owns(out / "b.png")
    again = photo_files.plan(photos, out)  # a rerun resumes: nothing left to do
    assert again.jobs == [] and [kind for _, kind, _ in again.skipped] == [
        "done_before", "in_the_way", "done_before"]
    redo = photo_files.run(deblurrer, photo_files.plan(photos, out, overwrite=True))
    assert [os.path.basename(p) for p in redo.done] == ["a.png", "c.png"]
    assert contents(out) == before  # the same results again; b.png still the user's
    shutil.copy(out / "a.png", tmp_path / "copy.png")  # a copy of ours is not ours
    os.replace(tmp_path / "copy.png", out / "a.png")
    redo = photo_files.plan(photos, out, overwrite=True)
    assert [kind for _, kind, _ in redo.skipped] == ["in_the_way"] * 2
    assert [os.path.basename(job.source) for job in redo.jobs] == ["c.png"]


def test_a_file_that_appears_during_the_run_is_left_alone(tmp_path, rng, deblurrer):
    photo(tmp_path / "a.png", rng)
    planned = photo_files.plan(tmp_path / "a.png", tmp_path / "out" / "a_sharp.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_sharp.png").write_bytes(b"somebody's")
    report = photo_files.run(deblurrer, planned)
    assert report.done == [] and "appeared during the run" in report.skipped[0][2]
    assert (tmp_path / "out" / "a_sharp.png").read_bytes() == b"somebody's"


def test_a_result_under_an_earlier_name_is_found_again(tmp_path, rng, deblurrer):
    """A folder that gains e.png after e.jpg was deblurred into e.png: e.jpg's result
    is found under its old name (the manifest records its source), not redone."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    photo(photos / "e.jpg", rng)
    photo_files.run(deblurrer, photo_files.plan(photos, out))
    photo(photos / "e.png", rng)
    report = photo_files.plan(photos, out)
    assert names(report) == {"e.png": "e.png.png"}
    assert report.skipped == [(str(photos / "e.jpg"), "done_before",
                               f"{out / 'e.png'} is there from an earlier run")]


def test_the_input_folder_is_never_the_output_folder(tmp_path, rng, monkeypatch):
    photo(tmp_path / "a.jpg", rng)
    (tmp_path / "link").symlink_to(tmp_path)
    for target in (tmp_path, tmp_path / "link"):
        with pytest.raises(photo_files.PlanError, match="is the input folder"):
            photo_files.plan(tmp_path, target)
    with pytest.raises(photo_files.PlanError, match="names a PNG file; give a folder"):
        photo_files.plan(tmp_path, tmp_path / "result.png")
    with pytest.raises(photo_files.PlanError, match="the output is an empty path"):
        photo_files.plan(tmp_path, "")

    def unreadable(folder):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(photo_files.os, "listdir", unreadable)
    with pytest.raises(photo_files.PlanError, match="cannot list the input folder .*: "
                       "Permission denied"):
        photo_files.plan(tmp_path, tmp_path / "out")


def test_a_folders_photos_are_found_by_content(tmp_path, rng):
    photo(tmp_path / "IMG_0002", rng, fmt="JPEG")  # no extension
    photo(tmp_path / "IMG_0003.jfif", rng, fmt="JPEG")
    photo(tmp_path / "scan.PNG", rng)
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "._IMG_0002").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / ".tmp-123.png").write_bytes(b"")
    report = photo_files.plan(tmp_path, tmp_path / "out")
    assert names(report) == {"IMG_0002": "IMG_0002.png", "IMG_0003.jfif": "IMG_0003.png",
                             "scan.PNG": "scan.png"}
    assert report.ignored == [str(tmp_path / "notes.txt")]


def test_what_is_not_a_photo_file_is_skipped_and_named(tmp_path, rng, deblurrer):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.png", rng)
    os.mkfifo(photos / "pipe.png")
    (photos / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (photos / "folder.png").mkdir()
    (photos / "linked.png").symlink_to(photos / "a.png")
    report = photo_files.run(deblurrer, photo_files.plan(photos, tmp_path / "out"))
    assert [os.path.basename(p) for p in report.done] == ["a.png", "linked.png"]
    reasons = {os.path.basename(p): why for p, kind, why in report.skipped}
    assert set(reasons) == {"pipe.png", "dangling.jpg", "folder.png"}
    assert "a FIFO (named pipe), not a photo file" in reasons["pipe.png"]
    assert "a broken symbolic link" in reasons["dangling.jpg"]
    assert "a folder" in reasons["folder.png"]
    with pytest.raises(photo_files.PlanError, match="pipe.png: a FIFO"):
        photo_files.plan(photos / "pipe.png", tmp_path / "x.png")


def test_a_bad_photo_is_named_and_the_others_go_on(tmp_path, rng, deblurrer, monkeypatch):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    photo(photos / "a.png", rng)
    photo(photos / "b.png", rng, fmt="WEBP")
    (photos / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    photo(photos / "d.png", rng, size=(40, 50))
    photo(photos / "e.png", rng)
    # 650 bytes a pixel whole: a 30x20 photo fits in 1 MB, a 50x40 one does not
    monkeypatch.setattr(photo_files.memory, "available_bytes", lambda: 1_000_000)
    report = photo_files.run(deblurrer, photo_files.plan(photos, out), max_pixels=1500)
    assert [os.path.basename(p) for p in report.done] == ["a.png", "e.png"]
    failed = {os.path.basename(p): error for p, error in report.failed}
    assert "it holds WebP" in str(failed["b.png"])
    assert "c.jpg: not a readable image" in str(failed["c.jpg"])
    assert isinstance(failed["d.png"], images.PhotoTooLarge)  # 2000 pixels > 1500
    report = photo_files.run(deblurrer, photo_files.plan(photos / "d.png", out / "d.png"))
    (_, error), = report.failed
    assert isinstance(error, photo_files.OutOfMemory) and error.tile_size is None
    assert str(error).endswith("d.png: deblurring this 50x40 photo whole needs about 1 MB; "
                               "1 MB is available")
    assert list(contents(out)) == ["a.png", "e.png"]


def test_running_out_of_memory_inside_tensorflow_is_named(tmp_path, rng, deblurrer):
    photo(tmp_path / "a.png", rng)
    photo(tmp_path / "b.png", rng)
    calls = []

    def exhausted_once(inputs):
        calls.append(1)
        if len(calls) == 1:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")
        return deblurrer.network(inputs)

    flaky = Deblurrer(exhausted_once, "flaky", 1)
    report = photo_files.run(flaky, photo_files.plan(tmp_path, tmp_path / "out"), 16, 4)
    (source, error), = report.failed
    assert source.endswith("a.png") and isinstance(error, photo_files.OutOfMemory)
    assert "a.png: ran out of memory deblurring this 30x20 photo in tiles of 16 px" in str(error)
    assert [os.path.basename(p) for p in report.done] == ["b.png"]


def test_a_model_giving_nan_stops_at_the_first_photo(tmp_path, rng):
    model = build_model("single_2level", channels=4)
    model.get_layer("d2_2").bias.assign(tf.fill(model.get_layer("d2_2").bias.shape, np.nan))
    for name in ("a.png", "b.png"):
        photo(tmp_path / name, rng)
    report = photo_files.run(Deblurrer.from_keras(model, source="nan.keras"),
                             photo_files.plan(tmp_path, tmp_path / "out"))
    assert report.done == [] and report.failed == []
    assert report.stopped.startswith("single_2level from nan.keras gives NaN or inf")
    assert "stopped at" in report.stopped and report.stopped.endswith(
        "a.png, nothing written for it")
    assert os.listdir(tmp_path / "out") == []


def test_a_read_only_or_full_output_stops_the_run_and_leaves_nothing_half_written(
        tmp_path, rng, deblurrer):
    photos, disk = tmp_path / "photos", tmp_path / "disk"
    photos.mkdir()
    disk.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        photo(photos / name, rng, size=(120, 160))
    with small_disk(disk, "64m"):
        (disk / "out").mkdir()
        plan = photo_files.plan(photos, disk / "out")
        remount(disk, "ro")  # found before any photo is deblurred
        with pytest.raises(photo_files.PlanError, match=f"cannot write in the output "
                           f"folder {disk / 'out'}: Read-only file system"):
            photo_files.run(deblurrer, plan)
        assert os.listdir(disk / "out") == []
        remount(disk, "rw,size=64m")
        photo_files.run(deblurrer, photo_files.plan(photos / "a.png", disk / "out"))
        stats = os.statvfs(disk)
        remount(disk, f"size={(stats.f_blocks - stats.f_bfree) * stats.f_frsize + 4096}")
        report = photo_files.run(deblurrer, photo_files.plan(photos, disk / "out"))
        assert "No space left on device" in report.stopped
        # No temporary or partial file (the manifest records a.png only)
        assert sorted(os.listdir(disk / "out")) == [photo_files.MANIFEST, "a.png"]
        assert photo_files.Manifest(disk / "out").owns(disk / "out" / "a.png")
