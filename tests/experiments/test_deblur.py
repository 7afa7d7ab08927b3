"""experiments/deblur, the real app in a subprocess on real files: no input or foreign
file is ever replaced (links, shared names), files are judged by content, an oversized
photo is refused before decoding, every fault is one sentence and the other photos go
on, a rerun resumes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver
from PIL import Image

from experiments import deblur as deblur_app
from kpac_tf import build_model
from kpac_tf.data import images
from kpac_tf.deploy import photo_files
from tests.test_case import REPO, remount, small_disk, streamed_png


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.keras"
    build_model("single_2level", channels=4).save(path)
    return str(path)


# Runs the app as `python -m` would, and prints the process's peak memory at its exit:
# VmHWM counts this program only (ru_maxrss also counts the parent's pages at the fork).
_MEASURED = ("import atexit, runpy, sys\n"
             "def peak():\n"
             "    for line in open('/proc/self/status'):\n"
             "        if line.startswith('VmHWM:'):\n"
             "            print('peak memory kB', line.split()[1], file=sys.stderr)\n"
             "atexit.register(peak)\n"
             "sys.argv[0] = 'deblur'\n"
             "runpy.run_module('experiments.deblur', run_name='__main__', alter_sys=True)\n")


def deblur(*flags):
    """Runs the app; returns (exit code, everything it printed, peak memory in MB)."""
    result = subprocess.run([sys.executable, "-c", _MEASURED, *flags], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed, _, peak = result.stdout.rpartition("peak memory kB ")
    assert "Traceback" not in printed, printed
    return result.returncode, printed, int(peak) / 1024


def write_photo(path, rng, size=(24, 32), fmt=None):
    Image.fromarray(rng.randint(0, 256, (*size, 3)).astype(np.uint8)).save(path, format=fmt)


def test_an_output_folder_linked_to_the_inputs_is_refused(tmp_path, rng, checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_photo(photos / "a.png", rng)
    original = (photos / "a.png").read_bytes()
    (tmp_path / "link").symlink_to(photos)
    code, printed, _ = deblur(f"--checkpoint={checkpoint}", f"--input={photos}",
                              f"--output={tmp_path / 'link'}")
    assert code == 1
    assert f"deblur: the output folder {tmp_path / 'link'} is the input folder; choose " \
           "another" in printed
    assert (photos / "a.png").read_bytes() == original and os.listdir(photos) == ["a.png"]


def test_a_real_photo_folder_loses_nothing_and_a_rerun_resumes(tmp_path, rng, checkpoint):
    """Shared stems, WebP content named .png, a FIFO, a damaged JPEG, a 400 MP PNG of a
    few MB (refused from its header: the run's peak memory stays that of a small
    photo), somebody's own file where an output would go."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("e.jpg", "e.png", "f.jpg"):
        write_photo(photos / name, rng)
    write_photo(photos / "webp.png", rng, fmt="WEBP")
    os.mkfifo(photos / "pipe.png")
    (photos / "cut.jpg").write_bytes((photos / "e.jpg").read_bytes()[:200])
    streamed_png(photos / "huge.png", 20000, 20000)
    out.mkdir()
    write_photo(out / "f.png", rng)
    theirs = (out / "f.png").read_bytes()
    inputs = {name: (photos / name).read_bytes() for name in os.listdir(photos)
              if name != "pipe.png"}
    code, printed, peak_mb = deblur(f"--checkpoint={checkpoint}", f"--input={photos}",
                                    f"--output={out}")
    assert code == 1, printed
    assert f"Deblurred 2 of 7 photos into {out} (2 skipped, 3 failed)" in printed
    assert f"skipped: {photos / 'pipe.png'}: a FIFO (named pipe), not a photo file" in printed
    assert f"skipped: {out / 'f.png'} is already there and was not written by this app" \
        in printed
    assert f"failed: {photos / 'webp.png'}: not a PNG or JPEG image (it holds WebP)" in printed
    assert f"failed: {photos / 'cut.jpg'}: not a readable " in printed
    assert f"failed: {photos / 'huge.png'}: 20000x20000 (400.0 MP), above the limit of " \
           "100 MP (--max_megapixels)" in printed
    assert "deblur: 3 of 7 photos failed (listed above)" in printed
    assert peak_mb < 1500, f"{peak_mb:.0f} MB: was the 1.2 GB photo decoded?"
    assert sorted(os.listdir(out)) == [photo_files.MANIFEST, "e.jpg.png", "e.png.png",
                                       "f.png"]
    assert (out / "f.png").read_bytes() == theirs
    assert all(photo_files.Manifest(out).owns(out / name)
               for name in ("e.jpg.png", "e.png.png"))
    assert images.read_image(out / "e.jpg.png").shape == (24, 32, 3)
    assert {name: (photos / name).read_bytes() for name in inputs} == inputs
    done = {name: (out / name).read_bytes() for name in ("e.jpg.png", "e.png.png")}
    code, printed, _ = deblur(f"--checkpoint={checkpoint}", f"--input={photos}",
                              f"--output={out}", "--max_megapixels=0.001")
    assert code == 1 and "Deblurred 0 of 7 photos" in printed
    assert printed.count("is there from an earlier run (--overwrite redoes it)") == 2
    assert {name: (out / name).read_bytes() for name in done} == done


