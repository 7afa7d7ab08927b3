"""kpac_tf.models.fast_path: the rewritten full-resolution tail computes the same
function as the Keras graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import build_model
from kpac_tf.models.fast_path import fast_forward, rewritable_tail, row_column_conv


@pytest.mark.parametrize("size,outputs,channels", [(5, 3, (4, 6)), (3, 1, (5,)),
                                                     (7, 2, (3, 2, 4))])
def test_row_column_conv_equals_the_convolution_of_the_concatenation(size, outputs,
                                                                      channels):
    rng = np.random.RandomState(size)
    parts = [tf.constant(rng.randn(2, 9, 13, c), tf.float32) for c in channels]
    kernel = tf.constant(rng.randn(size, size, sum(channels), outputs), tf.float32)
    bias = tf.constant(rng.randn(outputs), tf.float32)
    expected = tf.nn.conv2d(tf.concat(parts, -1), kernel, 1, "SAME") + bias
    got = row_column_conv(parts, kernel, bias)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)
    no_bias = row_column_conv(parts, kernel, None)
    np.testing.assert_allclose(no_bias.numpy(), (expected - bias).numpy(), atol=1e-4)


def _random_weights(model, seed=0):
    """Weights larger than the N(0, 0.04) start, so every path carries signal."""
    rng = np.random.RandomState(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


@pytest.mark.parametrize("name", ["single_2level", "single_3level", "dual"])
def test_fast_forward_rewrites_the_tail_and_keeps_outputs(name):
    """Catches a rewritten tail (row/column split of `d2_2`) that differs from the
    Keras convolution: a wrong kernel slice, shift, flip, bias or dropped branch."""
    model = _random_weights(build_model(name, channels=8))
    concat, conv, reason = rewritable_tail(model)  # each network takes the fast path
    assert (reason, concat.name, conv.name) == (None, "d2_concat", "d2_2")
    rng = np.random.RandomState(1)
    views = [tf.constant(rng.uniform(-1, 1, (2, 24, 40, 3)), tf.float32)
             for _ in model.inputs]
    inputs = tuple(views) if len(views) == 3 else views[0]
    expected = model(inputs).numpy()
    got = tf.function(fast_forward(model))(inputs).numpy()
    # The output is input + residual; the residual (what the rewrite computes) must
    # vary over the image far above the tolerance, or any rewrite would pass.
    residual = expected - views[0].numpy()
    assert np.abs(residual - residual.mean(axis=(1, 2), keepdims=True)).mean() > 0.1
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_tail_is_found_by_structure_not_names():
    """Layers named otherwise, the same structure: rewritten all the same."""
    image = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="features")(image)
    merged = keras.layers.Concatenate(name="joined")([features, image])
    residual = keras.layers.Conv2D(3, 5, padding="same", name="last")(merged)
    model = _random_weights(keras.Model(image, keras.layers.Add(name="plus")(
        [residual, image])))
    concat, conv, reason = rewritable_tail(model)
    assert (reason, concat.name, conv.name) == (None, "joined", "last")
    x = tf.random.uniform((1, 8, 8, 3), seed=2)
    np.testing.assert_allclose(fast_forward(model)(x).numpy(), model(x).numpy(), atol=1e-5)


def test_other_models_run_unchanged(caplog):
    # A last convolution with an activation cannot be split into rows and columns.
    image = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="c0_2")(image)
    merged = keras.layers.Concatenate(name="d2_concat")([features, image])
    residual = keras.layers.Conv2D(3, 5, padding="same", activation="tanh",
                                   name="d2_2")(merged)
    model = keras.Model(image, keras.layers.Add(name="add_input")([residual, image]))
    assert rewritable_tail(model)[2] == ("the last convolution is not linear, square and "
                                         "odd, stride 1, 'same'")
    x = tf.random.uniform((1, 8, 8, 3), seed=2)
    # What the graph computes, written out with raw ops from its own weights.
    c0, d2 = model.get_layer("c0_2"), model.get_layer("d2_2")
    features = tf.nn.conv2d(x, c0.kernel, 1, "SAME") + c0.bias
    residual = tf.tanh(tf.nn.conv2d(tf.concat([features, x], -1), d2.kernel, 1, "SAME")
                       + d2.bias)
    with caplog.at_level("WARNING"):
        got = fast_forward(model)(x).numpy()
    np.testing.assert_allclose(got, (residual + x).numpy(), atol=1e-5)
    assert f"The fast inference path does not apply to model {model.name!r} (the last " \
        "convolution is not linear" in caplog.text  # said, not silent
    plain = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3)])
    assert rewritable_tail(plain)[2] == "its output is not the sum of two tensors"
