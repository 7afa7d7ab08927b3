r"""Turns a finished synthetic-defocus training run into the bundled model, if it
meets every target.

python -m experiments.ship_model --run=/root/kpac_runs/v2_c

Takes the run's best checkpoint on the validation split (`checkpoints/best`, chosen
during training; the run trains single_2level or single_3level as built, on synthetic
data), then scores it once on each of:

- the synthetic test split (photographs never trained on, never used for selection),
  exactly as `experiments.evaluate` does, beside Wiener deconvolution with each image's
  true mean blur radius (`kpac_tf.evaluation.wiener`);
- held-out defocus (`kpac_tf.evaluation.held_out`): matplotlib's and scikit-learn's sample
  photographs, defocused by a second renderer unlike the training one;
- photographs in focus everywhere (`held_out.IN_FOCUS`), which must come back
  unchanged (PSNR of output to input); soft photographs (`held_out.SOFT`) are scored
  the same way and reported.

Only when every target holds (--min_gain_db over the blurry test input, a win over
Wiener, --min_held_out_gain_db on average and a gain on every held-out image,
--min_in_focus_psnr on every in-focus photograph) does it write
`kpac_tf/deploy/weights/synthetic.npz` (the authors' format) and its provenance
`synthetic.json` (network, phases, steps, seeds, training wall time, every score);
otherwise it prints the measured numbers, names each missed target and writes
nothing. For a run trained with --ema_decay, the checkpoint's model is the moving
average of the weights, so that is what is scored and shipped.
"""

import os

from absl import flags

from kpac_tf.deploy import bundled, shipping

from .common_flags import DATA_DIR as _DATA_DIR, LOGGING, run_app

_DEFAULTS = shipping.Targets()
_RUN = flags.DEFINE_string("run", None, "Training run folder (experiments.train --model_dir).")
_MIN_GAIN_DB = flags.DEFINE_float("min_gain_db", _DEFAULTS.min_gain_db, "Required mean PSNR "
                                  "gain over the blurry input on the synthetic test split.")
_MIN_HELD_OUT_GAIN_DB = flags.DEFINE_float(
    "min_held_out_gain_db", _DEFAULTS.min_held_out_gain_db, "Required mean PSNR gain on "
    "the held-out defocus renders (and a gain on every one).")
_MIN_IN_FOCUS_PSNR = flags.DEFINE_float(
    "min_in_focus_psnr", _DEFAULTS.min_in_focus_psnr, "Required PSNR of output to input "
    "on every in-focus photograph.")
_EVAL_DIR = flags.DEFINE_string("eval_dir", "outputs/ship_model",
                                "Where the evaluation's images and metrics go.")
_NOTES = flags.DEFINE_string("notes", None, "Anything the run folders do not record "
                             "(e.g. a dataset version that changed between phases).")


def main(argv):
    del argv  # run_app refuses extra arguments
    targets = shipping.Targets(_MIN_GAIN_DB.value, _MIN_HELD_OUT_GAIN_DB.value,
                               _MIN_IN_FOCUS_PSNR.value)
    try:
        assessment = shipping.assess(_RUN.value, _DATA_DIR.value, _EVAL_DIR.value)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise SystemExit(f"ship_model: {e}") from None
    print(shipping.report(assessment))
    missed = shipping.assessment_misses(assessment, targets)
    if missed:
        raise SystemExit("ship_model: not shipped; missed:\n  " + "\n  ".join(missed))
    shipping.write_bundled(assessment, targets, _NOTES.value)
    print(f"Shipped: {bundled.WEIGHTS_PATH} and {os.path.basename(bundled.INFO_PATH)}")


FLAG_GROUPS = {
    "Run and targets": [_RUN, _MIN_GAIN_DB, _MIN_HELD_OUT_GAIN_DB, _MIN_IN_FOCUS_PSNR,
                        _NOTES],
    "Data and output": [_DATA_DIR, _EVAL_DIR],
    "Logging": LOGGING,
}
REQUIRED_FLAGS = ["run"]

if __name__ == "__main__":
    run_app(main)
