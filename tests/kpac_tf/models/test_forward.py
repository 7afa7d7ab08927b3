"""kpac_tf.models.forward: padding to a network's size multiple and back, the size
multiple a built network reads from its SizeCheck layers, any-size prediction."""

import numpy as np
import pytest

from kpac_tf import build_model, size_multiple
from kpac_tf.models.forward import (crop, model_size_multiple, pad_to_multiple,
                                    predict_any_size)


def test_tiny_images_are_padded_by_replication():
    tiny = np.arange(3 * 5 * 3, dtype=np.float32).reshape(1, 3, 5, 3)
    padded, size = pad_to_multiple(tiny, 8)
    padded = padded.numpy()
    assert padded.shape == (1, 8, 8, 3) and tuple(int(n) for n in size) == (3, 5)
    np.testing.assert_array_equal(padded[:, :3, :5], tiny)
    np.testing.assert_array_equal(padded[:, 3:, :5], np.repeat(tiny[:, 2:3], 5, axis=1))
    np.testing.assert_array_equal(padded[:, :, 5:], np.repeat(padded[:, :, 4:5], 3, axis=2))


def test_images_large_enough_are_padded_by_reflection_and_crop_undoes_it():
    small = np.arange(6 * 7 * 3, dtype=np.float32).reshape(1, 6, 7, 3)
    padded, size = pad_to_multiple(small, 8)
    mirrored = padded.numpy()
    # The rows and columns past the edge mirror those before it (the edge not repeated).
    np.testing.assert_array_equal(mirrored[:, 6:, :7], small[:, [4, 3]])
    np.testing.assert_array_equal(mirrored[:, :6, 7:], small[:, :, [5]])
    np.testing.assert_array_equal(crop(padded, size).numpy(), small)
    already = np.ones((2, 16, 24, 3), np.float32)
    np.testing.assert_array_equal(pad_to_multiple(already, 8)[0].numpy(), already)


@pytest.mark.parametrize("name,multiple", [("single_2level", 4), ("single_3level", 8),
                                           ("dual", 8)])
def test_a_built_network_knows_its_size_multiple(name, multiple):
    assert model_size_multiple(build_model(name, channels=4)) == size_multiple(name) == multiple


def test_predict_any_size_pads_each_view_and_crops_the_output():
    seen = []

    def predict(inputs):
        seen.append([tuple(x.shape) for x in (inputs if isinstance(inputs, tuple)
                                              else (inputs,))])
        return (inputs[0] if isinstance(inputs, tuple) else inputs) * 2

    one = np.random.RandomState(0).uniform(-1, 1, (1, 5, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(predict_any_size(predict, one, 4).numpy(), 2 * one)
    views = [one, one + 1, one - 1]
    np.testing.assert_allclose(predict_any_size(predict, views, 8).numpy(), 2 * one)
    assert seen == [[(1, 8, 12, 3)], [(1, 8, 16, 3)] * 3]
