"""kpac_tf.training.cluster: multi-worker training (MultiWorkerMirroredStrategy,
TF_CONFIG). Two worker processes on 127.0.0.1 train one run folder, exactly as one
process would lay it out, and resume together. (One machine: shared storage is the
local disk.)"""

import collections
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.training import cluster, loop, run_folder, settings
from tests.test_case import REPO, run_folder_held


def free_ports(count):
    """Ports free on 127.0.0.1 now (held together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


SETTINGS = ["--dataset_config=tiny", "--batch_size=2", "--crop_size=32", "--channels=4",
            "--learning_rate=1e-3", "--save_every=2", "--eval_every=2", "--eval_images=1",
            "--log_every=1"]


def single_config(model_dir, data_dir, steps):
    """What SETTINGS ask for, in one process."""
    return settings.make_config(
        None, model_dir=str(model_dir), dataset="synthetic", dataset_config="tiny",
        data_dir=data_dir, steps=steps, batch_size=2, crop_size=32,
        model_overrides={"channels": 4}, learning_rate=1e-3, save_every=2, eval_every=2,
        eval_images=1, log_every=1)


def run_cluster(model_dir, data_dir, steps, scratch, tasks=("worker", "worker"),
                timeout=240, interrupt=None):
    """Runs `python -m experiments.train --strategy=multi_worker` once per task of
    `tasks` ("chief" / "worker"), each with its TF_CONFIG, and TMPDIR `scratch` (where
    a non-chief worker keeps its private copies). `interrupt` (task number, signal,
    text): sends the signal to that task once its log shows the text. Kills them all
    (SIGKILL) if any is still running after `timeout` seconds. Returns
    [(returncode, log)]."""
    ports = iter(free_ports(len(tasks)))
    cluster = collections.defaultdict(list)
    addresses = [f"127.0.0.1:{next(ports)}" for _ in tasks]
    for task, address in zip(tasks, addresses):
        cluster[task].append(address)
    processes, logs = [], []
    counters = collections.Counter()
    try:
        for number, task in enumerate(tasks):
            index = counters[task]
            counters[task] += 1
            env = dict(os.environ, TMPDIR=str(scratch), TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": task, "index": index}}))
            log = open(scratch.parent / f"{scratch.name}-{number}.log", "w+")
            logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "experiments.train", "--strategy=multi_worker",
                 f"--model_dir={model_dir}", f"--data_dir={data_dir}", f"--steps={steps}",
                 *SETTINGS], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.time() + timeout
        if interrupt is not None:
            number, signal_number, text = interrupt
            while time.time() < deadline and text not in pathlib.Path(logs[number].name) \
                    .read_text():
                time.sleep(0.05)
            processes[number].send_signal(signal_number)
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.time(), 1))
            except subprocess.TimeoutExpired:
                break
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    results = []
    for process, log in zip(processes, logs):
        log.seek(0)
        results.append((process.returncode, log.read()))
        log.close()
    return results


def layout(model_dir):
    """The run folder's files, relative; TensorBoard event files as `events` (one
    name per file, so two writers of one folder would show twice), the best
    checkpoint's step as N (the two runs' streams differ)."""
    names = []
    for path in pathlib.Path(model_dir).rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(model_dir))
            if path.name.startswith("events.out.tfevents."):
                relative = str(path.parent.relative_to(model_dir) / "events")
            names.append(re.sub(r"^checkpoints/best/ckpt-\d+", "checkpoints/best/ckpt-N",
                                relative))
    return sorted(names)


def test_worker_index_from_tf_config(monkeypatch):
    def worker(spec, task_type, index):
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": spec, "task": {"type": task_type, "index": index}}))
        return cluster.this_worker("multi_worker")

    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert [(w.count, w.index, w.is_chief) for w in
            (worker(workers, "worker", i) for i in range(3))] == [
        (3, 0, True), (3, 1, False), (3, 2, False)]
    with_chief = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert worker(with_chief, "chief", 0).index == 0
    assert [worker(with_chief, "worker", i).index for i in range(2)] == [1, 2]
    with pytest.raises(ValueError, match="'evaluator'"):
        worker(dict(with_chief, evaluator=["d:1"]), "evaluator", 0)
    # One task, no TF_CONFIG, or another strategy: one worker, the chief.
    assert worker({"worker": ["a:1"]}, "worker", 0) == cluster.Worker()
    monkeypatch.delenv("TF_CONFIG")
    assert cluster.this_worker("multi_worker") == cluster.Worker()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": workers,
                                                "task": {"type": "worker", "index": 1}}))
    assert cluster.this_worker("mirrored") == cluster.Worker()


def test_two_workers_train_and_resume_one_run_folder(tmp_path, data_dir):
    """Two processes on 127.0.0.1: a chief and a worker, then (resuming) the same two
    as workers 0 and 1 (the same stream indices); then a run that a SIGTERM to one
    worker stops, and that resumed loses a worker to SIGKILL. Only the chief writes the run folder, laid out as one process's; the
    other worker's copies go to its temporary folder and are removed; both restore
    from the chief's checkpoint."""
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    results = run_cluster(run, data_dir, 4, scratch, tasks=("chief", "worker"))
    for code, log in results:
        assert code == 0, log[-3000:]
    assert json.loads((run / "config.json").read_text())["workers"] == 2
    assert run_folder.newest_checkpoint(str(run)).endswith("ckpt-4")
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    assert not list(scratch.iterdir())  # the worker's private copies are gone
    # The same layout as one process's run (one file per TensorBoard folder: only the
    # chief writes; no worker leftovers, no temporary files).
    single = tmp_path / "single"
    loop.train(single_config(single, data_dir, 4))
    assert layout(run) == layout(single)
    model = keras.models.load_model(run / "model.keras")
    output = model(np.zeros((1, 32, 32, 3), np.float32))
    assert output.shape == (1, 32, 32, 3) and np.isfinite(output).all()

    results = run_cluster(run, data_dir, 6, scratch)
    for code, log in results:
        assert code == 0, log[-3000:]
        assert "Restored from step 4" in log
    assert run_folder.newest_checkpoint(str(run)).endswith("ckpt-6")
    assert json.loads((run / "metrics.json").read_text())["step"] == 6
    assert not list(scratch.iterdir())
    loop.train(single_config(single, data_dir, 6))
    assert layout(run) == layout(single)

    # The streams depend on the number of workers: one process may not resume it.
    with pytest.raises(ValueError, match=r"different run \(workers: 2 -> 1\) \(each "
                                         r"worker reads its own seeded stream"):
        loop.train(single_config(run, data_dir, 8))

    # SIGTERM to the non-chief worker only: both finish the same step, save it and exit
    # 143; rerun, they resume from it and end with the weights of `run` (never stopped).
    stopped_run = tmp_path / "stopped"
    results = run_cluster(stopped_run, data_dir, 6, scratch, tasks=("chief", "worker"),
                          interrupt=(1, signal.SIGTERM, "step 2/6"))
    steps = set()
    for (code, log), told in zip(results, (" to another worker", "")):
        assert code == 143, log[-3000:]
        stopped = re.search(rf"interrupted \(SIGTERM{told}\) at step (\d+) of 6: saved", log)
        assert stopped, log[-3000:]
        steps.add(int(stopped.group(1)))
    (step,) = steps  # one step, agreed
    assert run_folder.newest_checkpoint(str(stopped_run)).endswith(f"ckpt-{step}")
    # Resumed, then SIGKILL to the worker: the chief says in one sentence which task was
    # lost and where a restart resumes; restarted, both end as `run` (never stopped).
    (code, log), _ = run_cluster(stopped_run, data_dir, 6, scratch, tasks=("chief", "worker"),
                                 interrupt=(1, signal.SIGKILL, "step 5/6"))
    newest = run_folder.newest_checkpoint(str(stopped_run))
    assert code == 1 and "Traceback" not in log, log[-3000:]
    assert re.search(
        r"train: worker:0 \(127\.0\.0\.1:\d+\) stopped answering \([^)]+\), so this worker "
        r"\(chief:0\) stopped too; restart every worker with the same command: the run "
        rf"resumes from step {run_folder.checkpoint_step_of_name(newest)} \({re.escape(newest)}"
        r"\)\n$", log), log[-3000:]
    step = run_folder.checkpoint_step_of_name(newest)
    for code, log in run_cluster(stopped_run, data_dir, 6, scratch, tasks=("chief", "worker")):
        assert code == 0 and f"Restored from step {step}" in log, log[-3000:]
    for a, b in zip(keras.models.load_model(stopped_run / "model.keras").weights,
                    keras.models.load_model(run / "model.keras").weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_chief_refused_its_run_folder_stops_every_worker(tmp_path, data_dir):
    """The run folder held by another trainer: the chief is refused, and the other
    worker stops with it at once (it would otherwise wait for the chief for ever),
    each saying why in one sentence."""
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    run.mkdir()
    scratch.mkdir()
    with run_folder_held(run) as holder:
        (chief, chief_log), (worker, worker_log) = run_cluster(
            run, data_dir, 4, scratch, tasks=("chief", "worker"), timeout=120)
    assert chief == 1 and f"is in use by another trainer (pid {holder.pid}" in chief_log, \
        chief_log[-3000:]
    assert worker == 1 and "train: the chief could not take the run folder" in worker_log \
        and "so this worker (worker:0) stops too" in worker_log, worker_log[-3000:]
    assert "Traceback" not in chief_log + worker_log


def test_a_lost_worker_is_named(monkeypatch, tmp_path):
    """What the survivors of a lost worker say, from the errors TensorFlow raises."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"chief": ["127.0.0.1:2221"], "worker": ["127.0.0.1:2222"]},
        "task": {"type": "chief", "index": 0}}))
    chief = cluster.Worker(count=2, index=0, task="chief:0")
    reset = tf.errors.UnavailableError(None, None, (
        "Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC "
        "error information from remote target /job:worker/replica:0/task:0 while calling "
        "/tensorflow.WorkerService/RecvBuf:"))
    assert cluster.lost_worker_message(reset, chief, str(tmp_path)) == (
        "worker:0 (127.0.0.1:2222) stopped answering (Connection reset by peer), so this "
        "worker (chief:0) stopped too; restart every worker with the same command: the run "
        "starts from the beginning (no checkpoint was saved yet)")
    hung = tf.errors.UnavailableError(None, None, (  # a stopped (SIGSTOP) task's
        "Collective ops is aborted by: task /job:worker/replica:0/task:0 ... timed out:"))
    assert cluster.lost_worker_message(hung, chief, str(tmp_path)).startswith(
        "worker:0 (127.0.0.1:2222) stopped answering (UnavailableError), so")
    with pytest.raises(cluster.WorkerLost, match=r"^another worker stopped answering "
                                                  r"\(DeadlineExceededError\)") as raised:
        with cluster.lost_workers_explained(chief, str(tmp_path)):
            raise tf.errors.DeadlineExceededError(None, None, "timed out")
    assert isinstance(raised.value.__cause__, tf.errors.DeadlineExceededError)
    with pytest.raises(tf.errors.UnavailableError):  # one worker: nobody else to lose
        with cluster.lost_workers_explained(cluster.Worker(), str(tmp_path)):
            raise reset
