"""kpac_tf.evaluation.metrics against scikit-image."""

import keras
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kpac_tf.evaluation import metrics


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
    np.testing.assert_allclose(metrics.quantised_unit(np.array([0, 51, 255], np.uint8)),
                               [0, 0.2, 1])
