"""One helper that puts any kpac_tf layer through its paces (keras-hub style)."""

import os

import keras
import numpy as np
import tensorflow as tf


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape,
                   tmp_path, expected_num_trainable_weights=None):
    """Build, eager and traced call, config round trip, .keras save/load, a train step.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_shape: tuple, concrete input shape (batch first).
        expected_output_shape: tuple, the output's concrete shape.
        tmp_path: pathlib.Path for the saved model.
        expected_num_trainable_weights: int or None.

    Returns:
        the built layer.
    """
    x = np.random.RandomState(0).uniform(-1, 1, input_shape).astype("float32")
    layer = layer_cls(**init_kwargs)
    eager = layer(x)
    assert tuple(eager.shape) == tuple(expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    traced = tf.function(layer)(x)
    np.testing.assert_allclose(traced.numpy(), eager.numpy(), atol=1e-5)

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), eager.numpy(), atol=1e-6)

    inputs = keras.Input(input_shape[1:])
    model = keras.Model(inputs, layer(inputs))
    path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(x, np.zeros(expected_output_shape, "float32"))
    changed = [not np.array_equal(b, w.numpy())
               for b, w in zip(before, model.trainable_weights)]
    assert all(changed), "every trainable weight should receive a gradient"
    return layer
