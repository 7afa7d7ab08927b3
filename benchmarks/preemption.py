r"""Time from a preemption signal to the trainer's exit, and the steps it loses; time
from a lost worker to the survivor's exit.

python benchmarks/preemption.py --work_dir=/tmp/kpac_preemption [--runs=3]

Starts `experiments.train` on the synthetic `tiny` config (crop 64, batch 4, 8
channels, periodic saves every 100 steps), sends SIGTERM or SIGINT once step 5 is
logged, and reports the exit code, the seconds from the signal to the exit, and the
steps lost (the last step logged minus the step the run saved on the way out).

Then (`--lost_worker_runs`) the same run on two workers (a chief and a worker on
127.0.0.1, `--strategy=multi_worker`, saves every 2 steps): SIGKILL to the worker once
step 5 is logged, and the chief's exit code, seconds from the kill to its exit, and
its last line.
"""

import json
import os
import re
import socket
import shutil
import signal
import subprocess
import sys
import time

from absl import app, flags

_WORK_DIR = flags.DEFINE_string("work_dir", None, "Folder for the runs and the data.")
_RUNS = flags.DEFINE_integer("runs", 3, "Runs, alternating SIGTERM and SIGINT.")
_LOST_WORKER_RUNS = flags.DEFINE_integer("lost_worker_runs", 2,
                                         "Two-worker runs that lose a worker to SIGKILL.")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(work_dir, run, save_every=100, extra=()):
    return [sys.executable, "-m", "experiments.train", f"--model_dir={run}",
            "--dataset_config=tiny", f"--data_dir={work_dir}/tfds", "--steps=200",
            "--batch_size=4", "--crop_size=64", "--channels=8", f"--save_every={save_every}",
            "--log_every=1", "--eval_every=100", "--eval_images=1", *extra]


def wait_for(process, log, text):
    while process.poll() is None and text not in open(log).read():
        time.sleep(0.01)


def one_run(work_dir, signal_number):
    """(exit code, seconds from the signal to the exit, steps lost) of one run."""
    run, log = os.path.join(work_dir, "run"), os.path.join(work_dir, "run.log")
    shutil.rmtree(run, ignore_errors=True)
    with open(log, "w") as stderr:
        process = subprocess.Popen(command(work_dir, run), cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    wait_for(process, log, "step 5/200")
    sent = time.time()
    process.send_signal(signal_number)
    code = process.wait()
    seconds = time.time() - sent
    text = open(log).read()
    saved = re.search(r"at step (\d+) of 200: saved", text)
    last = max(int(n) for n in re.findall(r"step (\d+)/200", text))
    return code, seconds, (last - int(saved.group(1))) if saved else None


def one_lost_worker(work_dir):
    """(the chief's exit code, seconds from the worker's SIGKILL to the chief's exit,
    its last line) of one two-worker run."""
    run = os.path.join(work_dir, "cluster_run")
    shutil.rmtree(run, ignore_errors=True)
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    chief, worker = (f"127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    for s in sockets:
        s.close()
    processes, logs = [], []
    for task in ("chief", "worker"):
        logs.append(os.path.join(work_dir, f"{task}.log"))
        tf_config = {"cluster": {"chief": [chief], "worker": [worker]},
                     "task": {"type": task, "index": 0}}
        with open(logs[-1], "w") as stderr:
            processes.append(subprocess.Popen(
                command(work_dir, run, 2, ["--strategy=multi_worker"]), cwd=REPO,
                env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.DEVNULL, stderr=stderr))
    wait_for(processes[1], logs[1], "step 5/200")
    sent = time.time()
    processes[1].kill()
    code = processes[0].wait()
    seconds = time.time() - sent
    processes[1].wait()
    return code, seconds, open(logs[0]).read().strip().splitlines()[-1]


def main(argv):
    del argv
    os.makedirs(_WORK_DIR.value, exist_ok=True)
    for index in range(_RUNS.value):
        number = (signal.SIGTERM, signal.SIGINT)[index % 2]
        code, seconds, lost = one_run(_WORK_DIR.value, number)
        print(f"{signal.Signals(number).name}: exit {code} after {seconds:.2f} s, "
              f"steps lost {lost}")
    for _ in range(_LOST_WORKER_RUNS.value):
        code, seconds, last = one_lost_worker(_WORK_DIR.value)
        print(f"worker lost (SIGKILL): the chief exits {code} after {seconds:.2f} s: {last}")


if __name__ == "__main__":
    flags.mark_flag_as_required("work_dir")
    app.run(main)
