"""A whole run on cloud storage: ram://, TensorFlow's in-memory filesystem, stands in
for gs://. Each app runs in this process (ram:// lives in its memory), under a guard
that fails on any Python file call on such a path."""

import datetime
import json
import logging
import os
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from experiments import deblur as deblur_app
from experiments import evaluate as evaluate_app
from experiments import export as export_app
from experiments import train as train_app
from kpac_tf import load_deblurrer
from kpac_tf.data import images
from kpac_tf.training import run_folder
from tests.test_case import no_os_calls_on


def test_train_resume_evaluate_deblur_export_and_serve_on_cloud_storage(
        tmp_path, data_dir, rng, monkeypatch, capsys, caplog):
    run, serving = "ram://cycle/run", "ram://cycle/serving"
    photos, deblurred = "ram://cycle/photos", "ram://cycle/deblurred"
    tf.io.gfile.makedirs(photos)
    images.write_png(f"{photos}/a.png", rng.randint(0, 256, (20, 30, 3)).astype(np.uint8))
    images.write_png(f"{photos}/b.jpg.png", rng.randint(0, 256, (16, 24, 3)).astype(
        np.uint16) * 257)
    pairs = "ram://cycle/pairs"
    for view in ("blurry", "sharp"):
        tf.io.gfile.makedirs(f"{pairs}/{view}")
        images.write_png(f"{pairs}/{view}/p.png",
                         rng.randint(0, 256, (24, 32, 3)).astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="absl")
    with no_os_calls_on("ram://"):
        with flagsaver.flagsaver(model_dir=run, dataset_config="tiny", data_dir=data_dir,
                                 steps=2, batch_size=2, crop_size=32, channels=4,
                                 eval_images=1, save_every=2, eval_every=2):
            train_app.main(["train"])
        with flagsaver.flagsaver(model_dir=run, steps=4):  # resumes from config.json
            train_app.main(["train"])
        assert "final model at step 4" in capsys.readouterr().out
        with flagsaver.flagsaver(checkpoint=run, model=None, input_dir=pairs,
                                 output_dir="ram://cycle/evaluation"):
            evaluate_app.main(["evaluate"])
        with flagsaver.flagsaver(checkpoint=run, model=None, input=photos,
                                 output=deblurred):
            deblur_app.main(["deblur"])  # the whole folder
            deblur_app.main(["deblur"])  # a rerun: both are there, both skipped
        assert f"Deblurred 0 of 2 photos into {deblurred} (2 skipped)" in caplog.text
        with flagsaver.flagsaver(checkpoint=run, model=None, export_dir=serving):
            export_app.main(["export"])
        photo = images.read_image(f"{photos}/a.png")
        served, from_run = load_deblurrer(serving)(photo), load_deblurrer(run)(photo)
        written = images.read_image(f"{deblurred}/a.png")
        sixteen_bit = images.read_image(f"{deblurred}/b.jpg.png")
        tf.io.gfile.remove(f"{deblurred}/b.jpg.png")  # then one more rerun redoes it
        with flagsaver.flagsaver(checkpoint=run, model=None, input=photos,
                                 output=deblurred):
            deblur_app.main(["deblur"])
        assert caplog.text.count(f"skipped: {deblurred}/a.png is there from an earlier "
                                 "run") == 2

    # The run folder: resumed at step 2, finished at step 4, the best kept.
    assert run_folder.checkpoint_step(run_folder.newest_checkpoint(run)) == 4
    assert run_folder.read_config(run)["steps"] == 4
    assert run_folder.read_json(run, run_folder.METRICS)["step"] == 4
    best = run_folder.read_json(run_folder.path(run, run_folder.BEST),
                                run_folder.BEST_RECORD)
    assert best["step"] in (2, 4) and run_folder.is_run(run_folder.path(run, run_folder.BEST))
    assert not tf.io.gfile.exists(run_folder.path(run, run_folder.LOCK))
    with tf.io.gfile.GFile("ram://cycle/evaluation/metrics.json") as f:
        assert json.load(f)["images"] == 1
    np.testing.assert_array_equal(served, from_run)
    np.testing.assert_array_equal(written, from_run)
    assert sixteen_bit.dtype == np.uint16 and sixteen_bit.shape == (16, 24, 3)
    np.testing.assert_array_equal(images.read_image(f"{deblurred}/b.jpg.png"), sixteen_bit)
    assert sorted(tf.io.gfile.listdir(deblurred)) == [".kpac-deblur.json", "a.png",
                                                      "b.jpg.png"]
    assert images.png_text(f"{deblurred}/a.png")["Source"] == "a.png"
    # Nothing written locally but what was asked for (no "ram:" folder).
    assert os.listdir(tmp_path) == []


