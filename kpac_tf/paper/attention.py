"""Looking inside KPAC blocks (paper Figs. 6 and 8): scale-attention maps, the
attention-weighted dilation, and deblurring with attention forced to chosen rates."""

import os

import keras
import numpy as np
import tensorflow as tf

from kpac_tf.data import images, pixels
from kpac_tf.deploy.deblurring import deblur
from kpac_tf.models.forward import block_attention, weighted_dilation
from kpac_tf.models.layers import KPACBlock


class _ModulatedKPACBlock(KPACBlock):
    """A KPAC block whose scale attention is a constant vector (one weight per rate)."""

    def __init__(self, alphas, **kwargs):
        super().__init__(**kwargs)
        self.alphas = [float(a) for a in alphas]

    def call(self, inputs, scale_attention_maps=None):
        del scale_attention_maps
        alpha = tf.ones_like(inputs[..., :1]) * tf.constant(self.alphas, inputs.dtype)
        return super().call(inputs, scale_attention_maps=alpha)


def modulated_model(model, alphas):
    """A copy of `model` whose KPAC blocks use constant scale attention `alphas`
    (e.g. [1, 0, 0, 0, 0] keeps only rate 1), as in the paper's Fig. 8."""
    def clone(layer):
        if isinstance(layer, KPACBlock):
            if len(alphas) != len(layer.dilation_rates):
                raise ValueError(f"{len(alphas)} alphas for {len(layer.dilation_rates)} "
                                 f"rates in {layer.name}")
            return _ModulatedKPACBlock(alphas, **layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


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
        blurry = pixels.to_8bit_network(example["blurry"])[None]
        radius = example["blur_radius"].numpy()
        for name, maps in block_attention(model, blurry).items():
            pooled[name][0].append(weighted_dilation(maps, block_rates[name]).ravel())
            pooled[name][1].append(radius.ravel())
    return {name: float(np.corrcoef(np.concatenate(d), np.concatenate(r))[0, 1])
            for name, (d, r) in pooled.items()}


def write_figures(model, image, modulations, output):
    """Figs. 6 and 8 for one photo, as PNGs in `output`: `input.png`, `deblurred.png`,
    every KPAC block's scale-attention map per rate (`<block>_rate<i>.png`) and the
    result with attention forced to each of `modulations`
    (`deblurred_alpha_<alphas>.png`).

    Args:
        model: keras.Model with KPAC blocks (single-image network).
        image: uint8 or uint16 (h, w, 3) photo.
        modulations: list of lists of floats, constant attention vectors (one value per
            dilation rate).
        output: str, an existing folder.
    """
    image = pixels.to_uint8(image)
    images.write_png(os.path.join(output, "input.png"), image)
    images.write_png(os.path.join(output, "deblurred.png"), deblur(model, image))
    inputs = pixels.to_8bit_network(image)[None]
    for block, maps in block_attention(model, inputs).items():
        for i in range(maps.shape[-1]):
            images.write_png(os.path.join(output, f"{block}_rate{i + 1}.png"),
                             pixels.from_unit(maps[..., i], np.uint8)[..., None])
    for alphas in modulations:
        label = "".join(f"{a:g}" for a in alphas)
        images.write_png(os.path.join(output, f"deblurred_alpha_{label}.png"),
                         deblur(modulated_model(model, alphas), image))
