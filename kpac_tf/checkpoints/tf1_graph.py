"""The authors' TF1 inference graph, re-expressed with raw TF ops.

An independent reference for validating converted checkpoints: it consumes the
checkpoint's tensor list directly (no Keras layers, no name mapping) and uses the
authors' op choices, which differ from `kpac_tf.models.networks` in form but not in value:
`tf.nn.atrous_conv2d` for dilated convolutions, fixed-size `conv2d_transpose`,
shape attention as an average pool whose window is derived from the image size
(height // 4 or // 8, as their graph hard-codes it) followed by nearest-neighbour
upsampling, and scale attention spread over channels by a nearest-neighbour resize
of the transposed map.

Only the three published architectures are supported (2 KPAC blocks, 5x5 kernels,
rates 1-5, c = 48).
"""

import numpy as np
import tensorflow as tf

_RATES = (1, 2, 3, 4, 5)


def _lrelu(x):
    return tf.nn.leaky_relu(x, alpha=0.2)


def _resize_nearest(x, size):
    """TF1's `resize_nearest_neighbor` (align_corners=False, no half-pixel centres)."""
    return tf.raw_ops.ResizeNearestNeighbor(
        images=x, size=size, align_corners=False, half_pixel_centers=False)


def tf1_forward(name, tensors, image, left=None, right=None):
    """Runs the authors' graph for network `name` with checkpoint `tensors`.

    Args:
        name: str. "single_2level", "single_3level" or "dual".
        tensors: list of float32 arrays in checkpoint order (`read_tf1_npz`).
        image: float32 (batch, h, w, 3) in [-1, 1]: the blurry (centre) image.
        left, right: float32 (batch, h, w, 3): dual-pixel views ("dual" only).

    Returns:
        float32 numpy array (batch, h, w, 3): the network output before clipping.
    """
    def as_tensor(x):
        return None if x is None else tf.convert_to_tensor(x, tf.float32)

    return np.asarray(tf1_graph(name, [tf.constant(t) for t in tensors],
                                as_tensor(image), as_tensor(left), as_tensor(right)))


def tf1_graph(name, tensors, image, left=None, right=None):
    """`tf1_forward` on tensors of static shape; traceable by `tf.function`, as the
    authors' fixed-size TF1 graph (benchmarks/latency.py times it this way).

    Returns:
        float32 tensor (batch, h, w, 3): the network output before clipping.
    """
    levels = 2 if name == "single_2level" else 3
    params = iter(tensors)
    batch, height, width = image.shape[0], image.shape[1], image.shape[2]

    def conv(x, stride=1, act=_lrelu):
        kernel, bias = next(params), next(params)
        y = tf.nn.conv2d(x, kernel, strides=stride, padding="SAME") + bias
        return act(y) if act else y

    def atrous(x, rate, kernel, bias=None):
        y = tf.nn.atrous_conv2d(x, kernel, rate, padding="SAME")
        return _lrelu(y if bias is None else y + bias)

    def deconv(x, out_height, out_width):
        kernel, bias = next(params), next(params)
        y = tf.nn.conv2d_transpose(
            x, kernel, [batch, out_height, out_width, kernel.shape[2]], strides=2,
            padding="SAME")
        return _lrelu(y + bias)

    if name == "dual":
        x = tf.concat([left, right], 3)
    else:
        x = image
    x = conv(x)
    x = skip1 = conv(x)
    x = conv(x, stride=2)
    x = skip2 = conv(x)
    x = conv(x, stride=2)
    x = skip3 = conv(x)
    if levels == 3:
        x = conv(x, stride=2)
        x = conv(x)
    stack = [x]
    feat_h, feat_w = height // 2 ** levels, width // 2 ** levels
    for _ in range(2):
        shared = next(params)
        branches = tf.concat([atrous(x, r, shared) for r in _RATES], 3)
        scale = x
        for _ in range(4):
            kernel, bias = next(params), next(params)
            scale = atrous(scale, 2, kernel, bias)
        scale = conv(scale, act=tf.sigmoid)                       # (b, h, w, 5)
        scale = tf.transpose(scale, [0, 1, 3, 2])                 # (b, h, 5, w)
        scale = _resize_nearest(scale, [feat_h, 5 * 48])          # (b, h, 240, w)
        branches = branches * tf.transpose(scale, [0, 1, 3, 2])
        # The authors' pool windows, written for the image size (Python-2 `/`).
        if levels == 2:
            window, stride = [height // 4, width // 4], [height // 4, width // 4]
        else:
            window, stride = [height // 8, width // 8], [height // 4, width // 4]
        shape = tf.nn.avg_pool2d(x, window, stride, padding="SAME")
        shape = conv(shape)
        shape = conv(shape, act=tf.sigmoid)
        shape = tf.tile(shape, [1, 1, 1, 5])
        shape = _resize_nearest(shape, [feat_h, feat_w])
        branches = branches * shape
        x = conv(branches)
        stack.append(x)
    x = conv(tf.concat(stack, 3))
    x = conv(x)
    if levels == 3:
        x = deconv(x, height // 4, width // 4)
        x = conv(tf.concat([x, skip3], 3))
    x = deconv(x, height // 2, width // 2)
    x = conv(tf.concat([x, skip2], 3))
    x = deconv(x, height, width)
    x = conv(tf.concat([x, skip1], 3), act=None)
    leftover = sum(1 for _ in params)
    if leftover:
        raise ValueError(f"{leftover} checkpoint tensors were not used by {name}")
    return x + image
