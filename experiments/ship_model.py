r"""Turns a finished synthetic-defocus training run into the bundled model, if it
passes the quality gate.

python -m experiments.ship_model --run=/root/kpac_runs/ship_2level

Scores the run's latest checkpoint on the synthetic test split (images never seen in
training) exactly as `experiments.evaluate` does, and Wiener deconvolution with each
image's true mean blur radius (`experiments.wiener_baseline`). Only when the model
beats the blurry input by --min_gain_db PSNR and beats the Wiener baseline does it
write `kpac_tf/weights/single_2level_synthetic.npz` (the authors' format) and its
provenance `.json` (settings, steps, seed, training wall time, scores); otherwise it
exits with the measured numbers and writes nothing. For a run trained with
--ema_decay, the checkpoint's model is the moving average of the weights, so that is
what is scored and shipped.
"""

import glob
import json
import os

import tensorflow as tf
from absl import app, flags

from kpac_tf import bundled, checkpoints, data, evaluation, inference
from kpac_tf.files import atomic_output

from .common_flags import DATA_DIR as _DATA_DIR, LOGGING, run_app
from .evaluate import dataset_items
from .wiener_baseline import wiener_scores

_RUN = flags.DEFINE_string("run", None, "Training run folder (experiments.train --model_dir).")
_MIN_GAIN_DB = flags.DEFINE_float("min_gain_db", 1.5,
                                  "Required mean PSNR gain over the blurry input.")
_EVAL_DIR = flags.DEFINE_string("eval_dir", "outputs/ship_model",
                                "Where the evaluation's images and metrics go.")
_NOTES = flags.DEFINE_string("notes", None, "Anything the run folders do not record "
                             "(e.g. a dataset version that changed between phases).")
_WIENER_SNRS = (3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def training_wall_seconds(run_dir):
    """Seconds spent training: per TensorBoard file in `run_dir/train` (one per start
    or resume), last minus first event time, summed (pauses are not counted)."""
    total = 0.0
    for path in sorted(glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*"))):
        times = [e.wall_time for e in tf.compat.v1.train.summary_iterator(path)
                 if e.step > 0]
        if times:
            total += max(times) - min(times)
    return total


def training_command(config):
    """The `experiments.train` command line that reproduces a run's config.json."""
    flags_used = ["model_dir", "init_from", "model", "dataset", "dataset_config", "steps",
                  "learning_rate", "crop_size", "batch_size", "seed"]
    args = [f"--{k}={config[k]}" for k in flags_used if config.get(k) is not None]
    if config.get("precision", "float32") != "float32":
        args.append(f"--training_precision={config['precision']}")
    if config.get("ema_decay"):
        args.append(f"--ema_decay={config['ema_decay']}")
    return " ".join(["python -m experiments.train"] + args
                    + (["--flips"] if config.get("flips") else []))


def latest_step(run_dir):
    """The step of a run folder's latest checkpoint."""
    latest = checkpoints.training_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint")
    return int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def training_phases(run_dir):
    """[{command, steps, data_seed, wall_hours}] of a run and, following --init_from
    to earlier run folders, the runs it continued; first phase first."""
    phases = []
    while run_dir:
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        phases.insert(0, dict(command=training_command(config), steps=latest_step(run_dir),
                              data_seed=config["seed"], learning_rate=config["learning_rate"],
                              wall_hours=round(training_wall_seconds(run_dir) / 3600, 2)))
        start = config.get("init_from")
        run_dir = start if start and os.path.isfile(os.path.join(start, "config.json")) \
            else None
    return phases


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run_dir = _RUN.value
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        if (config["model"], config["dataset"], config.get("model_overrides") or {}) != \
                (bundled.NAME, "synthetic", {}):
            raise ValueError(f"{run_dir}: the bundled model is a plain {bundled.NAME} "
                             f"trained on synthetic data; this run is {config['model']} "
                             f"on {config['dataset']} {config.get('model_overrides')}")
        model = inference.load_deblurrer(run_dir).keras_model
        phases = training_phases(run_dir)
        builder = data.prepare("synthetic", _DATA_DIR.value, config.get("dataset_config"))
        items = dataset_items("synthetic", config.get("dataset_config"), _DATA_DIR.value,
                              None, "test", bundled.NAME)
        scores = evaluation.evaluate(model, items, _EVAL_DIR.value)
        wiener = wiener_scores(builder, _WIENER_SNRS)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise SystemExit(f"ship_model: {e}") from None
    best_snr = max(wiener, key=lambda snr: wiener[snr]["psnr"])
    gain = scores["psnr"] - scores["input_psnr"]
    steps = sum(p["steps"] for p in phases)
    report = (f"synthetic test ({scores['images']} images), {steps} steps: blurry input "
              f"{scores['input_psnr']:.2f} dB / SSIM {scores['input_ssim']:.4f}; model "
              f"{scores['psnr']:.2f} dB / {scores['ssim']:.4f} ({gain:+.2f} dB); Wiener "
              f"(true mean radius, SNR {best_snr:g}) {wiener[best_snr]['psnr']:.2f} dB / "
              f"{wiener[best_snr]['ssim']:.4f}")
    print(report)
    if gain < _MIN_GAIN_DB.value or scores["psnr"] <= wiener[best_snr]["psnr"]:
        raise SystemExit(f"ship_model: not shipped: the gate needs +{_MIN_GAIN_DB.value} dB "
                         "over the input and a win over Wiener")
    info = {
        "label": bundled.LABEL,
        "network": bundled.NAME,
        "parameters": model.count_params(),
        "trained_on": "synthetic_defocus/" + (config.get("dataset_config") or "default")
                      + " train split (kpac-tf's rendered defocus; not DPDD)",
        "training": phases,
        "steps": steps,
        "training_wall_hours": round(sum(p["wall_hours"] for p in phases), 2),
        "settings": config,
        "synthetic_test": {k: scores[k] for k in ("images", "psnr", "ssim", "input_psnr",
                                                  "input_ssim")},
        "wiener_true_radius": dict(snr=best_snr, psnr=wiener[best_snr]["psnr"],
                                   ssim=wiener[best_snr]["ssim"]),
    }
    os.makedirs(os.path.dirname(bundled.WEIGHTS_PATH), exist_ok=True)
    checkpoints.save_tf1_npz(model, bundled.WEIGHTS_PATH)
    with atomic_output(bundled.INFO_PATH) as tmp, open(tmp, "w") as f:
        json.dump(info, f, indent=2)
    print(f"Shipped: {bundled.WEIGHTS_PATH} and {os.path.basename(bundled.INFO_PATH)}")


FLAG_GROUPS = {
    "Run and gate": [_RUN, _MIN_GAIN_DB, _NOTES],
    "Data and output": [_DATA_DIR, _EVAL_DIR],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS, required=["run"])
