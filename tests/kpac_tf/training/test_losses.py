"""kpac_tf.training.losses: MAE and Charbonnier per example, the perceptual loss and
its VGG19 weights, the table of named losses."""

import keras
import numpy as np
import pytest

from kpac_tf.training import losses


def test_mae_loss_per_example(rng):
    a = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(losses.mae_per_example(a, a * 0.5),
                               np.abs(a * 0.5).mean(axis=(1, 2, 3)), rtol=1e-6)


def test_charbonnier_loss_per_example(rng):
    a = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    expected = np.sqrt((a * 0.5) ** 2 + 1e-6).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(losses.charbonnier_per_example(a, a * 0.5), expected,
                               rtol=1e-6)
    assert losses.charbonnier_per_example(a, a).numpy() == pytest.approx([1e-3] * 3)


def test_a_loss_is_one_table_entry(monkeypatch):
    monkeypatch.setitem(losses.LOSSES, "mae", losses.LOSSES["mae"])  # restored after
    for name in ("mae", "loss"):
        with pytest.raises(ValueError, match=f"a loss named '{name}' exists already"):
            losses.register_loss(name, lambda config: None)
    assert losses.parse_objective("mae:1,perceptual:0.0007") == {"mae": 1.0,
                                                                 "perceptual": 0.0007}
    assert losses.parse_objective("charbonnier") == {"charbonnier": 1.0}
    assert losses.format_objective({"mae": 1.0, "perceptual": 0.0007}) == \
        "mae:1,perceptual:0.0007"


def test_perceptual_loss_refuses_without_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=losses.VGG19_WEIGHTS_FILE):
        losses.vgg19_feature_extractor(str(tmp_path / "missing.h5"))


def test_perceptual_loss_uses_the_given_weights(vgg_weights, rng):
    """Catches a loss that is not the mean squared distance of the given VGG19's
    `block4_conv4` features of both images, each clipped to [0, 1] (the expected
    values come from Keras' VGG19 alone, not from `PerceptualLoss`)."""
    extractor = losses.vgg19_feature_extractor(vgg_weights)
    reference = keras.applications.VGG19(include_top=False, weights=None)
    reference.load_weights(vgg_weights)
    np.testing.assert_array_equal(extractor.get_layer("block4_conv4").kernel.numpy(),
                                  reference.get_layer("block4_conv4").kernel.numpy())
    assert not extractor.trainable_weights
    loss = losses.PerceptualLoss(extractor)
    a = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    assert loss(a, a).numpy() == pytest.approx([0, 0])
    block4 = keras.Model(reference.input, reference.get_layer("block4_conv4").output)

    def reference_features(images):
        return block4(keras.applications.vgg19.preprocess_input(
            np.clip((images + 1) / 2, 0, 1) * 255.0)).numpy()

    expected = reference_features(a)
    assert expected.shape == (2, 4, 4, 512)  # three poolings: 32 / 8
    np.testing.assert_allclose(loss.features(a).numpy(), expected, rtol=1e-4, atol=1e-4)
    b = a + 0.3  # partly above 1, like a network output: clipped as well
    # Keras' own mean squared error of the features, averaged over positions.
    squared = keras.losses.MeanSquaredError(reduction=None)(expected, reference_features(b))
    np.testing.assert_allclose(
        loss(a, b).numpy(), np.mean(squared, axis=(1, 2)),
        rtol=1e-4)
