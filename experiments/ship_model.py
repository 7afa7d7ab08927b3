r"""Turns a finished synthetic-defocus training run into the bundled model, if it
meets every target.

python -m experiments.ship_model --run=/root/kpac_runs/v2_c

Takes the run's best checkpoint on the validation split (`checkpoints/best`, chosen
during training; the run trains single_2level or single_3level as built, on synthetic
data), then scores it once on each of:

- the synthetic test split (photographs never trained on, never used for selection),
  exactly as `experiments.evaluate` does, beside Wiener deconvolution with each image's
  true mean blur radius (`experiments.wiener_baseline`);
- held-out defocus (`kpac_tf.held_out`): matplotlib's and scikit-learn's sample
  photographs, defocused by a second renderer unlike the training one;
- photographs in focus everywhere (`held_out.IN_FOCUS`), which must come back
  unchanged (PSNR of output to input); soft photographs (`held_out.SOFT`) are scored
  the same way and reported.

Only when every target holds (--min_gain_db over the blurry test input, a win over
Wiener, --min_held_out_gain_db on average and a gain on every held-out image,
--min_in_focus_psnr on every in-focus photograph) does it write
`kpac_tf/weights/synthetic.npz` (the authors' format) and its provenance
`synthetic.json` (network, phases, steps, seeds, training wall time, every score);
otherwise it prints the measured numbers, names each missed target and writes
nothing. For a run trained with --ema_decay, the checkpoint's model is the moving
average of the weights, so that is what is scored and shipped.
"""

import glob
import json
import os

import tensorflow as tf
from absl import app, flags

from kpac_tf import bundled, checkpoints, data, evaluation, held_out, inference
from kpac_tf.files import atomic_output

from .common_flags import DATA_DIR as _DATA_DIR, LOGGING, run_app
from .evaluate import dataset_items
from .wiener_baseline import wiener_scores

_RUN = flags.DEFINE_string("run", None, "Training run folder (experiments.train --model_dir).")
_MIN_GAIN_DB = flags.DEFINE_float("min_gain_db", 2.0, "Required mean PSNR gain over "
                                  "the blurry input on the synthetic test split.")
_MIN_HELD_OUT_GAIN_DB = flags.DEFINE_float(
    "min_held_out_gain_db", 1.0, "Required mean PSNR gain on the held-out defocus renders "
    "(and a gain on every one).")
_MIN_IN_FOCUS_PSNR = flags.DEFINE_float(
    "min_in_focus_psnr", 40.0, "Required PSNR of output to input on every in-focus "
    "photograph.")
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
    flags_used = ["model_dir", "init_from", "model", "dataset", "dataset_config",
                  "manual_dir", "steps", "learning_rate", "crop_size", "batch_size", "seed"]
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


