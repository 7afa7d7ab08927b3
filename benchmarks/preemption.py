r"""Time from a preemption signal to the trainer's exit, and the steps it loses.

python benchmarks/preemption.py --work_dir=/tmp/kpac_preemption [--runs=3]

Starts `experiments.train` on the synthetic `tiny` config (crop 64, batch 4, 8
channels, periodic saves every 100 steps), sends SIGTERM or SIGINT once step 5 is
logged, and reports the exit code, the seconds from the signal to the exit, and the
steps lost (the last step logged minus the step the run saved on the way out).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from absl import app, flags

_WORK_DIR = flags.DEFINE_string("work_dir", None, "Folder for the runs and the data.")
_RUNS = flags.DEFINE_integer("runs", 3, "Runs, alternating SIGTERM and SIGINT.")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(work_dir, signal_number):
    """(exit code, seconds from the signal to the exit, steps lost) of one run."""
    run, log = os.path.join(work_dir, "run"), os.path.join(work_dir, "run.log")
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "experiments.train", f"--model_dir={run}",
               "--dataset_config=tiny", f"--data_dir={work_dir}/tfds", "--steps=200",
               "--batch_size=4", "--crop_size=64", "--channels=8", "--save_every=100",
               "--log_every=1", "--eval_every=100", "--eval_images=1"]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    while process.poll() is None and "step 5/200" not in open(log).read():
        time.sleep(0.01)
    sent = time.time()
    process.send_signal(signal_number)
    code = process.wait()
    seconds = time.time() - sent
    text = open(log).read()
    saved = re.search(r"at step (\d+) of 200: saved", text)
    last = max(int(n) for n in re.findall(r"step (\d+)/200", text))
    return code, seconds, (last - int(saved.group(1))) if saved else None


def main(argv):
    del argv
    os.makedirs(_WORK_DIR.value, exist_ok=True)
    for index in range(_RUNS.value):
        number = (signal.SIGTERM, signal.SIGINT)[index % 2]
        code, seconds, lost = one_run(_WORK_DIR.value, number)
        print(f"{signal.Signals(number).name}: exit {code} after {seconds:.2f} s, "
              f"steps lost {lost}")


if __name__ == "__main__":
    flags.mark_flag_as_required("work_dir")
    app.run(main)
