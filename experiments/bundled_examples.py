r"""Before/after crops of two real photographs for the README, by the bundled model.

python -m experiments.bundled_examples [--checkpoint=RUN_OR_FILE] [--output=docs/images]

The photographs and renders of `kpac_tf.deploy.examples` (blur radius up to
--max_radius pixels at the bottom of the frame, and a held-out render) are deblurred.
For each it writes `<output>/bundled_<photo>.png`, a crop from the blurred part
(blurry | deblurred | sharp, each scaled x2), and prints the whole-photo PSNR / SSIM
of blurry and deblurred against the sharp photo (also in
`<output>/bundled_examples.json`).
"""

import os

from absl import flags

from kpac_tf.data import images
from kpac_tf.deploy import bundled, examples
from kpac_tf.utils.files import write_json

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, deblurrer_from_flags, run_app, value_or)

_MAX_RADIUS = flags.DEFINE_float("max_radius", 4.0, "Blur radius at the bottom (pixels).")

_DEFAULT_OUTPUT = "outputs/bundled_examples"


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        deblurrer = deblurrer_from_flags()
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"bundled_examples: {e}") from None
    label = _CHECKPOINT.value or bundled.label(deblurrer.name)
    output_dir = value_or(_OUTPUT, _DEFAULT_OUTPUT)
    os.makedirs(output_dir, exist_ok=True)
    results = {"model": label}
    for photo, max_radius, score, panel in examples.before_and_after(deblurrer,
                                                                      _MAX_RADIUS.value):
        results[photo] = {"max_radius": max_radius,
                          "blurry": (score.input_psnr, score.input_ssim),
                          "deblurred": (score.psnr, score.ssim)}
        path = os.path.join(output_dir, f"bundled_{photo}.png")
        images.write_png(path, panel)
        print(f"{photo}: blurry {score.input_psnr:.2f} dB / {score.input_ssim:.4f} -> "
              f"deblurred {score.psnr:.2f} dB / {score.ssim:.4f}  ({path})")
    write_json(os.path.join(output_dir, "bundled_examples.json"), results, indent=2)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Examples and output": [_MAX_RADIUS, _OUTPUT],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_OUTPUT.name: _DEFAULT_OUTPUT}

if __name__ == "__main__":
    run_app(main)
