"""The gate that turns a synthetic-defocus training run into the bundled model.

`assess(run_dir, ...)` takes the run's checkpoint chosen on validation
(`checkpoints/best`; the run trains one of `bundled.NETWORKS` as built, on synthetic
data) and scores it once on each of:

- the synthetic test split (photographs never trained on, never used for selection),
  as `experiments.evaluate` does, beside Wiener deconvolution given each image's true
  mean blur radius (`evaluation.wiener`);
- held-out defocus and in-focus / soft photographs (`evaluation.held_out.check`).

`missed_targets` names each target it misses; `write_bundled` writes the weights
(`bundled.WEIGHTS_PATH`, the authors' format) and their provenance
(`bundled.INFO_PATH`: network, phases, steps, seeds, wall time, every score). For a run
trained with `ema_decay`, the checkpoint's model is the moving average of the weights,
so that is what is scored and shipped.
"""

import dataclasses
import os

from kpac_tf.checkpoints.tf1_npz import save_tf1_npz
from kpac_tf.data import pipelines
from kpac_tf.deploy import bundled
from kpac_tf.deploy.loading import load_deblurrer
from kpac_tf.evaluation import held_out, items, scoring, wiener
from kpac_tf.training import run_folder
from kpac_tf.utils.files import atomic_output, write_json


@dataclasses.dataclass(frozen=True)
class Targets:
    """What a bundled model must reach.

    Attributes:
        min_gain_db: float, mean PSNR gain over the blurry input on the synthetic test
            split (and a win over the Wiener baseline).
        min_held_out_gain_db: float, mean PSNR gain on the held-out defocus renders
            (and a gain on every one).
        min_in_focus_psnr: float, dB, PSNR of output to input on every in-focus photo.
    """

    min_gain_db: float = 2.0
    min_held_out_gain_db: float = 1.0
    min_in_focus_psnr: float = 40.0


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


def training_phases(run_dir, step=None):
    """[{command, steps, data_seed, learning_rate, wall_hours, dataset}] of a run and,
    following --init_from to earlier run folders, the runs it continued; first phase
    first. `steps` is the step whose weights were used: the next phase's starting
    point, or `step`. `dataset` ("name/config/version") is None for a run whose
    metrics.json does not record it (runs before it did, or unfinished)."""
    phases = []
    while run_dir:
        config = run_folder.read_config(run_dir)
        metrics = run_folder.read_json(run_dir, run_folder.METRICS) or {}
        phases.insert(0, dict(
            command=training_command(config),
            steps=step if step is not None else run_folder.latest_step(run_dir),
            data_seed=config["seed"], learning_rate=config["learning_rate"],
            wall_hours=round(run_folder.training_wall_seconds(run_dir) / 3600, 2),
            dataset=metrics.get("dataset")))
        run_dir, step = (run_folder.run_of(config["init_from"]) if config.get("init_from")
                         else (None, None))
    return phases


def assess(run_dir, data_dir=None, eval_dir="outputs/ship_model"):
    """Scores a run's checkpoint chosen on validation against every target.

    Args:
        run_dir: str, a training run folder (`experiments.train --model_dir`).
        data_dir: str or None, TFDS data folder of the synthetic dataset.
        eval_dir: str, where the test evaluation's images and metrics go.

    Returns:
        dict: `config`, `best` (best.json), `phases` (`training_phases`), `test`
        (`scoring.evaluate`'s summary), `wiener` ({snr: summary}), `held`
        (`held_out.check`), `model` (the keras.Model scored).

    Raises:
        ValueError: the run is not one the bundled model can be.
        FileNotFoundError: no config.json, or no checkpoint chosen on validation.
    """
    config = run_folder.read_config(run_dir)
    if config is None:
        raise FileNotFoundError(f"{run_folder.path(run_dir, run_folder.CONFIG)}: no such "
                                "file; give a run folder of experiments.train")
    network = config["model"]
    if (network not in bundled.NETWORKS or config["dataset"] != "synthetic"
            or config.get("model_overrides")):
        raise ValueError(f"{run_dir}: the bundled model is one of {bundled.NETWORKS} "
                         f"as built, trained on synthetic data; this run is {network} "
                         f"on {config['dataset']} {config.get('model_overrides')}")
    best_dir = run_folder.path(run_dir, run_folder.BEST)
    best = run_folder.read_json(best_dir, run_folder.BEST_RECORD)
    if best is None:
        raise FileNotFoundError(f"{best_dir}/{run_folder.BEST_RECORD}: the run has no "
                                "checkpoint chosen on validation (train with "
                                "experiments.train --eval_every)")
    deblurrer = load_deblurrer(best_dir)
    phases = training_phases(run_dir, best["step"])
    builder = pipelines.prepare("synthetic", data_dir, config.get("dataset_config"),
                                config.get("manual_dir"))
    test_items = items.dataset_items("synthetic", config.get("dataset_config"), data_dir,
                                     None, "test", network)
    test = scoring.evaluate(deblurrer, test_items, eval_dir)
    return dict(config=config, best=best, phases=phases, test=test,
                wiener=wiener.wiener_scores(builder, wiener.SNRS),
                held=held_out.check(deblurrer), model=deblurrer.keras_model,
                run_dir=run_dir)


