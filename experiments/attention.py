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

import numpy as np
from absl import app, flags

from kpac_tf import attention, data, deblur, images, pixels
from kpac_tf.files import atomic_output

from .common_flags import (CHECKPOINT as _CHECKPOINT, DATA_DIR as _DATA_DIR,
                           DATASET_CONFIG as _DATASET_CONFIG, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, keras_model_from_flags, run_app)

_IMAGE = flags.DEFINE_string("image", None, "Photo to analyse (default: a synthetic "
                             "test image).")
_INDEX = flags.DEFINE_integer("index", 0, "Synthetic test image to show.")
_MODULATIONS = flags.DEFINE_string("modulations", "1,0,0,0,0;1,0,1,0,0;1,0,0,0,1",
                                   "Constant attention vectors, ';'-separated.")
_CORRELATION_IMAGES = flags.DEFINE_integer(
    "correlation_images", 0, "Synthetic test images for the correlation (0: all).")


def blur_radius_correlation(model, builder, limit):
    """Pearson r between attention-weighted dilation and true blur radius, per block,
    pooled over the synthetic test images."""
    block_rates = {b.name: b.dilation_rates for b in model.layers
                   if hasattr(b, "dilation_rates") and b.scale_attention}
    pooled = {name: ([], []) for name in block_rates}
    dataset = builder.as_dataset(split="test")
    for index, example in enumerate(dataset):
        if limit and index >= limit:
            break
        blurry = data.to_unit_range(example["blurry"])[None]
        radius = example["blur_radius"].numpy()
        for name, maps in attention.block_attention(model, blurry).items():
            pooled[name][0].append(attention.weighted_dilation(maps, block_rates[name]).ravel())
            pooled[name][1].append(radius.ravel())
    return {name: float(np.corrcoef(np.concatenate(d), np.concatenate(r))[0, 1])
            for name, (d, r) in pooled.items()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    output = _OUTPUT.value or "outputs/attention"
    os.makedirs(output, exist_ok=True)
    try:
        model = keras_model_from_flags()
        modulations = [[float(a) for a in m.split(",")] for m in
                       _MODULATIONS.value.split(";") if m]
        builder = None
        if _IMAGE.value:
            image = images.read_image(_IMAGE.value)[..., :3]
        else:
            builder = data.prepare("synthetic", _DATA_DIR.value, _DATASET_CONFIG.value)
            example = next(iter(builder.as_dataset(split="test").skip(_INDEX.value)))
            image = example["blurry"].numpy()
        image = pixels.to_uint8(image)
        images.write_png(os.path.join(output, "input.png"), image)
        images.write_png(os.path.join(output, "deblurred.png"), deblur(model, image))
        inputs = data.to_unit_range(image)[None]
        for block, maps in attention.block_attention(model, inputs).items():
            for i in range(maps.shape[-1]):
                images.write_png(os.path.join(output, f"{block}_rate{i + 1}.png"),
                                 pixels.from_unit(maps[..., i], np.uint8)[..., None])
        for alphas in modulations:
            label = "".join(f"{a:g}" for a in alphas)
            images.write_png(os.path.join(output, f"deblurred_alpha_{label}.png"),
                             deblur(attention.modulated_model(model, alphas), image))
        results = {"modulations": modulations}
        if builder is not None:
            results["weighted_dilation_vs_blur_radius_pearson"] = blur_radius_correlation(
                model, builder, _CORRELATION_IMAGES.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"attention: {e}") from None
    with atomic_output(os.path.join(output, "results.json")) as tmp, open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Images": [_IMAGE, _INDEX, _DATASET_CONFIG, _DATA_DIR, _CORRELATION_IMAGES],
    "Analysis and output": [_MODULATIONS, _OUTPUT],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS, required=["checkpoint"])
