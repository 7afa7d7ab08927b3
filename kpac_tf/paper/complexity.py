"""Cost of a network: multiply-accumulates by formula and FLOPs by TF's profiler
(the paper's Table 5 reports FLOPs at 1280x720)."""

import time

import keras
import numpy as np
import tensorflow as tf

from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.models.layers import KPACBlock, ResidualBlock
from kpac_tf.models.networks import build_model


def _at_size(model, height, width):
    """A copy of `model` traced on fixed-size inputs, so every layer's shape is known."""
    inputs = [keras.Input((height, width, 3), batch_size=1) for _ in model.inputs]
    return keras.models.clone_model(model, input_tensors=inputs if len(inputs) > 1
                                    else inputs[0])


def _macs(out_shape, kernel, cin, cout):
    return int(out_shape[1]) * int(out_shape[2]) * kernel * kernel * cin * cout


def mac_breakdown(model, height, width):
    """Multiply-accumulates of one forward pass on (1, height, width, 3) inputs, by
    formula, per kind of layer: `conv`, `transposed_conv`, `kpac_block`,
    `residual_block` (bias adds, activations and attention products, each under 1%
    of the total, are left out)."""
    totals = dict(conv=0, transposed_conv=0, kpac_block=0, residual_block=0)
    for layer in _at_size(model, height, width).layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):  # each input pixel, k*k taps
            totals["transposed_conv"] += _macs(layer.input.shape, layer.kernel_size[0],
                                               layer.kernel.shape[3], layer.filters)
        elif isinstance(layer, keras.layers.Conv2D):
            totals["conv"] += _macs(layer.output.shape, layer.kernel_size[0],
                                    layer.kernel.shape[2], layer.filters)
        elif isinstance(layer, KPACBlock):
            shape, cin = layer.input.shape, layer.input.shape[-1]
            macs = len(layer.dilation_rates) * _macs(shape, layer.kernel_size, cin,
                                                     layer.filters)
            macs += sum(_macs(shape, 5, c.kernel.shape[2], c.filters)
                        for c in layer.scale_convs)
            macs += sum(c.kernel.shape[2] * c.filters for c in layer.shape_convs)
            macs += _macs(shape, 3, layer.filters * len(layer.dilation_rates),
                          layer.output_filters)
            totals["kpac_block"] += macs
        elif isinstance(layer, ResidualBlock):
            totals["residual_block"] += 2 * _macs(layer.input.shape, layer.kernel_size,
                                                  layer.filters, layer.filters)
    return totals


def count_macs(model, height, width):
    """Total multiply-accumulates of one forward pass (see `mac_breakdown`)."""
    return sum(mac_breakdown(model, height, width).values())


def count_flops(model, height, width):
    """Floating-point operations counted by TF's profiler on the traced graph of one
    forward pass at (1, height, width, 3) (a multiply-add counts as 2)."""
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    specs = [tf.TensorSpec((1, height, width, 3), tf.float32) for _ in model.inputs]
    function = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0]))
    graph = convert_variables_to_constants_v2(function.get_concrete_function(*specs)).graph
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


# Table 5: the size the paper measures at, (height, width), and its numbers.
TABLE5_SIZE = (720, 1280)
PAPER_TABLE5 = {"single_2level": dict(gflops=358, seconds=0.09, params_m=1.58),
                "single_3level": dict(gflops=197, seconds=0.07, params_m=2.06)}


def measure(name, runs, height, width):
    """Network `name` (the authors' settings) at (1, height, width, 3): parameters,
    GFLOPs (profiler; also without transposed convolutions, as the paper's TF 1.x
    profiler counted), GMACs (formula), and the median seconds of `runs` forward
    passes of the fast path on this machine."""
    model = build_model(name)
    deblurrer = Deblurrer.from_keras(model)
    views = [np.zeros((1, height, width, 3), np.float32) for _ in model.inputs]
    inputs = tuple(views) if len(views) == 3 else views[0]
    np.asarray(deblurrer(inputs))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(deblurrer(inputs))
        times.append(time.perf_counter() - start)
    flops = count_flops(model, height, width)
    macs = mac_breakdown(model, height, width)
    return dict(params=model.count_params(), gflops=flops / 1e9,
                gmacs=sum(macs.values()) / 1e9,
                gflops_without_transposed_convs=(flops - 2 * macs["transposed_conv"]) / 1e9,
                seconds=float(np.median(times)))
