r"""Before/after crops of two real photographs for the README, by the bundled model.

python -m experiments.bundled_examples [--checkpoint=RUN_OR_FILE] [--output=docs/images]

scikit-image's `chelsea` and `coffee` photographs (in the synthetic set's test
sources, never trained on) are given defocus that grows from the top of the frame
(in focus) to the bottom (blur radius --max_radius pixels), rendered in linear light
with `kpac_tf.rendering.defocus` plus sensor noise, then deblurred. For each photo it writes
`<output>/bundled_<photo>.png`: a crop from the blurred part, blurry | deblurred |
sharp, each scaled x2; and prints the whole-photo PSNR / SSIM of blurry and
deblurred against the sharp photo (also in `<output>/bundled_examples.json`). The
same for `HELD_OUT`, a held-out render of `kpac_tf.held_out` (a photograph from
another package, the second renderer), cropped where it is most blurred.
"""

import os

import numpy as np
import tensorflow as tf
from absl import flags

from kpac_tf.data import images, pixels
from kpac_tf.data.pixels import to_8bit_network
from kpac_tf.deploy import bundled, deblurring
from kpac_tf.evaluation import held_out, scoring
from kpac_tf.rendering import defocus
from kpac_tf.utils.files import write_json

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, run_app, value_or)

_MAX_RADIUS = flags.DEFINE_float("max_radius", 4.0, "Blur radius at the bottom (pixels).")
PHOTOS = ("chelsea", "coffee")
HELD_OUT = ("grace_hopper", 10.0)  # (photograph, largest blur radius)
CROP = 128


def defocused(photo, max_radius, seed=0):
    """(blurry, sharp) uint8 (h, w, 3): defocus from 0 (top) to max_radius (bottom)."""
    from skimage import data

    sharp = getattr(data, photo)()[..., :3]
    blurry = defocus.graded_defocus(pixels.to_unit(sharp, np.float64), max_radius,
                                    np.random.default_rng(seed))
    return pixels.from_unit(blurry, np.uint8), sharp


def most_blurred_window(blurry, sharp):
    """(top, left) of the CROP x CROP window (on a CROP / 4 grid) where blurry and sharp
    differ most."""
    difference = np.abs(blurry.astype(np.float32) - sharp).mean(axis=-1)
    step = CROP // 4
    windows = [(difference[t:t + CROP, l:l + CROP].mean(), t, l)
               for t in range(0, difference.shape[0] - CROP + 1, step)
               for l in range(0, difference.shape[1] - CROP + 1, step)]
    return max(windows)[1:]


def panel(blurry, deblurred, sharp, top=None, left=None):
    """A crop (default: from the blurred lower part): blurry | deblurred | sharp,
    scaled x2."""
    height, width = sharp.shape[:2]
    top = height - CROP - height // 8 if top is None else top
    left = (width - CROP) // 2 if left is None else left
    crops = [x[top:top + CROP, left:left + CROP] for x in (blurry, deblurred, sharp)]
    gap = np.full((CROP, 4, 3), 255, np.uint8)
    row = np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1)
    return np.repeat(np.repeat(row, 2, axis=0), 2, axis=1)


def examples():
    """[(name, blurry, sharp, largest blur radius, crop window or None)]: the graded
    photos, then the held-out render `HELD_OUT`."""
    graded = [(photo, *defocused(photo, _MAX_RADIUS.value), _MAX_RADIUS.value, None)
              for photo in PHOTOS]
    name, max_radius = HELD_OUT
    blurry, sharp = held_out.defocused_photo(name, max_radius)
    return graded + [(f"{name}_r{max_radius:g}", blurry, sharp, max_radius,
                      most_blurred_window(blurry, sharp))]


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        deblurrer = deblurring.load_deblurrer(_CHECKPOINT.value, _MODEL.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"bundled_examples: {e}") from None
    label = _CHECKPOINT.value or bundled.label(deblurrer.name)
    output_dir = value_or(_OUTPUT, "docs/images")
    os.makedirs(output_dir, exist_ok=True)
    results = {"model": label}
    for photo, blurry, sharp, max_radius, window in examples():
        deblurred = deblurring.deblur(deblurrer, blurry)
        score = scoring.score_image(photo, *(to_8bit_network(tf.constant(x[None]))
                                                for x in (blurry, deblurred, sharp)))
        results[photo] = {"max_radius": max_radius,
                          "blurry": (score.input_psnr, score.input_ssim),
                          "deblurred": (score.psnr, score.ssim)}
        path = os.path.join(output_dir, f"bundled_{photo}.png")
        images.write_png(path, panel(blurry, deblurred, sharp, *(window or ())))
        print(f"{photo}: blurry {score.input_psnr:.2f} dB / {score.input_ssim:.4f} -> "
              f"deblurred {score.psnr:.2f} dB / {score.ssim:.4f}  ({path})")
    write_json(os.path.join(output_dir, "bundled_examples.json"), results, indent=2)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Examples and output": [_MAX_RADIUS, _OUTPUT],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS)
