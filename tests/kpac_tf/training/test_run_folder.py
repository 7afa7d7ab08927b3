"""kpac_tf.training.run_folder: a run folder's layout, which checkpoint is the latest
(one meaning), which run and step a path inside a run names, leftovers removed, one
trainer at a time."""

import json
import logging
import os
import re
import socket

import pytest
import tensorflow as tf

from kpac_tf.training import run_folder
from tests.test_case import no_os_calls_on, run_folder_held


def _save_checkpoints(folder, steps):
    """Checkpoints of a `step` variable in `folder` (as training writes them)."""
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(folder),
                                         max_to_keep=None)
    for value in steps:
        step.assign(value)
        manager.save(checkpoint_number=value)
    return manager


@pytest.fixture
def run(tmp_path):
    """A run folder: config.json, checkpoints at steps 2 and 4, the best at step 2."""
    folder = tmp_path / "run"
    _save_checkpoints(folder / run_folder.CHECKPOINTS, [2, 4])
    _save_checkpoints(folder / run_folder.BEST, [2])
    (folder / run_folder.CONFIG).write_text(json.dumps({"model": "single_2level"}))
    (folder / run_folder.BEST / run_folder.BEST_RECORD).write_text(json.dumps({"step": 2}))
    (folder / run_folder.BEST / run_folder.CONFIG).write_text("{}")
    return folder


def test_the_newest_checkpoint_of_a_run_or_a_checkpoint_folder(run, tmp_path):
    assert run_folder.newest_checkpoint(run).endswith(os.path.join("checkpoints", "ckpt-4"))
    assert run_folder.newest_checkpoint(run / "checkpoints") == run_folder.newest_checkpoint(run)
    assert run_folder.newest_checkpoint(run / "checkpoints" / "best").endswith(
        os.path.join("best", "ckpt-2"))
    assert run_folder.latest_step(run) == 4
    best = run_folder.newest_checkpoint(run / "checkpoints" / "best")
    assert run_folder.checkpoint_step(best) == 2
    assert run_folder.newest_checkpoint(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="checkpoints: no checkpoint"):
        run_folder.latest_step(tmp_path)


def test_a_listed_checkpoint_with_missing_files_is_still_the_latest(run):
    """tf.train.latest_checkpoint says "none" and a resume would start over; ours names
    it, so that restoring it fails and says so."""
    folder = run / run_folder.CHECKPOINTS
    for name in os.listdir(folder):
        if name.startswith("ckpt-4."):
            os.remove(folder / name)
    assert tf.train.latest_checkpoint(str(folder)) is None
    assert run_folder.newest_checkpoint(run).endswith("ckpt-4")


@pytest.mark.parametrize("inside,step", [
    ("", None), ("checkpoints", None), ("model.keras", None), ("weights_tf1.npz", None),
    ("checkpoints/best", 2)])
def test_a_path_inside_a_run_names_the_run_and_step(run, inside, step):
    assert run_folder.run_of(str(run / inside)) == (os.path.normpath(run), step)


def test_anything_else_is_no_run(run, tmp_path):
    (tmp_path / "model.keras").write_text("")
    assert run_folder.run_of(str(tmp_path / "model.keras")) == (None, None)
    assert run_folder.is_run(run) and run_folder.is_run(run / "checkpoints" / "best")
    assert not run_folder.is_run(tmp_path) and run_folder.read_config(tmp_path) is None
    assert run_folder.read_config(run) == {"model": "single_2level"}


def test_leftovers_of_an_interrupted_run_are_removed_and_nothing_else(run):
    checkpoints = run / run_folder.CHECKPOINTS
    kept = sorted(p.relative_to(run) for p in run.rglob("*"))
    leftovers = [run / ".tmp-abc.json", checkpoints / "checkpoint.tmp123",
                 checkpoints / "ckpt-6.index.tempstate42", run / run_folder.BEST / ".tmp-x"]
    for path in leftovers:
        path.write_text("partial")
    (checkpoints / "ckpt-6_temp").mkdir()
    (checkpoints / "ckpt-6_temp" / "part-0").write_text("partial")
    run_folder.remove_leftovers(run)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == kept
    assert run_folder.latest_step(run) == 4


def test_one_trainer_holds_a_run_folder_and_a_gone_one_is_taken_over(tmp_path, caplog):
    """A live holder (another process) is refused, naming it, with nothing written; a
    holder killed with SIGKILL leaves its lock file, which the next trainer takes over
    with a log line; the lock file goes when its holder is done."""
    lock_file = tmp_path / run_folder.LOCK
    with run_folder_held(tmp_path) as holder:
        before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        with pytest.raises(run_folder.RunFolderBusy,
                           match=f"in use by another trainer \\(pid {holder.pid} on host "
                                 f"{re.escape(socket.gethostname())}, since .*wait for it"):
            with run_folder.lock(tmp_path):
                pytest.fail("locked a held folder")
        assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert json.loads(lock_file.read_text())["pid"] == holder.pid  # left by the kill
    with caplog.at_level(logging.WARNING, logger="absl"):
        with run_folder.lock(tmp_path):
            assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    assert f"the trainer that held it (pid {holder.pid} on host" in caplog.text
    assert not lock_file.exists()