def _read_json(folder, name):
    """The contents of `folder/name`, or None if there is no such file."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _run_folder(path):
    """(run folder, step or None) of an --init_from: a run folder, its `checkpoints/`
    or its final `model.keras` / `weights_tf1.npz` (its latest step), or its
    `checkpoints/best` (the best step); (None, None) for anything else."""
    path = os.path.normpath(path)
    best = _read_json(path, "best.json")
    if best is not None:
        return os.path.dirname(os.path.dirname(path)), best["step"]
    if os.path.basename(path) in ("model.keras", "weights_tf1.npz", "checkpoints"):
        path = os.path.dirname(path) or "."
    if os.path.isfile(os.path.join(path, "config.json")):
        return path, None
    return None, None


def training_phases(run_dir, step=None):
    """[{command, steps, data_seed, learning_rate, wall_hours, dataset}] of a run and,
    following --init_from to earlier run folders, the runs it continued; first phase
    first. `steps` is the step whose weights were used: the next phase's starting
    point, or `step`. `dataset` ("name/config/version") is None for a run whose
    metrics.json does not record it (runs before it did, or unfinished)."""
    phases = []
    while run_dir:
        config = _read_json(run_dir, "config.json")
        metrics = _read_json(run_dir, "metrics.json") or {}
        phases.insert(0, dict(command=training_command(config),
                              steps=step if step is not None else latest_step(run_dir),
                              data_seed=config["seed"], learning_rate=config["learning_rate"],
                              wall_hours=round(training_wall_seconds(run_dir) / 3600, 2),
                              dataset=metrics.get("dataset")))
        run_dir, step = _run_folder(config["init_from"]) if config.get("init_from") \
            else (None, None)
    return phases


def missed_targets(test, wiener, held):
    """The targets a model misses (list of str; empty: ship it). A NaN score misses.

    Args:
        test: `evaluation.evaluate`'s summary on the synthetic test split.
        wiener: {"psnr", ...} of the best Wiener baseline on that split.
        held: `held_out.check`'s result.
    """
    missed = []
    gain = test["psnr"] - test["input_psnr"]
    if not gain >= _MIN_GAIN_DB.value:
        missed.append(f"synthetic test gain {gain:+.2f} dB < +{_MIN_GAIN_DB.value} dB")
    if not test["psnr"] > wiener["psnr"]:
        missed.append(f"synthetic test {test['psnr']:.2f} dB <= Wiener {wiener['psnr']:.2f} dB")
    if not held["mean_gain"] >= _MIN_HELD_OUT_GAIN_DB.value:
        missed.append(f"held-out mean gain {held['mean_gain']:+.2f} dB < "
                      f"+{_MIN_HELD_OUT_GAIN_DB.value} dB")
    missed += [f"held-out {row['name']}: no gain ({row['gain']:+.2f} dB)"
               for row in held["defocus"] if not row["gain"] > 0]
    missed += [f"in-focus {row['name']}: output {row['psnr']:.2f} dB from the input < "
               f"{_MIN_IN_FOCUS_PSNR.value} dB" for row in held["in_focus"]
               if not row["psnr"] >= _MIN_IN_FOCUS_PSNR.value]
    return missed


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run_dir = _RUN.value
    best_dir = os.path.join(run_dir, "checkpoints", "best")
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        network = config["model"]
        if (network not in bundled.NETWORKS or config["dataset"] != "synthetic"
                or config.get("model_overrides")):
            raise ValueError(f"{run_dir}: the bundled model is one of {bundled.NETWORKS} "
                             f"as built, trained on synthetic data; this run is {network} "
                             f"on {config['dataset']} {config.get('model_overrides')}")
        best = _read_json(best_dir, "best.json")
        if best is None:
            raise FileNotFoundError(f"{best_dir}/best.json: the run has no checkpoint "
                                    "chosen on validation (train with --eval_every)")
        deblurrer = inference.load_deblurrer(best_dir)
        model = deblurrer.keras_model
        phases = training_phases(run_dir, best["step"])
        builder = data.prepare("synthetic", _DATA_DIR.value, config.get("dataset_config"),
                               config.get("manual_dir"))
        items = dataset_items("synthetic", config.get("dataset_config"), _DATA_DIR.value,
                              None, "test", network)
        scores = evaluation.evaluate(model, items, _EVAL_DIR.value)
        wiener = wiener_scores(builder, _WIENER_SNRS)
        held = held_out.check(deblurrer)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise SystemExit(f"ship_model: {e}") from None
    best_snr = max(wiener, key=lambda snr: wiener[snr]["psnr"])
    gain = scores["psnr"] - scores["input_psnr"]
    steps = sum(p["steps"] for p in phases)
    print(f"chosen on validation: step {best['step']} of {os.path.basename(run_dir)}, "
          f"{best['psnr']:.2f} dB (input {best['input_psnr']:.2f})")
    print(f"synthetic test ({scores['images']} images), {steps} steps: blurry input "
          f"{scores['input_psnr']:.2f} dB / SSIM {scores['input_ssim']:.4f}; model "
          f"{scores['psnr']:.2f} dB / {scores['ssim']:.4f} ({gain:+.2f} dB); Wiener "
          f"(true mean radius, SNR {best_snr:g}) {wiener[best_snr]['psnr']:.2f} dB / "
          f"{wiener[best_snr]['ssim']:.4f}")
    print(held_out.format_report(held))
    missed = missed_targets(scores, wiener[best_snr], held)
    if missed:
        raise SystemExit("ship_model: not shipped; missed:\n  " + "\n  ".join(missed))
    info = {
        "label": bundled.label(network),
        "network": network,
        "parameters": model.count_params(),
        "trained_on": "synthetic_defocus/" + (config.get("dataset_config") or "default")
                      + " train split (kpac-tf's rendered defocus; not DPDD)",
        "training": phases,
        "steps": steps,
        "training_wall_hours": round(sum(p["wall_hours"] for p in phases), 2),
        "settings": config,
        "chosen_on_validation": best,
        "synthetic_test": {k: scores[k] for k in ("images", "psnr", "ssim", "input_psnr",
                                                  "input_ssim")},
        "held_out": held,
        "targets": dict(min_gain_db=_MIN_GAIN_DB.value,
                        min_held_out_gain_db=_MIN_HELD_OUT_GAIN_DB.value,
                        min_in_focus_psnr=_MIN_IN_FOCUS_PSNR.value),
        "wiener_true_radius": dict(snr=best_snr, psnr=wiener[best_snr]["psnr"],
                                   ssim=wiener[best_snr]["ssim"]),
    }
    if _NOTES.value:
        info["notes"] = _NOTES.value
    os.makedirs(os.path.dirname(bundled.WEIGHTS_PATH), exist_ok=True)
    text = json.dumps(info, indent=2)
    # Both files complete before either replaces the shipped one.
    with atomic_output(bundled.WEIGHTS_PATH) as weights, \
            atomic_output(bundled.INFO_PATH) as provenance:
        checkpoints.save_tf1_npz(model, weights)
        with open(provenance, "w") as f:
            f.write(text)
    print(f"Shipped: {bundled.WEIGHTS_PATH} and {os.path.basename(bundled.INFO_PATH)}")


FLAG_GROUPS = {
    "Run and targets": [_RUN, _MIN_GAIN_DB, _MIN_HELD_OUT_GAIN_DB, _MIN_IN_FOCUS_PSNR,
                        _NOTES],
    "Data and output": [_DATA_DIR, _EVAL_DIR],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS, required=["run"])
