"""Running a network on images of any size: padding to the network's multiple.

Network-range tensors are float32 (batch, h, w, 3) in [-1, 1].
"""

import tensorflow as tf

from kpac_tf.layers import SizeCheck


def size_multiple_of(model):
    """Height/width multiple a built model needs (from its SizeCheck layers), else 1."""
    multiples = [layer.multiple for layer in model.layers if isinstance(layer, SizeCheck)]
    return max(multiples, default=1)


def pad_to_multiple(images, multiple):
    """Pads (batch, h, w, c) at the bottom and right up to multiples of `multiple`.

    Reflection padding (edge replication where an image is too small to reflect).

    Returns:
        (padded tensor, (h, w)) with the original size for `crop`.
    """
    images = tf.convert_to_tensor(images)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    paddings = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
    can_reflect = tf.logical_and(pad_h < height, pad_w < width)

    def replicate_edges():
        rows = tf.concat([images, tf.repeat(images[:, -1:], pad_h, axis=1)], axis=1)
        return tf.concat([rows, tf.repeat(rows[:, :, -1:], pad_w, axis=2)], axis=2)

    padded = tf.cond(can_reflect, lambda: tf.pad(images, paddings, mode="REFLECT"),
                     replicate_edges)
    return padded, (height, width)


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
