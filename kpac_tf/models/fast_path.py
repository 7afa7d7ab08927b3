"""The fastest inference graph of a KPAC network on CPU, same weights, same outputs.

Every layer of the networks runs near the float32 matmul rate except the
full-resolution tail, the 5x5 convolution `d2_2` from 96 channels to 3: oneDNN
vectorises a convolution over its output channels, so 3 outputs keep 3 of 16 AVX-512
lanes busy (benchmarks/latency.py measures it; numbers in WORKSPACE.md).

Here that convolution is computed in two steps that keep the lanes full, exactly
(up to float summation order):

    y[i, j, o] = sum_{u, v, c} x[i + u, j + v, c] W[u, v, c, o]
    rows[i, j, (u, o)] = sum_{v, c} x[i, j + v, c] W[u, v, c, o]   a 1 x k conv, k*o outputs
    y[i, j, o] = sum_u rows[i + u, j, (u, o)]                       a k x 1 one-hot conv

The row convolution has 15 outputs (all the arithmetic), the column sum is a cheap
0/1 convolution, and the concatenation in front of `d2_2` is never materialised: each
concatenated part is convolved with its slice of the kernel and the results added.
Measured and not kept (slower here): XLA; a space-to-depth form of `d2_2`; a 1x1
convolution to k*k*o channels plus a depthwise tap sum; the transposed convolution
`d2` split into four sub-pixel convolutions.
"""

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf.models.layers import SizeCheck
from kpac_tf.models.networks import center_view


def row_kernel(kernel):
    """(k, k, c, o) kernel -> (1, k, c, k*o): output channel u*o + j holds row u."""
    k, _, c, o = kernel.shape
    return tf.reshape(tf.transpose(kernel, [1, 2, 0, 3]), [1, k, c, k * o])


def column_sum_kernel(size, outputs, dtype):
    """(size, 1, size*outputs, outputs) 0/1 kernel: y[i] = sum_u rows[i + u, (u, o)]."""
    kernel = np.zeros((size, 1, size * outputs, outputs), np.float32)
    for u in range(size):
        kernel[u, 0, u * outputs + np.arange(outputs), np.arange(outputs)] = 1.0
    return tf.constant(kernel, dtype)


def row_column_conv(parts, kernel, bias):
    """A 'SAME' k x k convolution of concat(parts) as rows then columns (see module doc).

    Args:
        parts: list of (batch, h, w, c_i) tensors, concatenated along channels.
        kernel: (k, k, sum c_i, o) float tensor or variable; k odd.
        bias: (o,) or None.

    Returns:
        (batch, h, w, o) tensor, `conv2d(concat(parts), kernel) + bias`.
    """
    kernel = tf.cast(kernel, parts[0].dtype)
    size, outputs = kernel.shape[0], kernel.shape[-1]
    rows, start = [], 0
    for part in parts:
        channels = part.shape[-1]
        rows.append(tf.nn.conv2d(part, row_kernel(kernel[:, :, start:start + channels]),
                                 1, "SAME"))
        start += channels
    y = tf.nn.conv2d(tf.add_n(rows) if len(rows) > 1 else rows[0],
                     column_sum_kernel(size, outputs, kernel.dtype), 1, "SAME")
    return y if bias is None else tf.nn.bias_add(y, tf.cast(bias, y.dtype))


def _producer(tensor):
    """The layer whose output `tensor` (a symbolic Keras tensor) is, or None."""
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def rewritable_tail(model):
    """(concat layer, conv layer, None) when `model` ends as build_model's networks
    do, found by the layers' types and connections (not their names): output =
    center input + Conv2D(Concatenate(...)), the conv linear, stride 1, odd k, 'same';
    else (None, None, the reason in words)."""
    if len(model.outputs) != 1:
        return None, None, "it has several outputs"
    add = _producer(model.outputs[0])
    if not isinstance(add, keras.layers.Add) or len(add.input) != 2:
        return None, None, "its output is not the sum of two tensors"
    conv, skip = (_producer(t) for t in add.input)
    center = model.inputs[0]
    if not (add.input[1] is center or (isinstance(skip, SizeCheck) and skip.input is center)):
        return None, None, "its output does not add the (center) input"
    if not isinstance(conv, keras.layers.Conv2D):
        return None, None, "the residual is not a Conv2D's output"
    concat = _producer(conv.input)
    if not (isinstance(concat, keras.layers.Concatenate) and concat.axis in (-1, 3)):
        return None, None, "the last convolution does not read a channel concatenation"
    k = conv.kernel_size
    if (k[0] != k[1] or k[0] % 2 == 0 or tuple(conv.strides) != (1, 1)
            or tuple(conv.dilation_rate) != (1, 1) or conv.padding != "same"
            or conv.activation not in (None, keras.activations.linear)):
        return None, None, ("the last convolution is not linear, square and odd, stride 1, "
                            "'same'")
    return concat, conv, None


def fast_forward(model):
    """`model`'s forward pass with the full-resolution tail rewritten (module doc).

    Args:
        model: keras.Model from `build_model` (or `load_deblurrer(...).keras_model`),
            in any dtype policy. Models of another shape are run as they are, with a
            warning saying why (they run 1.2-1.3x slower on CPUs).

    Returns:
        callable: inputs as for `model` (a tensor, or the dual triple) -> output
        tensor in the model's compute dtype. Trace it with `tf.function`.
    """
    concat, conv, reason = rewritable_tail(model)
    if reason is not None:
        logging.warning("The fast inference path does not apply to model %r (%s): it runs "
                        "as it is, 1.2-1.3x slower on CPUs", model.name, reason)
        return lambda inputs: model(inputs, training=False)
    head = keras.Model(model.inputs, concat.input, name=f"{model.name}_head")

    def forward(inputs):
        parts = head(inputs, training=False)
        residual = row_column_conv(list(parts), conv.kernel,
                                   conv.bias if conv.use_bias else None)
        return residual + tf.cast(center_view(inputs), residual.dtype)

    return forward