def test_a_read_only_output_folder_is_one_sentence(tmp_path, rng, checkpoint):
    photos, disk = tmp_path / "photos", tmp_path / "disk"
    photos.mkdir()
    disk.mkdir()
    for name in ("a.png", "b.png"):
        write_photo(photos / name, rng)
    with small_disk(disk, "16m"):
        (disk / "out").mkdir()
        remount(disk, "ro")
        code, printed, _ = deblur(f"--checkpoint={checkpoint}", f"--input={photos}",
                                  f"--output={disk / 'out'}")
        assert code == 1
        assert (f"deblur: cannot write in the output folder {disk / 'out'}: Read-only "
                "file system") in printed
        assert os.listdir(disk / "out") == []


def test_a_checkpoint_giving_nan_is_refused_on_the_first_photo(tmp_path, rng):
    model = build_model("single_2level", channels=4)
    model.get_layer("d2_2").bias.assign(tf.fill(model.get_layer("d2_2").bias.shape, np.nan))
    model.save(tmp_path / "diverged.keras")
    for name in ("a.png", "b.png"):
        write_photo(tmp_path / name, rng)
    code, printed, _ = deblur(f"--checkpoint={tmp_path / 'diverged.keras'}",
                              f"--input={tmp_path}", f"--output={tmp_path / 'out'}")
    assert code == 1
    assert (f"deblur: single_2level from {tmp_path / 'diverged.keras'} gives NaN or inf for "
            "a finite image: its weights are broken") in printed
    assert (f"stopped at {tmp_path / 'a.png'}, nothing written for it. Nothing further was "
            "deblurred: give a checkpoint whose weights are finite") in printed
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("tile_size,overlap,said", [
    (0, 64, "tile_size must be a positive number of pixels, got 0"),
    (-5, 64, "tile_size must be a positive number of pixels, got -5"),
    (100, 64, "overlap must be in [0, tile_size / 2), got 64 for tile_size 100"),
])
def test_tiling_flags_are_checked_once_before_any_photo(tmp_path, rng, checkpoint, tile_size,
                                                        overlap, said):
    write_photo(tmp_path / "a.png", rng)
    with flagsaver.flagsaver(checkpoint=checkpoint, input=str(tmp_path),
                             output=str(tmp_path / "out"), tile_size=tile_size,
                             overlap=overlap):
        with pytest.raises(SystemExit) as stop:
            deblur_app.main(["deblur"])
    assert str(stop.value) == (f"deblur: --tile_size={tile_size} --overlap={overlap}: "
                               f"{said}; leave --tile_size unset to deblur whole photos")
    assert not (tmp_path / "out").exists()


def test_attention_maps_and_a_single_file(tmp_path, rng, checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_photo(photos / "a.png", rng, size=(20, 30))
    with flagsaver.flagsaver(checkpoint=checkpoint, input=str(photos),
                             output=str(tmp_path / "out"), save_attention=True):
        deblur_app.main(["deblur"])
    assert sorted(os.listdir(tmp_path / "out")) == [photo_files.MANIFEST, "a.png",
                                                    "a_attention.png", "a_blur_map.png"]
    attention = images.read_image(tmp_path / "out" / "a_attention.png")
    assert attention.shape == (20, 30 * 5, 1)  # five rates side by side
    assert images.read_image(tmp_path / "out" / "a_blur_map.png").shape[1:] == (900, 3)
    single = tmp_path / "single.png"
    with flagsaver.flagsaver(checkpoint=checkpoint, input=str(photos / "a.png"),
                             output=str(single)):
        deblur_app.main(["deblur"])
    assert images.read_image(single).shape == (20, 30, 3)
