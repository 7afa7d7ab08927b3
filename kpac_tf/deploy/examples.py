"""Before/after examples of a deblurrer for the README: scikit-image's `chelsea` and
`coffee` photographs (in the synthetic set's test sources, never trained on) given
defocus that grows from the top of the frame (in focus) to the bottom, rendered in
linear light (`kpac_tf.rendering.defocus`) plus sensor noise; and `HELD_OUT`, a
held-out render of `kpac_tf.evaluation.held_out` (a photograph from another package,
the second renderer). Panels are crops, blurry | deblurred | sharp, scaled x2; images
uint8 (h, w, 3). And a training run beside the bundled model (`beside_the_bundled_model`,
the close of the embedded default)."""

import os

import numpy as np
import tensorflow as tf

from kpac_tf.data import images, pixels
from kpac_tf.data.pixels import to_8bit_network
from kpac_tf.deploy import bundled, deblurring, loading
from kpac_tf.evaluation import held_out, items, scoring
from kpac_tf.rendering import defocus
from kpac_tf.training import run_folder

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


def examples(max_radius):
    """[(name, blurry, sharp, largest blur radius, crop window or None)]: the graded
    photos (blur up to `max_radius` px), then the held-out render `HELD_OUT`."""
    graded = [(photo, *defocused(photo, max_radius), max_radius, None)
              for photo in PHOTOS]
    name, max_radius = HELD_OUT
    blurry, sharp = held_out.defocused_photo(name, max_radius)
    return graded + [(f"{name}_r{max_radius:g}", blurry, sharp, max_radius,
                      most_blurred_window(blurry, sharp))]


def before_and_after(deblurrer, max_radius):
    """Yields (name, largest blur radius, `scoring.ImageScore` of blurry and deblurred
    against sharp, panel uint8) for each of `examples(max_radius)`, deblurred by
    `deblurrer`."""
    for photo, blurry, sharp, radius, window in examples(max_radius):
        deblurred = deblurring.deblur(deblurrer, blurry)
        score = scoring.score_image(photo, *(to_8bit_network(tf.constant(x[None]))
                                                for x in (blurry, deblurred, sharp)))
        yield photo, radius, score, panel(blurry, deblurred, sharp, *(window or ()))


def beside_the_bundled_model(run_dir, data_dir, dataset_config, output_dir):
    """A synthetic training run's final model beside the bundled model and the blurry
    input, on the same test images, and one test image as a picture.

    The run's scores are its own (`per_image.csv`, written when it finished); the
    bundled model is scored here (`scoring.evaluate` into `output_dir/bundled/`).

    Returns:
        dict: `rows` [(label, PSNR dB, SSIM)] (input, this run, bundled model),
        `images`, `bundled_steps` (its training steps, from its provenance),
        `picture` (path of `output_dir/before_after.png`: input | this run | bundled
        model | sharp, of the test image the bundled model improves most) and
        `picture_of` (that image's name).
    """
    run_scores = scoring.read_per_image(run_folder.path(run_dir, run_folder.TEST_PER_IMAGE))
    model = loading.load_deblurrer()
    test = items.dataset_items("synthetic", dataset_config, data_dir, None, "test",
                               model.name)
    summary = scoring.evaluate(model, test, os.path.join(output_dir, "bundled"))
    bundled_scores = scoring.read_per_image(os.path.join(output_dir, "bundled",
                                                         "per_image.csv"))
    shown = max(bundled_scores, key=lambda s: s.psnr - s.input_psnr).name
    blurry, sharp = next(load() for name, load in test if name == shown)
    blurry, sharp = np.asarray(blurry[0]), np.asarray(sharp[0])
    run_model = loading.load_deblurrer(run_folder.path(run_dir, run_folder.FINAL_MODEL))
    gap = np.full((sharp.shape[0], 4, 3), 255, np.uint8)
    row = [blurry, gap, run_model(blurry), gap, model(blurry), gap, sharp]
    picture = os.path.join(output_dir, "before_after.png")
    images.write_png(picture, np.concatenate(row, axis=1))
    steps = bundled.bundled_info().get("steps")

    def mean(scores, key):
        return float(np.mean([getattr(s, key) for s in scores]))
    return dict(rows=[("blurry input", mean(run_scores, "input_psnr"),
                       mean(run_scores, "input_ssim")),
                      ("this run", mean(run_scores, "psnr"), mean(run_scores, "ssim")),
                      (f"bundled {model.name}", summary["psnr"], summary["ssim"])],
                images=len(run_scores), bundled_steps=steps, picture=picture,
                picture_of=shown)