def test_a_deleted_lock_file_is_written_again_or_its_holder_stops(tmp_path, caplog):
    """Deleting trainer.lock under a live trainer (as a stale lock's message advises)
    neither lets a second trainer in unnoticed nor ends the first in a traceback:
    the holder's next check writes the file again, or, if another trainer took the
    folder meanwhile, stops the holder in a sentence; leaving never removes a lock
    file that is not its own."""
    lock_file = tmp_path / run_folder.LOCK
    with run_folder.lock(tmp_path) as held:
        lock_file.unlink()
        with caplog.at_level(logging.WARNING, logger="absl"):
            held.check()
        assert "was deleted while this trainer held the folder: written again" in caplog.text
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        with pytest.raises(run_folder.RunFolderBusy, match="in use by another trainer"):
            with run_folder.lock(tmp_path):
                pytest.fail("locked a held folder")
    assert not lock_file.exists()
    with run_folder.lock(tmp_path) as held:
        lock_file.unlink()
        with run_folder_held(tmp_path) as other:  # another trainer takes the folder
            with pytest.raises(run_folder.RunFolderBusy, match=(
                    f"{re.escape(str(lock_file))} was deleted while this trainer held "
                    f".*another trainer \\(pid {other.pid} on host .*\\) has taken the "
                    "folder since; this trainer stops without writing more")):
                held.check()
    # Leaving did not remove the other trainer's lock file (its kill left it).
    assert json.loads(lock_file.read_text())["pid"] == other.pid


def test_a_lock_from_another_host_is_refused_with_the_way_to_clear_it(tmp_path):
    lock_file = tmp_path / run_folder.LOCK
    lock_file.write_text(json.dumps(dict(host="gpu-node-7", pid=4242, since="2026-12-01")))
    with pytest.raises(run_folder.RunFolderBusy, match=(
            f"another host \\(pid 4242 on host gpu-node-7, since 2026-12-01\\); if no "
            f"trainer runs there on this folder any more, delete {re.escape(str(lock_file))}")):
        with run_folder.lock(tmp_path):
            pytest.fail("locked a folder another host holds")
    assert json.loads(lock_file.read_text())["host"] == "gpu-node-7"


def test_which_failed_writes_are_explained(tmp_path):
    """Want of room is the run's whatever the file; want of permission only in the
    run folder (elsewhere it may be a read: the data, the weights); TensorFlow's
    errors are read from their words, a checkpoint's temporary named as the
    checkpoint."""
    run = tmp_path / "run"
    _save_checkpoints(run / "checkpoints", [3])
    resumes = rf"the run resumes from step 3 \({re.escape(str(run))}/checkpoints/ckpt-3\)$"
    with pytest.raises(run_folder.WriteFailed, match=(
            rf"^could not write {re.escape(str(run))}: No space left on device\. Free space "
            rf".*{resumes}")) as raised:
        with run_folder.writes_explained(run):
            raise OSError(28, "No space left on device")  # zipfile names no file
    assert raised.value.__cause__.errno == 28
    with pytest.raises(run_folder.WriteFailed, match=(
            rf"^could not write {re.escape(str(run))}/checkpoints/ckpt-4: Permission "
            rf"denied\. .*{resumes}")):
        with run_folder.writes_explained(run):
            raise tf.errors.PermissionDeniedError(None, None, (
                f"{run}/checkpoints/ckpt-4_temp/part-00000-of-00001.index; Permission "
                "denied"))
    with pytest.raises(PermissionError):  # not the run's: passed on as it was
        with run_folder.writes_explained(run):
            raise PermissionError(13, "Permission denied", str(tmp_path / "data.png"))
    with pytest.raises(tf.errors.ResourceExhaustedError, match="OOM"):  # memory, not disk
        with run_folder.writes_explained(run):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")


def test_a_run_folder_on_cloud_storage_reads_cleans_and_explains_alike():
    """ram:// (standing in for gs://): the same answers, leftovers removed, a refused
    write explained, and no Python file call on such a path."""
    run = "ram://run_folder_test/run"
    checkpoints = run_folder.path(run, run_folder.CHECKPOINTS)
    with no_os_calls_on("ram://"):
        _save_checkpoints(checkpoints, [2, 4])
        _save_checkpoints(run_folder.path(run, run_folder.BEST), [2])
        for folder, name, text in ((run, run_folder.CONFIG, "{}"),
                                   (run_folder.path(run, run_folder.BEST),
                                    run_folder.BEST_RECORD, '{"step": 2}'),
                                   (run, ".tmp-abc.json", "partial"),
                                   (checkpoints, "checkpoint.tmp123", "partial"),
                                   (f"{checkpoints}/ckpt-6_temp", "part-0", "partial")):
            tf.io.gfile.makedirs(folder)
            with tf.io.gfile.GFile(f"{folder}/{name}", "w") as f:
                f.write(text)
        assert run_folder.is_run(run) and run_folder.read_config(run) == {}
        assert run_folder.newest_checkpoint(run) == f"{checkpoints}/ckpt-4"
        assert run_folder.checkpoint_to_resume(run) == f"{checkpoints}/ckpt-4"
        assert run_folder.latest_step(run) == 4
        assert run_folder.run_of(f"{run}/checkpoints/best/") == (run, 2)
        assert run_folder.run_of(f"{run}/model.keras") == (run, None)
        run_folder.remove_leftovers(run)
        assert sorted(tf.io.gfile.listdir(run)) == ["checkpoints", "config.json"]
        assert not any(n.startswith(("checkpoint.tmp", "ckpt-6"))
                       for n in tf.io.gfile.listdir(checkpoints))
        with pytest.raises(run_folder.WriteFailed, match=(
                rf"^could not write {run}/checkpoints/ckpt-6: Permission denied\. .*the "
                rf"run resumes from step 4 \({run}/checkpoints/ckpt-4\)$")):
            with run_folder.writes_explained(run):
                raise tf.errors.PermissionDeniedError(None, None, (
                    f"Error writing {run}/checkpoints/ckpt-6_temp/part-0: Permission "
                    "denied"))
