r"""Non-blind Wiener deconvolution on the synthetic test split, given each image's
true mean blur radius: the classical baseline a learned model must beat.

python -m experiments.wiener_baseline [--dataset_config=default] [--snrs=10,30,100]

Each image is deconvolved in linear light (gamma 2.2) with a disc kernel of its
mean true blur radius, for every --snrs value; the best SNR over the split is
reported with the blurry input's scores, as 8-bit images like every evaluation here.
"""

import os

from absl import flags

from kpac_tf.data import pipelines
from kpac_tf.evaluation import wiener
from kpac_tf.utils.files import write_json

from .common_flags import (DATA_DIR as _DATA_DIR, DATASET_CONFIG as _DATASET_CONFIG,
                           LOGGING, OUTPUT as _OUTPUT, run_app, value_or)

_SNRS = flags.DEFINE_list("snrs", [f"{snr:g}" for snr in wiener.SNRS],
                          "Wiener SNRs to try.")

_DEFAULT_OUTPUT = "outputs/wiener_baseline"


def main(argv):
    del argv  # run_app refuses extra arguments
    builder = pipelines.prepare("synthetic", _DATA_DIR.value, _DATASET_CONFIG.value)
    results = wiener.wiener_scores(builder, [float(s) for s in _SNRS.value])
    best = wiener.best_snr(results)
    output = value_or(_OUTPUT, _DEFAULT_OUTPUT)
    os.makedirs(output, exist_ok=True)
    write_json(os.path.join(output, "results.json"),
               {"best_snr": best, "by_snr": {str(k): v for k, v in results.items()}},
               indent=2)
    summary = results[best]
    print(f"synthetic test ({summary['images']} images): blurry input "
          f"{summary['input_psnr']:.2f} dB / {summary['input_ssim']:.4f}; Wiener with the "
          f"true mean radius (SNR {best:g}) {summary['psnr']:.2f} dB / {summary['ssim']:.4f}")


FLAG_GROUPS = {
    "Data": [_DATASET_CONFIG, _DATA_DIR],
    "Wiener and output": [_SNRS, _OUTPUT],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_OUTPUT.name: _DEFAULT_OUTPUT}

if __name__ == "__main__":
    run_app(main)
