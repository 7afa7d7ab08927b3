r"""Scale attention of a trained model (paper Figs. 6 and 8).

python -m experiments.attention --checkpoint=outputs/embedded_default \
    --image=photo.png --output=outputs/attention

Writes, for one image (--image, or the synthetic test image --index): the input,
the deblurred result, every KPAC block's scale-attention map per dilation rate, and
results with attention forced to --modulations (Fig. 8's alpha = [1,0,0,0,0],
[1,0,1,0,0], [1,0,0,0,1] by default). On the synthetic test split it also reports the
Pearson correlation between the attention-weighted dilation and the true blur
radius (results.json).
"""

import json
import os

from absl import flags

from kpac_tf.data import images, pipelines
from kpac_tf.paper import attention
from kpac_tf.utils.files import write_json

from .common_flags import (CHECKPOINT as _CHECKPOINT, DATA_DIR as _DATA_DIR,
                           DATASET_CONFIG as _DATASET_CONFIG, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, keras_model_from_flags, run_app, value_or)

_IMAGE = flags.DEFINE_string("image", None, "Photo to analyse (default: a synthetic "
                             "test image).")
_INDEX = flags.DEFINE_integer("index", 0, "Synthetic test image to show.")
_MODULATIONS = flags.DEFINE_string("modulations", "1,0,0,0,0;1,0,1,0,0;1,0,0,0,1",
                                   "Constant attention vectors, ';'-separated.")
_CORRELATION_IMAGES = flags.DEFINE_integer(
    "correlation_images", 0, "Synthetic test images for the correlation (0: all).")

_DEFAULT_OUTPUT = "outputs/attention"


def main(argv):
    del argv  # run_app refuses extra arguments
    output = value_or(_OUTPUT, _DEFAULT_OUTPUT)
    os.makedirs(output, exist_ok=True)
    try:
        model = keras_model_from_flags()
        modulations = [[float(a) for a in m.split(",")] for m in
                       _MODULATIONS.value.split(";") if m]
        builder = None
        if _IMAGE.value:
            image = images.read_image(_IMAGE.value)[..., :3]
        else:
            builder = pipelines.prepare("synthetic", _DATA_DIR.value, _DATASET_CONFIG.value)
            example = next(iter(builder.as_dataset(split="test").skip(_INDEX.value)))
            image = example["blurry"].numpy()
        attention.write_figures(model, image, modulations, output)
        results = {"modulations": modulations}
        if builder is not None:
            results["weighted_dilation_vs_blur_radius_pearson"] = \
                attention.blur_radius_correlation(model, builder, _CORRELATION_IMAGES.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"attention: {e}") from None
    write_json(os.path.join(output, "results.json"), results, indent=2)
    print(json.dumps(results, indent=2))


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Images": [_IMAGE, _INDEX, _DATASET_CONFIG, _DATA_DIR, _CORRELATION_IMAGES],
    "Analysis and output": [_MODULATIONS, _OUTPUT],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_OUTPUT.name: _DEFAULT_OUTPUT}
REQUIRED_FLAGS = ["checkpoint"]

if __name__ == "__main__":
    run_app(main)