def test_the_training_cache_is_refused_on_cloud_storage(tmp_path):
    with flagsaver.flagsaver(model_dir=str(tmp_path / "run"), cache_dir="ram://cache"):
        with pytest.raises(SystemExit, match="cache_dir ram://cache: every training crop "
                           "reads the cache, so it stays on a local disk; give a local "
                           "path"):
            train_app.main(["train"])
    assert not (tmp_path / "run").exists()


def test_a_lease_refuses_a_live_trainer_and_takes_over_a_stale_one(monkeypatch, caplog):
    """On storage without flock, the run folder's lock is a lease renewed while the
    trainer runs."""
    monkeypatch.setattr(run_folder, "LEASE_SETTLE_SECONDS", 0.05)
    monkeypatch.setattr(run_folder, "LEASE_RENEW_SECONDS", 0.1)
    folder = "ram://lease/run"
    lock_file = run_folder.path(folder, run_folder.LOCK)
    tf.io.gfile.makedirs(folder)

    def record():
        # ram:// (unlike gs://) cannot replace a file: a renewal removes the record,
        # then writes it (files.before_overwrite), so a read may fall in between.
        for _ in range(100):
            try:
                with tf.io.gfile.GFile(lock_file) as f:
                    return json.load(f)
            except tf.errors.NotFoundError:
                time.sleep(0.005)
        raise AssertionError(f"{lock_file} stayed missing")

    with run_folder.lock(folder) as held:
        first = record()
        assert first["pid"] == os.getpid()
        with pytest.raises(run_folder.RunFolderBusy, match=(
                f"{folder} is in use by another trainer \\(pid {os.getpid()} on host .*; "
                "its lease was renewed \\d+ s ago\\).*loses its lease 300 s after")):
            with run_folder.lock(folder):
                pass
        for _ in range(50):  # renewed (timestamps have whole seconds)
            if record()["renewed"] != first["renewed"]:
                break
            time.sleep(0.1)
        assert record()["renewed"] > first["renewed"] and record()["token"] == first["token"]
        held.check()
    assert not tf.io.gfile.exists(lock_file)

    # A lease nobody renewed for longer than LEASE_STALE_SECONDS is taken over.
    stale = dict(host="gone", pid=1, since="2026-01-01T00:00:00+00:00",
                 renewed="2026-01-01T00:00:00+00:00", token="theirs")

    def replace_record(value):  # whole, as another trainer's write would land
        with tf.io.gfile.GFile(f"{lock_file}.new", "w") as f:
            f.write(json.dumps(value))
        tf.io.gfile.rename(f"{lock_file}.new", lock_file, overwrite=True)

    replace_record(stale)
    with run_folder.lock(folder) as held:
        assert "Taking over ram://lease/run/trainer.lock: the trainer that held it (pid 1 " \
            "on host gone" in caplog.text
        assert record()["token"] != "theirs"
        # Another trainer takes it over (this one, say, was suspended too long):
        # the next check stops this one, and its exit leaves the other's lease.
        replace_record(dict(stale, host="other", token="other"))
        time.sleep(0.5)
        with pytest.raises(run_folder.RunFolderBusy, match="another trainer took this run "
                           "folder over \\(pid 1 on host other"):
            held.check()
    assert record()["token"] == "other"

    # A fresh record of a process of this host that no longer exists (a killed
    # trainer, rerun at once) is taken over without waiting for it to go stale.
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    replace_record(dict(host=socket.gethostname(), pid=dead_pid.pid, since=now,
                        renewed=now, token="killed"))
    with run_folder.lock(folder):
        assert f"(pid {dead_pid.pid} on host {socket.gethostname()}, since {now}) is gone" \
            in caplog.text

    # A trainer that cannot renew its lease stops before another may take it over.
    monkeypatch.setattr(run_folder, "LEASE_STALE_SECONDS", 0.5)
    with run_folder.lock(folder) as held:
        def unreachable(file, value):
            raise tf.errors.UnavailableError(None, None, "storage unreachable")
        monkeypatch.setattr(run_folder, "_write_lease", unreachable)
        time.sleep(0.6)
        with pytest.raises(run_folder.RunFolderBusy, match="this trainer has not renewed "
                           "its lease in .* for \\d+ s \\(storage unreachable\\?\\)"):
            held.check()
    assert "Could not renew the lease ram://lease/run/trainer.lock (storage unreachable)" \
        in caplog.text