def report(assessment):
    """What `assess` measured, as printed lines (str)."""
    best, test, scores = assessment["best"], assessment["test"], assessment["wiener"]
    snr = wiener.best_snr(scores)
    gain = test["psnr"] - test["input_psnr"]
    steps = sum(p["steps"] for p in assessment["phases"])
    return "\n".join([
        f"chosen on validation: step {best['step']} of "
        f"{os.path.basename(assessment['run_dir'])}, {best['psnr']:.2f} dB (input "
        f"{best['input_psnr']:.2f})",
        f"synthetic test ({test['images']} images), {steps} steps: blurry input "
        f"{test['input_psnr']:.2f} dB / SSIM {test['input_ssim']:.4f}; model "
        f"{test['psnr']:.2f} dB / {test['ssim']:.4f} ({gain:+.2f} dB); Wiener "
        f"(true mean radius, SNR {snr:g}) {scores[snr]['psnr']:.2f} dB / "
        f"{scores[snr]['ssim']:.4f}",
        held_out.format_report(assessment["held"])])


def missed_targets(test, wiener_best, held, targets):
    """The targets a model misses (list of str; empty: ship it). A NaN score misses.

    Args:
        test: `scoring.evaluate`'s summary on the synthetic test split.
        wiener_best: {"psnr", ...} of the best Wiener baseline on that split.
        held: `held_out.check`'s result.
        targets: `Targets`.
    """
    missed = []
    gain = test["psnr"] - test["input_psnr"]
    if not gain >= targets.min_gain_db:
        missed.append(f"synthetic test gain {gain:+.2f} dB < +{targets.min_gain_db} dB")
    if not test["psnr"] > wiener_best["psnr"]:
        missed.append(f"synthetic test {test['psnr']:.2f} dB <= Wiener "
                      f"{wiener_best['psnr']:.2f} dB")
    if not held["mean_gain"] >= targets.min_held_out_gain_db:
        missed.append(f"held-out mean gain {held['mean_gain']:+.2f} dB < "
                      f"+{targets.min_held_out_gain_db} dB")
    missed += [f"held-out {row['name']}: no gain ({row['gain']:+.2f} dB)"
               for row in held["defocus"] if not row["gain"] > 0]
    missed += [f"in-focus {row['name']}: output {row['psnr']:.2f} dB from the input < "
               f"{targets.min_in_focus_psnr} dB" for row in held["in_focus"]
               if not row["psnr"] >= targets.min_in_focus_psnr]
    return missed


def assessment_misses(assessment, targets):
    """`missed_targets` of an `assess` result."""
    scores = assessment["wiener"]
    return missed_targets(assessment["test"], scores[wiener.best_snr(scores)],
                          assessment["held"], targets)


def write_bundled(assessment, targets, notes=None):
    """Writes the assessed model as the bundled model: weights and provenance, both
    complete before either replaces the shipped one. Returns the weights' path."""
    config, model, phases = assessment["config"], assessment["model"], assessment["phases"]
    test, scores = assessment["test"], assessment["wiener"]
    snr = wiener.best_snr(scores)
    network = config["model"]
    info = {
        "label": bundled.label(network),
        "network": network,
        "parameters": model.count_params(),
        "trained_on": "synthetic_defocus/" + (config.get("dataset_config") or "default")
                      + " train split (kpac-tf's rendered defocus; not DPDD)",
        "training": phases,
        "steps": sum(p["steps"] for p in phases),
        "training_wall_hours": round(sum(p["wall_hours"] for p in phases), 2),
        "settings": config,
        "chosen_on_validation": assessment["best"],
        "synthetic_test": {k: test[k] for k in ("images", "psnr", "ssim", "input_psnr",
                                                "input_ssim")},
        "held_out": assessment["held"],
        "targets": dataclasses.asdict(targets),
        "wiener_true_radius": dict(snr=snr, psnr=scores[snr]["psnr"],
                                   ssim=scores[snr]["ssim"]),
    }
    if notes:
        info["notes"] = notes
    os.makedirs(os.path.dirname(bundled.WEIGHTS_PATH), exist_ok=True)
    with atomic_output(bundled.WEIGHTS_PATH) as weights:  # weights, then provenance
        save_tf1_npz(model, weights)
        write_json(bundled.INFO_PATH, info, indent=2)
    return bundled.WEIGHTS_PATH
