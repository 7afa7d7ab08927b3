r"""Trains a KPAC network; with no flags, the embedded default on synthetic data.

python -m experiments.train          # ~6 minutes on 2 CPU cores, no download

The paper's recipe on DPDD (Sec. 5), phase 1 then phase 2:
python -m experiments.train --preset=paper_phase1 --model=single_2level \
    --data_dir=~/tensorflow_datasets --manual_dir=~/dpdd --model_dir=runs/p1
python -m experiments.train --preset=paper_phase2 --init_from=runs/p1 \
    --vgg19_weights=vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 --model_dir=runs/p2

Re-running with the same --model_dir resumes where the run stopped.

Periodic evaluations score the validation split and keep the best checkpoint in
<model_dir>/checkpoints/best/; the test split is scored once, at the end. A run on the
synthetic set's default config (the embedded default's) ends beside the bundled model:
a table on the same test images and a before/after picture,
<model_dir>/beside_bundled/before_after.png.
"""

import os
import threading

from absl import flags, logging

from kpac_tf.data import pipelines
from kpac_tf.deploy import examples
from kpac_tf.training import cluster, loop, losses, run_folder, settings
from kpac_tf.utils import devices

from .common_flags import (LOGGING, PRESET as _PRESET, SETTING_FLAGS as _SETTING_FLAGS,
                           given_settings, is_given, run_app, setting_defaults,
                           setting_flag_groups)

# Every setting of kpac_tf.training.settings.TrainConfig has its flag, from its
# declaration (common_flags.SETTING_FLAGS); these are the app's own.
_PERCEPTUAL_WEIGHT = flags.DEFINE_float(
    "perceptual_weight", None, "The objective before --loss: MAE + this weight x "
    "perceptual (0: MAE only); the same as --loss=mae:1,perceptual:WEIGHT.")
_REQUIRE_GPU = flags.DEFINE_boolean(
    "require_gpu", False, "Refuse to start, writing nothing, unless TensorFlow sees a "
    "GPU (the message gives TensorFlow's reason).")
_DEFAULT_PRESET = "embedded_default"


def config_from_flags():
    """The `TrainConfig` the command line asks for: the preset's settings, then only
    the flags given. With a --model_dir that holds a run: what its config.json
    recorded, then the preset's if one is named, then the flags given (a setting
    that defines the run is then refused if it differs; see `settings`)."""
    given = given_settings(_SETTING_FLAGS)
    if is_given(_PERCEPTUAL_WEIGHT):
        given["perceptual_weight"] = _PERCEPTUAL_WEIGHT.value
    model_dir = given.pop("model_dir", None)
    if model_dir and run_folder.is_run(model_dir):
        return settings.resumed_config(model_dir, _PRESET.value, **given)
    preset = _PRESET.value or _DEFAULT_PRESET
    return settings.make_config(preset, model_dir=model_dir or f"outputs/{preset}", **given)


def _say_why_no_gpu():
    """Refuses at once under --require_gpu when TensorFlow sees no GPU; otherwise,
    with no GPU, logs TensorFlow's reason while training starts (asking it takes a
    fresh process a few seconds)."""
    if devices.gpus():
        return
    if _REQUIRE_GPU.value:
        raise SystemExit(f"train: no GPU visible to TensorFlow ({devices.no_gpu_reason()}"
                         "); --require_gpu refuses to train on the CPU")
    threading.Thread(target=lambda: logging.info(
        "No GPU: TensorFlow's reason: %s", devices.no_gpu_reason()), daemon=True).start()


