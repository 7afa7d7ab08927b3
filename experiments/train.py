r"""Trains a KPAC network; with no flags, the embedded default on synthetic data.

python -m experiments.train          # ~4 minutes on 2 CPU cores, no download

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
from kpac_tf.models.networks import BLOCK_TYPES
from kpac_tf.training import cluster, loop, losses, run_folder, settings
from kpac_tf.utils import devices

from .common_flags import (BATCH_SIZE as _BATCH_SIZE, CHANNELS as _CHANNELS,
                           CROP_SIZE as _CROP_SIZE, DATA_DIR as _DATA_DIR,
                           DATASET as _DATASET, DATASET_CONFIG as _DATASET_CONFIG,
                           EVAL_IMAGES as _EVAL_IMAGES, LEARNING_RATE as _LEARNING_RATE,
                           LOGGING, MANUAL_DIR as _MANUAL_DIR, MODEL as _MODEL,
                           PRESET as _PRESET, SEED as _SEED, STEPS as _STEPS,
                           TO_8BIT as _TO_8BIT, run_app, value_or)

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Output folder, local or gs:// and the like (default "
    "outputs/<preset>); reuse resumes.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Local folder for the training split decoded once to 8-bit "
    "(default: beside a local --data_dir's dataset, else the system's temporary folder).")
_FLIPS = flags.DEFINE_boolean("flips", None, "Random flips (the paper uses none).")
_LOSS = flags.DEFINE_string(
    "loss", None, "The objective, NAME:WEIGHT,...: a weighted sum of mae, charbonnier "
    "and perceptual (VGG19 block4_conv4; needs --vgg19_weights) and any loss "
    "registered in kpac_tf.training.losses (default mae:1; paper phase 2: "
    "mae:1,perceptual:0.0007).")
_PERCEPTUAL_WEIGHT = flags.DEFINE_float(
    "perceptual_weight", None, "The objective before --loss: MAE + this weight x "
    "perceptual (0: MAE only); the same as --loss=mae:1,perceptual:WEIGHT.")
_VGG19_WEIGHTS = flags.DEFINE_string(
    "vgg19_weights", None, "Local VGG19 ImageNet no-top weights file (Keras' "
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5).")
_INIT_FROM = flags.DEFINE_string("init_from", None, "Starting weights: .keras, an "
                                 "authors' .npz, or a training run folder.")
_RESUME_FROM = flags.DEFINE_integer(
    "resume_from", None, "Resume from the run's checkpoint of this step instead of the "
    "newest (when the newest is damaged: the message names the step).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", cluster.STRATEGIES,
                              "tf.distribute strategy (multi_worker reads TF_CONFIG).")
_TRAINING_PRECISION = flags.DEFINE_enum(
    "training_precision", "float32", settings.TRAINING_PRECISIONS,
    "Keras dtype policy of training: float32; mixed_bfloat16 (bfloat16 compute, "
    "float32 weights), for CPUs with AVX512-BF16 / AMX "
    "(speed: benchmarks/training_precision.py); mixed_float16 (float16 compute, loss "
    "scaling) where the kernels have float16 gradients of dilated convolutions (GPUs, "
    "CPUs with AVX512-FP16; elsewhere the first step says so). Evaluation and the saved model are float32 either way. A run keeps "
    "the precision it started with.")
_EMA_DECAY = flags.DEFINE_float(
    "ema_decay", 0.0, "Exponential moving average of the weights after every step "
    "(0: off; e.g. 0.999 for long runs, 0.99 for a few hundred steps: the average "
    "starts at the initial weights, which keep a share of decay ** steps). When on, "
    "the average is what is evaluated, kept as best and saved as the final model.")
_DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic", True, "TensorFlow's op determinism, so a run and its resumption "
    "give the same weights on GPUs too (CPUs are deterministic either way); off, a GPU "
    "may pick faster nondeterministic convolution gradients.")
_REQUIRE_GPU = flags.DEFINE_boolean(
    "require_gpu", False, "Refuse to start, writing nothing, unless TensorFlow sees a "
    "GPU (the message gives TensorFlow's reason).")
_STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", None, "Steps run inside one compiled loop before Python reads the "
    "loss and the workers agree on stopping (default 1). Larger keeps a fast GPU busy; "
    "logs, evaluations and saves still happen on their exact steps, SIGTERM waits for "
    "the loop to end, and the weights are the same for any value.")
_LOG_EVERY = flags.DEFINE_integer("log_every", None, "Steps between progress logs.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", None, "Steps between evaluations.")
_SAVE_EVERY = flags.DEFINE_integer("save_every", None, "Steps between checkpoints.")
# Ablation axes (paper Tables 1-3); unset means the authors' network.
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", None, "KPAC (or residual) blocks.")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", None, "Shared atrous kernel size.")
_NUM_DILATIONS = flags.DEFINE_integer("num_dilations", None, "Atrous rates 1..n.")
_SHARE_WEIGHTS = flags.DEFINE_boolean("share_weights", None, "One kernel for all rates.")
_SCALE_ATTENTION = flags.DEFINE_boolean("scale_attention", None, "Scale attention.")
_SHAPE_ATTENTION = flags.DEFINE_boolean("shape_attention", None, "Shape attention.")
_BLOCK_TYPE = flags.DEFINE_enum("block_type", None, BLOCK_TYPES,
                                "kpac, or residual (Table 2 baseline).")


# The TrainConfig field each flag sets (the network's own flags: NETWORK_FLAGS).
FIELD_FLAGS = dict(
    dataset=_DATASET, to_8bit=_TO_8BIT, dataset_config=_DATASET_CONFIG,
    data_dir=_DATA_DIR, cache_dir=_CACHE_DIR, manual_dir=_MANUAL_DIR, steps=_STEPS, batch_size=_BATCH_SIZE,
    crop_size=_CROP_SIZE, flips=_FLIPS, learning_rate=_LEARNING_RATE,
    loss=_LOSS, perceptual_weight=_PERCEPTUAL_WEIGHT, vgg19_weights=_VGG19_WEIGHTS,
    init_from=_INIT_FROM, resume_from=_RESUME_FROM, strategy=_STRATEGY,
    precision=_TRAINING_PRECISION, deterministic=_DETERMINISTIC, ema_decay=_EMA_DECAY,
    seed=_SEED,
    log_every=_LOG_EVERY, eval_every=_EVAL_EVERY, save_every=_SAVE_EVERY,
    steps_per_loop=_STEPS_PER_LOOP, eval_images=_EVAL_IMAGES)
NETWORK_FLAGS = dict(
    num_blocks=_NUM_BLOCKS, kernel_size=_KERNEL_SIZE, num_dilations=_NUM_DILATIONS,
    share_weights=_SHARE_WEIGHTS, scale_attention=_SCALE_ATTENTION,
    shape_attention=_SHAPE_ATTENTION, block_type=_BLOCK_TYPE, channels=_CHANNELS)


def _given(holder):
    """True if the command line (or a test's flagsaver) set the flag."""
    return not flags.FLAGS[holder.name].using_default_value


def config_from_flags():
    """The `TrainConfig` the command line asks for. With a --model_dir that holds a
    run, what its config.json recorded, then what the command line gives (a setting
    that defines the run is then refused if it differs; see `settings`)."""
    overrides = {name: holder.value for name, holder in NETWORK_FLAGS.items()
                 if holder.value is not None}
    recorded = settings.recorded_settings(_MODEL_DIR.value) if _MODEL_DIR.value else None
    if recorded is not None:
        # Where the folder is now, and the newest checkpoint unless asked for another.
        given = dict(model_dir=_MODEL_DIR.value, resume_from=_RESUME_FROM.value)
        given.update({field: holder.value for field, holder in FIELD_FLAGS.items()
                      if _given(holder)})
        if _given(_MODEL):
            given["model"] = _MODEL.value
        if overrides:
            given["model_overrides"] = dict(recorded["model_overrides"], **overrides)
        preset = settings.PRESETS[_PRESET.value] if _PRESET.value else {}
        merged = {**recorded, **preset, **given}
        if "perceptual_weight" in given and "loss" not in given:
            del merged["loss"]  # the objective given the old way replaces the record's
        return settings.make_config(None, **merged)
    # A new run: the preset, then only the flags given (a flag's default never
    # overrides the preset).
    preset = value_or(_PRESET, "embedded_default")
    given = {field: holder.value for field, holder in FIELD_FLAGS.items() if _given(holder)}
    if _given(_MODEL):
        given["model"] = _MODEL.value
    return settings.make_config(
        preset, model_dir=_MODEL_DIR.value or f"outputs/{preset}",
        model_overrides=overrides, **given)


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


FLAG_GROUPS = {
    "Recipe and run folder": [_PRESET, _MODEL_DIR, _INIT_FROM, _RESUME_FROM, _SEED],
    "Network (unset: the authors' network)": [
        _MODEL, _CHANNELS, _NUM_BLOCKS, _KERNEL_SIZE, _NUM_DILATIONS, _SHARE_WEIGHTS,
        _SCALE_ATTENTION, _SHAPE_ATTENTION, _BLOCK_TYPE],
    "Data": [_DATASET, _DATASET_CONFIG, _DATA_DIR, _CACHE_DIR, _MANUAL_DIR, _TO_8BIT],
    "Optimisation (unset: the preset's)": [
        _STEPS, _BATCH_SIZE, _CROP_SIZE, _FLIPS, _LEARNING_RATE, _LOSS, _PERCEPTUAL_WEIGHT,
        _VGG19_WEIGHTS],
    "Hardware and precision": [_STRATEGY, _REQUIRE_GPU, _TRAINING_PRECISION, _DETERMINISTIC,
                               _STEPS_PER_LOOP],
    "Weight averaging": [_EMA_DECAY],
    "Progress, evaluation and checkpoints": [
        _LOG_EVERY, _EVAL_EVERY, _EVAL_IMAGES, _SAVE_EVERY],
    "Logging": LOGGING,
}


def run():
    """Console-script entry point (`kpac-train`)."""
    run_app(main, FLAG_GROUPS)


if __name__ == "__main__":
    run()
