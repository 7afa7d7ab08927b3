"""kpac_tf.deploy.blur_map: the attention-weighted dilation per pixel, and its picture."""

import numpy as np
import pytest

from kpac_tf import build_model
from kpac_tf.deploy import blur_map


def attending_to(model, rate_index):
    """`model` with its first block's scale attention fixed on one rate (the last
    sigmoid layer's kernel zeroed, its biases -20 / +20)."""
    layer = model.get_layer("kpac_0").sca_c2
    kernel, bias = layer.get_weights()
    bias = np.full_like(bias, -20.0)
    bias[rate_index] = 20.0
    layer.set_weights([np.zeros_like(kernel), bias])
    return model


@pytest.mark.parametrize("name", ["single_2level", "single_3level"])
def test_the_map_is_the_rate_the_block_attends_to(name, rng):
    """Attention fixed on rate r gives r at every pixel, at the photo's own (odd) size."""
    model = build_model(name, channels=4)
    photo = rng.randint(0, 256, (30, 45, 3)).astype(np.uint8)
    for index, rate in enumerate(model.get_layer("kpac_0").dilation_rates):
        rates_map, rates = blur_map.blur_map(attending_to(model, index), photo)
        assert rates_map.shape == (30, 45) and rates_map.dtype == np.float32
        np.testing.assert_allclose(rates_map, rate, atol=1e-5)
    assert rates == (1, 2, 3, 4, 5)


def test_random_attention_lies_between_the_rates_and_the_dual_network_takes_three_views(rng):
    photo = rng.randint(0, 65536, (24, 40, 3)).astype(np.uint16)
    rates_map, _ = blur_map.blur_map(build_model("single_2level", channels=4), photo)
    assert 1 <= rates_map.min() and rates_map.max() <= 5 and rates_map.std() > 0
    dual = attending_to(build_model("dual", channels=4), 1)
    rates_map, _ = blur_map.blur_map(dual, (photo, photo, photo))
    np.testing.assert_allclose(rates_map, 2, atol=1e-5)
    assert blur_map.blur_map(build_model("single_2level", channels=4, scale_attention=False),
                             photo) is None


def test_the_picture_shows_the_map_over_the_photo_with_a_legend(rng):
    photo = np.full((60, 90, 3), 128, np.uint8)
    rates_map = np.tile(np.linspace(1, 5, 90, dtype=np.float32), (60, 1))
    picture = blur_map.draw_blur_map(photo, rates_map, (1, 2, 3, 4, 5))
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    assert picture.shape[1] == 900 and picture.shape[0] > 900 * 60 / 90
    # Viridis from left (dark blue: rate 1) to right (yellow: rate 5) across the photo.
    row = picture[int(picture.shape[0] * 0.3)]
    left, right = row[60].astype(int), row[-60].astype(int)
    assert left[2] > left[0] and right[0] > right[2]
