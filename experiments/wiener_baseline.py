r"""Non-blind Wiener deconvolution on the synthetic test split, given each image's
true mean blur radius: the classical baseline a learned model must beat.

python -m experiments.wiener_baseline [--dataset_config=default] [--snrs=10,30,100]

Each image is deconvolved in linear light (gamma 2.2) with a disc kernel of its
mean true blur radius, for every --snrs value; the best SNR over the split is
reported with the blurry input's scores, as 8-bit images like every evaluation here.
"""

import json
import os

import numpy as np
from absl import app, flags

from kpac_tf import data, defocus, evaluation, inverse_kernels as ik, pixels
from kpac_tf.files import atomic_output

from .common_flags import (DATA_DIR as _DATA_DIR, DATASET_CONFIG as _DATASET_CONFIG,
                           LOGGING, OUTPUT as _OUTPUT, run_app, value_or)

_SNRS = flags.DEFINE_list("snrs", ["3", "10", "30", "100", "300", "1000"],
                         "Wiener SNRs to try.")


def wiener_scores(builder, snrs):
    """{snr: summary} of Wiener deconvolution with the true mean radius, per SNR."""
    scores = {snr: [] for snr in snrs}
    for example in builder.as_dataset(split="test"):
        blurry, sharp = example["blurry"].numpy(), example["sharp"].numpy()  # uint8
        unit = pixels.to_unit(blurry, np.float64)
        kernel = defocus.aperture_kernel(float(example["blur_radius"].numpy().mean()))
        for snr in snrs:
            linear = ik.wiener_deconvolve(unit ** defocus.GAMMA, kernel, snr)
            restored = np.clip(linear, 0, 1) ** (1 / defocus.GAMMA)
            scores[snr].append(evaluation.score_image(
                example["name"].numpy().decode(), pixels.to_network(blurry)[None],
                pixels.unit_to_network(restored)[None], pixels.to_network(sharp)[None]))
    return {snr: evaluation.summarize(s) for snr, s in scores.items()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    builder = data.prepare("synthetic", _DATA_DIR.value, _DATASET_CONFIG.value)
    results = wiener_scores(builder, [float(s) for s in _SNRS.value])
    best = max(results, key=lambda snr: results[snr]["psnr"])
    output = value_or(_OUTPUT, "outputs/wiener_baseline")
    os.makedirs(output, exist_ok=True)
    with atomic_output(os.path.join(output, "results.json")) as tmp, open(tmp, "w") as f:
        json.dump({"best_snr": best, "by_snr": {str(k): v for k, v in results.items()}},
                  f, indent=2)
    summary = results[best]
    print(f"synthetic test ({summary['images']} images): blurry input "
          f"{summary['input_psnr']:.2f} dB / {summary['input_ssim']:.4f}; Wiener with the "
          f"true mean radius (SNR {best:g}) {summary['psnr']:.2f} dB / {summary['ssim']:.4f}")


FLAG_GROUPS = {
    "Data": [_DATASET_CONFIG, _DATA_DIR],
    "Wiener and output": [_SNRS, _OUTPUT],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS)