def main(argv):
    del argv  # run_app refuses extra arguments
    _say_why_no_gpu()
    try:
        config = config_from_flags()
        logging.info("Training %s on %s into %s; objective %s", config.model,
                     config.dataset, config.model_dir,
                     losses.format_objective(config.loss))
        final = loop.train(config)
    except loop.TrainingInterrupted as e:
        logging.warning("%s", e)
        raise SystemExit(e.exit_code) from None
    except loop.TrainingAborted as e:
        logging.warning("%s; rerun the same command: the run %s", e,
                        run_folder.resume_point(config.model_dir))
        raise SystemExit(e.exit_code) from None
    except cluster.WorkerLost as e:
        # What the cluster's runtime reported, for --verbosity=1.
        logging.debug("The collective operation that failed:", exc_info=e.__cause__)
        raise SystemExit(f"train: {e}") from None
    except (ValueError, FileNotFoundError, loop.TrainingDiverged,
            run_folder.RunFolderBusy, run_folder.WriteFailed) as e:
        raise SystemExit(f"train: {e}") from None
    average = (f" (moving average of the weights, decay {config.ema_decay:g})"
               if config.ema_decay else "")
    print(f"{config.dataset} test split ({final['images']} images, scored once, at the "
          f"end), final model at step {final['step']}{average}:")
    print(f"  blurry input  PSNR {final['input_psnr']:.2f} dB  SSIM {final['input_ssim']:.4f}")
    print(f"  {config.model:<13} PSNR {final['psnr']:.2f} dB  SSIM {final['ssim']:.4f}")
    validation, best = final["validation"], final["best"]
    print(f"{config.dataset} validation split ({validation['images']} images, chooses the "
          f"best checkpoint): final model PSNR "
          f"{validation['psnr']:.2f} dB (input {validation['input_psnr']:.2f}); best "
          f"{best['psnr']:.2f} dB at step {best['step']} ({config.model_dir}/"
          f"{best['checkpoint']})")
    print(f"Model: {run_folder.path(config.model_dir, run_folder.FINAL_MODEL)}, float32 "
          f"(TensorBoard: {config.model_dir})")
    # On the synthetic set's default config (the embedded default's, and the bundled
    # model's test split): beside the bundled model.
    if (config.dataset == "synthetic" and cluster.this_worker(config.strategy).is_chief
            and pipelines.dataset_config("synthetic", config.model,
                                         config.dataset_config) == "default"):
        print_beside_the_bundled_model(config)


def print_beside_the_bundled_model(config):
    """A synthetic run's close: this run beside the bundled model and the input on
    the same test images, what a short run is for, a picture, and the demo."""
    shown = examples.beside_the_bundled_model(
        config.model_dir, config.data_dir, config.dataset_config,
        os.path.join(config.model_dir, "beside_bundled"))
    print(f"Beside the bundled model, on the same {shown['images']} test images:")
    for label, psnr, ssim in shown["rows"]:
        steps = {"this run": f" ({config.steps:,} steps)",
                 shown["rows"][2][0]: f" ({shown['bundled_steps']:,} steps)"}.get(label, "")
        print(f"  {label + steps:<37} PSNR {psnr:.2f} dB  SSIM {ssim:.4f}")
    if config.steps < 10_000:
        print(f"{config.steps} steps show the pipeline working end to end (data, training, "
              "checkpoints, scoring) in minutes on a CPU; a useful model takes tens of "
              "thousands (the bundled one, docs/bundled_model.md; the paper's recipe: "
              "--preset=paper_phase1 on DPDD).")
    print(f"Before/after of {shown['picture_of']} (blurry | this run | bundled model | "
          f"sharp): {shown['picture']}")
    print('See it on your own photos: pip install -e ".[demo]" && python -m experiments.demo')


FLAG_GROUPS = setting_flag_groups()
FLAG_GROUPS[settings.RUN].insert(0, _PRESET)
FLAG_GROUPS[settings.OPTIMISATION].append(_PERCEPTUAL_WEIGHT)
FLAG_GROUPS[settings.HARDWARE].append(_REQUIRE_GPU)
FLAG_GROUPS["Logging"] = LOGGING
# What an unset setting flag stands for in a new run without --preset.
FLAG_DEFAULTS = setting_defaults(_DEFAULT_PRESET)


def run():
    """Console-script entry point (`kpac-train`)."""
    run_app(main)


if __name__ == "__main__":
    run()
