"""Running a built network on inputs of any size: padding to its size multiple, the
traced fast predictor (no retracing for new sizes), and scale-attention maps (at the
blocks' resolution, or at the input's).

Inputs and outputs are float32 (batch, h, w, 3) in [-1, 1] (the dual network: a
(center, left, right) triple). Photos, tiles and loading are `kpac_tf.deploy`'s.
"""

import keras
import numpy as np
import tensorflow as tf

from kpac_tf.models.fast_path import fast_forward
from kpac_tf.models.layers import KPACBlock, SizeCheck
from kpac_tf.models.networks import build_args, build_model


def model_size_multiple(model):
    """Height/width multiple a built model needs (from its SizeCheck layers), else 1."""
    multiples = [layer.multiple for layer in model.layers if isinstance(layer, SizeCheck)]
    return max(multiples, default=1)


def _padded_indices(size, pad, reflect):
    """Source index of each of `size + pad` positions: the image, then a mirror of its
    end (`reflect`, needs pad < size) or copies of its last row / column."""
    index = tf.range(size + pad)
    mirrored = tf.where(index < size, index, 2 * (size - 1) - index)
    return tf.where(reflect, mirrored, tf.minimum(index, size - 1))


def pad_to_multiple(images, multiple):
    """Pads (batch, h, w, c) at the bottom and right up to multiples of `multiple`.

    Reflection padding (edge replication where an image is too small to reflect),
    written as two gathers, without control flow, so that converters (LiteRT, ONNX)
    see a graph of plain ops of known rank.

    Returns:
        (padded tensor, (h, w)) with the original size for `crop`.
    """
    images = tf.convert_to_tensor(images)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    # (m - h % m) % m, not (-h) % m: ONNX exports compute the latter as C's remainder.
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    reflect = tf.logical_and(pad_h < height, pad_w < width)
    rows = tf.gather(images, _padded_indices(height, pad_h, reflect), axis=1)
    return tf.gather(rows, _padded_indices(width, pad_w, reflect), axis=2), (height, width)


def crop(images, size):
    """Undoes `pad_to_multiple`: keeps the top-left (h, w)."""
    height, width = size
    return images[:, :height, :width, :]


def predict_any_size(predict, inputs, multiple):
    """Runs `predict` on inputs of any size (a tensor, or the dual model's triple)."""
    if isinstance(inputs, (tuple, list)):
        padded = [pad_to_multiple(x, multiple) for x in inputs]
        output = predict(tuple(p for p, _ in padded))
        return crop(output, padded[0][1])
    padded, size = pad_to_multiple(inputs, multiple)
    return crop(predict(padded), size)


def predictor(model):
    """`model`'s fast forward pass (`kpac_tf.models.fast_path`), traced once for any batch,
    height and width (no retracing); float32 output."""
    specs = [tf.TensorSpec((None, None, None, 3), tf.float32) for _ in model.inputs]
    forward = fast_forward(model)

    @tf.function(input_signature=[tuple(specs) if len(specs) > 1 else specs[0]])
    def predict(inputs):
        return tf.cast(forward(inputs), tf.float32)

    return predict


INFERENCE_PRECISIONS = ("float32", "bfloat16")


def fast_predict_fn(model, precision="float32"):
    """The fastest way we have to run `model` on this machine, traced once for any size.

    float32: the Keras graph with its full-resolution tail rewritten so oneDNN keeps
    its vector lanes full (`kpac_tf.models.fast_path`; same outputs to float rounding).
    bfloat16: the same graph in bfloat16 compute (float32 weights and output), for
    CPUs with AVX512-BF16 / AMX; benchmarks/latency.py measures its speed and its PSNR
    to the float32 output.

    Args:
        model: keras.Model from `build_model` (input sizes: multiples of the
            network's `size_multiple`); for bfloat16, one of its networks
            (`build_args`), built again with every layer in bfloat16.
        precision: "float32" or "bfloat16".

    Returns:
        callable: float32 (batch, h, w, 3) in [-1, 1] (or the dual triple) ->
        float32 (batch, h, w, 3), the model's output.

    Example:
    >>> predict = fast_predict_fn(model)
    >>> output = predict(tf.zeros((1, 720, 1280, 3)))
    """
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return predictor(model)
    name, overrides = build_args(model)  # the same network, every layer in bfloat16
    fast = build_model(name, dtype="mixed_bfloat16", **overrides)
    fast.set_weights(model.get_weights())
    return predictor(fast)


def scale_attention_maps(model, inputs, block="kpac_0"):
    """Scale-attention maps of a KPAC block: (batch, h / 2**levels, w / 2**levels,
    num_rates) in (0, 1), or None when the model has no such block or attention.
    Inputs of any size are padded to the network's multiple first (the maps then
    cover the padding too)."""
    try:
        layer = model.get_layer(block)
    except ValueError:
        return None
    if not getattr(layer, "scale_attention", False):
        return None
    multiple = model_size_multiple(model)
    inputs = (tuple(pad_to_multiple(x, multiple)[0] for x in inputs)
              if isinstance(inputs, (tuple, list)) else pad_to_multiple(inputs, multiple)[0])
    features = keras.Model(model.inputs, layer.input)(inputs)
    return layer.scale_attention_maps(features)


def block_attention(model, inputs):
    """Scale-attention maps of every KPAC block for a (1, h, w, 3) input in [-1, 1]
    (or the dual triple; h, w padded to the network's multiple internally), at the
    input's size.

    Returns:
        {block name: numpy (h, w, num_rates)}, upsampled (nearest) to the input size
        (empty without scale attention).
    """
    views = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    multiple = model_size_multiple(model)
    padded = [pad_to_multiple(view, multiple)[0] for view in views]
    height, width = np.shape(views[0])[1:3]
    blocks = [layer for layer in model.layers
              if isinstance(layer, KPACBlock) and layer.scale_attention]
    if not blocks:
        return {}
    features = keras.Model(model.inputs, [b.input for b in blocks])(
        padded if len(padded) > 1 else padded[0])
    features = features if isinstance(features, list) else [features]
    maps = {}
    for block, feature in zip(blocks, features):
        attention = np.asarray(block.scale_attention_maps(feature))[0]
        factor = int(padded[0].shape[1]) // attention.shape[0]
        attention = np.repeat(np.repeat(attention, factor, 0), factor, 1)
        maps[block.name] = attention[:int(height), :int(width)]
    return maps


def weighted_dilation(maps, rates):
    """Per-pixel attention-weighted dilation rate, `sum_i a_i r_i / sum_i a_i`, of
    scale-attention maps (..., num_rates) for a block's dilation `rates`."""
    maps = np.asarray(maps, np.float64)
    return (maps * np.asarray(rates, np.float64)).sum(-1) / np.maximum(maps.sum(-1), 1e-9)
