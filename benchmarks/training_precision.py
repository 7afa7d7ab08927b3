r"""Training precision and weight averaging at the embedded-default budget.

python benchmarks/training_precision.py --runs_dir=/tmp/kpac_runs --data_dir=/tmp/tfds \
    [--variants=float32,mixed_bfloat16,ema_0.99,ema_0.999] [--repeats=1]

Each variant is `python -m experiments.train --preset=embedded_default` (single_2level,
500 steps of batch 4, 128 px crops, seed 0) plus the variant's flags, trained in its
own folder `<runs_dir>/<variant>-<repeat>` (a finished folder is read, not trained
again). Runs go one after another, never two at once (they would share the cores);
with --repeats=2 the second round runs the variants in reverse order, so a load
change on a shared machine shows as a difference between rounds.

Reported per run: training speed (median steps/s of the logged 25-step windows, which
leaves out the first window's tracing and the windows holding an evaluation), the
process's wall time, the final model's validation PSNR / SSIM (the 40 validation
images), the best validation PSNR and its step, the test PSNR / SSIM (the 40 test
images, scored once at the end), and the 1-minute load average before and after.
Prints a table and writes `<runs_dir>/results.json`.
"""

import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from kpac_tf.training import run_folder  # noqa: E402
from kpac_tf.utils.files import write_json  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    "float32": [],
    "mixed_bfloat16": ["--training_precision=mixed_bfloat16"],
    "ema_0.99": ["--ema_decay=0.99"],
    "ema_0.999": ["--ema_decay=0.999"],
    "mixed_bfloat16_ema_0.99": ["--training_precision=mixed_bfloat16", "--ema_decay=0.99"],
}

_RUNS_DIR = flags.DEFINE_string("runs_dir", None, "Folder for the run folders.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data folder (the synthetic "
                                "dataset is built there on first use).")
_VARIANTS = flags.DEFINE_list("variants", ["float32", "mixed_bfloat16", "ema_0.99",
                                           "ema_0.999"],
                              f"Variants to run, in order: {', '.join(VARIANTS)}.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Rounds (even rounds in reverse order).")
_EXTRA = flags.DEFINE_list("extra_flags", [], "More experiments.train flags for every "
                           "run (e.g. --steps=100 for a quick look).")


def steps_per_second(run_dir):
    """Median of the `steps_per_second` scalars in the run's train/ summaries."""
    import tensorflow as tf

    rates = []
    train = run_folder.path(run_dir, run_folder.TRAIN_SUMMARIES)
    for name in sorted(os.listdir(train)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(train, name)):
            for value in event.summary.value:
                if value.tag == "steps_per_second":
                    rates.append(float(tf.make_ndarray(value.tensor)))
    return statistics.median(rates) if rates else float("nan")


def run_variant(name, run_dir):
    """Trains (unless finished) and returns the run's measurements."""
    load_before = os.getloadavg()[0]
    wall = None
    if run_folder.read_json(run_dir, run_folder.METRICS) is None:
        command = [sys.executable, "-m", "experiments.train", "--preset=embedded_default",
                   f"--model_dir={run_dir}", *VARIANTS[name], *_EXTRA.value]
        if _DATA_DIR.value:
            command.append(f"--data_dir={_DATA_DIR.value}")
        print("$", " ".join(command), flush=True)
        start = time.time()
        subprocess.run(command, cwd=REPO, check=True)
        wall = time.time() - start
    final = run_folder.read_json(run_dir, run_folder.METRICS)
    return dict(
        variant=name, run_dir=run_dir, flags=VARIANTS[name] + _EXTRA.value,
        steps=final["step"], steps_per_second=steps_per_second(run_dir),
        wall_seconds=wall, load_before=load_before, load_after=os.getloadavg()[0],
        validation_psnr=final["validation"]["psnr"],
        validation_ssim=final["validation"]["ssim"],
        validation_images=final["validation"]["images"],
        best_validation_psnr=final["best"]["psnr"], best_step=final["best"]["step"],
        test_psnr=final["psnr"], test_ssim=final["ssim"], test_images=final["images"],
        input_test_psnr=final["input_psnr"],
        input_validation_psnr=final["validation"]["input_psnr"])


def main(argv):
    del argv
    unknown = [v for v in _VARIANTS.value if v not in VARIANTS]
    if unknown or not _RUNS_DIR.value:
        raise app.UsageError(f"give --runs_dir and variants from {list(VARIANTS)} "
                             f"(unknown: {unknown})")
    results = []
    for repeat in range(_REPEATS.value):
        order = _VARIANTS.value if repeat % 2 == 0 else _VARIANTS.value[::-1]
        for name in order:
            results.append(run_variant(
                name, os.path.join(_RUNS_DIR.value, f"{name}-{repeat + 1}")))
    write_json(os.path.join(_RUNS_DIR.value, "results.json"),
               dict(cpu_count=os.cpu_count(), results=results), indent=2)
    print(f"\n{'run':<28} {'steps/s':>7} {'wall s':>7} {'load':>9} | "
          f"{'val PSNR':>8} {'SSIM':>6} {'best':>6} {'@step':>5} | {'test PSNR':>9} "
          f"{'SSIM':>6}")
    for r in results:
        wall = f"{r['wall_seconds']:.0f}" if r["wall_seconds"] else "-"
        print(f"{os.path.basename(r['run_dir']):<28} {r['steps_per_second']:7.2f} "
              f"{wall:>7} {r['load_before']:4.1f}-{r['load_after']:<4.1f} | "
              f"{r['validation_psnr']:8.2f} {r['validation_ssim']:6.4f} "
              f"{r['best_validation_psnr']:6.2f} {r['best_step']:5d} | "
              f"{r['test_psnr']:9.2f} {r['test_ssim']:6.4f}")
    first = results[0]
    print(f"blurry input: validation {first['input_validation_psnr']:.2f} dB "
          f"({first['validation_images']} images), test {first['input_test_psnr']:.2f} dB "
          f"({first['test_images']} images)")


if __name__ == "__main__":
    app.run(main)
