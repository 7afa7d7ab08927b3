"""Metrics against scikit-image; losses and the VGG19 weights contract."""

import keras
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kpac_tf.evaluation import metrics
from kpac_tf.training import losses


@pytest.fixture
def pair(rng):
    a = rng.uniform(0, 1, (2, 40, 52, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    return a, b


def test_psnr_matches_scikit_image(pair):
    a, b = pair
    ours = metrics.psnr(a, b).numpy()
    theirs = [peak_signal_noise_ratio(x, y, data_range=1) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_ssim_matches_scikit_image_as_dpdd_calls_it(pair):
    a, b = pair
    ours = metrics.ssim(a, b).numpy()
    theirs = [structural_similarity(x.astype(np.float64), y.astype(np.float64),
                                    data_range=1, channel_axis=-1) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert float(metrics.ssim(a[0], b[0])) == pytest.approx(theirs[0], abs=1e-4)


def test_mae(pair):
    a, b = pair
    # Keras' mean absolute error (over channels), averaged over pixels.
    theirs = np.mean(keras.losses.MeanAbsoluteError(reduction=None)(a, b), axis=(1, 2))
    np.testing.assert_allclose(metrics.mae(a, b), theirs, rtol=1e-5)


def test_identical_images():
    a = np.full((16, 16, 3), 0.3, np.float32)
    assert metrics.psnr(a, a).numpy() == np.inf
    assert float(metrics.ssim(a, a)) == pytest.approx(1.0)
    assert float(metrics.mae(a, a)) == 0


def test_shape_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(np.zeros((5, 8, 3)), np.zeros((5, 8, 3)))


def test_to_unit_quantises_network_outputs_like_the_authors():
    out = metrics.quantised_unit(np.array([-1.0, -0.99999, 0.0, 1.0, 1.7], np.float32)).numpy()
    np.testing.assert_allclose(out * 255, [0, 0, 128, 255, 255])
    np.testing.assert_allclose(metrics.quantised_unit(np.array([0, 51, 255], np.uint8)), [0, 0.2, 1])


def test_mae_loss_per_example(rng):
    a = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(losses.mae_per_example(a, a * 0.5),
                               np.abs(a * 0.5).mean(axis=(1, 2, 3)), rtol=1e-6)


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
