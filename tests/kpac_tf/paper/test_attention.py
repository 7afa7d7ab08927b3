"""kpac_tf.paper.attention: attention modulation, weighted dilation, correlation with
the blur radius."""

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import build_model
from kpac_tf.paper import attention


def test_constant_attention_modulation(rng):
    model = build_model("single_2level")  # at c = 4 the blocks barely reach the output
    x = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    ones = attention.modulated_model(model, [1, 1, 1, 1, 1])
    block = model.get_layer("kpac_0")
    first_only = attention.modulated_model(model, [1, 0, 0, 0, 0])
    assert not np.allclose(ones(x), first_only(x))
    # With every map forced to 1 the block equals the original with alpha = 1.
    import keras
    inner = keras.Model(model.inputs, block.input)(x)
    np.testing.assert_allclose(
        ones.get_layer("kpac_0")(inner).numpy(),
        block(inner, scale_attention_maps=np.ones((1, 8, 8, 5), np.float32)).numpy(),
        atol=1e-6)
    with pytest.raises(ValueError, match="3 alphas for 5 rates"):
        attention.modulated_model(model, [1, 0, 0])


def test_weighted_dilation_and_maps(rng):
    maps = np.zeros((2, 2, 5))
    maps[0, 0] = [1, 0, 0, 0, 0]
    maps[0, 1] = [0, 0, 0, 0, 1]
    maps[1, :] = [1, 1, 1, 1, 1]
    np.testing.assert_allclose(attention.weighted_dilation(maps, [1, 2, 3, 4, 5]),
                               [[1, 5], [3, 3]])
    model = build_model("single_3level", channels=4)
    out = attention.block_attention(model, rng.uniform(-1, 1, (1, 30, 44, 3)))
    assert set(out) == {"kpac_0", "kpac_1"} and out["kpac_0"].shape == (30, 44, 5)


def test_blur_radius_correlation_of_attention_that_follows_the_radius(monkeypatch, rng):
    """Catches a correlation that pairs dilations with the wrong pixels or images,
    pools the wrong images, or takes the wrong rates or coefficient: attention moving
    from rate 1 to rate 5 as the radius grows must give r = +1 (kpac_0), the reverse
    r = -1 (kpac_1)."""
    levels = rng.randint(0, 256, (3, 16, 16))  # each test image's radius, in its pixels
    levels[0] = 100  # flat: correlates only when pooled with the next image
    radii = levels / 50
    radii[2] = 5.1 - radii[2]  # contradicts its attention, but lies beyond the limit
    examples = [{"blurry": tf.constant(np.repeat(v[..., None], 3, -1), tf.uint8),
                 "blur_radius": tf.constant(r, tf.float32)} for v, r in zip(levels, radii)]
    builder = SimpleNamespace(as_dataset=lambda split: {"test": examples}[split])

    def radius_following_attention(model, inputs):
        t = (np.asarray(inputs)[0, ..., :1] + 1) / 2  # the pixel level / 255
        zeros = np.zeros_like(t).repeat(3, -1)
        return {"kpac_0": np.concatenate([1 - t, zeros, t], -1),
                "kpac_1": np.concatenate([t, zeros, 1 - t], -1)}

    monkeypatch.setattr(attention, "block_attention", radius_following_attention)
    correlation = attention.blur_radius_correlation(
        build_model("single_2level", channels=4), builder, 2)
    assert correlation == pytest.approx({"kpac_0": 1, "kpac_1": -1}, abs=1e-6)
