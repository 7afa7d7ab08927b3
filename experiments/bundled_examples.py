r"""Before/after crops of two real photographs for the README, by the bundled model.

python -m experiments.bundled_examples [--checkpoint=RUN_OR_FILE] [--output=docs/images]

scikit-image's `chelsea` and `coffee` photographs (in the synthetic set's test
sources, never trained on) are given defocus that grows from the top of the frame
(in focus) to the bottom (blur radius --max_radius pixels), rendered in linear light
with `kpac_tf.defocus` plus sensor noise, then deblurred. For each photo it writes
`<output>/bundled_<photo>.png`: a crop from the blurred part, blurry | deblurred |
sharp, each scaled x2; and prints the whole-photo PSNR / SSIM of blurry and
deblurred against the sharp photo (also in `<output>/bundled_examples.json`).
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags

from kpac_tf import bundled, defocus, evaluation, images, inference, pixels
from kpac_tf.data import to_unit_range
from kpac_tf.files import atomic_output

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, run_app, value_or)

_MAX_RADIUS = flags.DEFINE_float("max_radius", 4.0, "Blur radius at the bottom (pixels).")
PHOTOS = ("chelsea", "coffee")
CROP = 128


def defocused(photo, max_radius, seed=0):
    """(blurry, sharp) uint8 (h, w, 3): defocus from 0 (top) to max_radius (bottom)."""
    from skimage import data

    sharp = getattr(data, photo)()[..., :3]
    blurry = defocus.graded_defocus(pixels.to_unit(sharp, np.float64), max_radius,
                                    np.random.default_rng(seed))
    return pixels.from_unit(blurry, np.uint8), sharp


def panel(blurry, deblurred, sharp):
    """A crop from the blurred lower part: blurry | deblurred | sharp, scaled x2."""
    height, width = sharp.shape[:2]
    top, left = height - CROP - height // 8, (width - CROP) // 2
    crops = [x[top:top + CROP, left:left + CROP] for x in (blurry, deblurred, sharp)]
    gap = np.full((CROP, 4, 3), 255, np.uint8)
    row = np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1)
    return np.repeat(np.repeat(row, 2, axis=0), 2, axis=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        deblurrer = inference.load_deblurrer(_CHECKPOINT.value, _MODEL.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"bundled_examples: {e}") from None
    label = bundled.LABEL if _CHECKPOINT.value is None else _CHECKPOINT.value
    output_dir = value_or(_OUTPUT, "docs/images")
    os.makedirs(output_dir, exist_ok=True)
    results = {"model": label, "max_radius": _MAX_RADIUS.value}
    for photo in PHOTOS:
        blurry, sharp = defocused(photo, _MAX_RADIUS.value)
        deblurred = inference.deblur(deblurrer, blurry)
        score = evaluation.score_image(photo, *(to_unit_range(tf.constant(x[None]))
                                                for x in (blurry, deblurred, sharp)))
        results[photo] = {"blurry": (score.input_psnr, score.input_ssim),
                          "deblurred": (score.psnr, score.ssim)}
        path = os.path.join(output_dir, f"bundled_{photo}.png")
        images.write_png(path, panel(blurry, deblurred, sharp))
        print(f"{photo}: blurry {score.input_psnr:.2f} dB / {score.input_ssim:.4f} -> "
              f"deblurred {score.psnr:.2f} dB / {score.ssim:.4f}  ({path})")
    with atomic_output(os.path.join(output_dir, "bundled_examples.json")) as tmp, \
            open(tmp, "w") as f:
        json.dump(results, f, indent=2)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Examples and output": [_MAX_RADIUS, _OUTPUT],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS)
