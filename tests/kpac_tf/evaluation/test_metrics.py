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


SKIMAGE_WINDOWS = {"uniform": {},
                   "gaussian": dict(gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)}


def photo_pairs():
    """Real photographs (scikit-image's) and their defocused, 8-bit versions, at odd
    sizes, as float64 in [0, 1]: (name, sharp, blurry)."""
    import skimage.data
    import skimage.filters

    for name, box in (("astronaut", (slice(3, 134), slice(7, 204))),
                      ("coffee", (slice(0, 400), slice(0, 600))),
                      ("chelsea", (slice(1, 12), slice(5, 22)))):  # 11x17: the smallest
        sharp = getattr(skimage.data, name)()[box].astype(np.float64) / 255
        blurry = np.round(skimage.filters.gaussian(sharp, sigma=2.5, channel_axis=-1)
                          * 255) / 255
        yield name, sharp, blurry


@pytest.mark.parametrize("window", metrics.SSIM_WINDOWS)
def test_each_ssim_window_is_scikit_images_on_real_photos(window):
    """Both windows against scikit-image's `structural_similarity` with the matching
    arguments, on photographs at odd sizes, to 1e-6 (float64, as scoring computes)."""
    for name, sharp, blurry in photo_pairs():
        theirs = structural_similarity(blurry, sharp, data_range=1, channel_axis=-1,
                                       **SKIMAGE_WINDOWS[window])
        assert float(metrics.ssim(blurry, sharp, window)) == pytest.approx(theirs, abs=1e-6), \
            name
    # Batched, and 16-bit-precision images (a scoring protocol's) alike.
    rng = np.random.default_rng(1)
    a = rng.integers(0, 65536, (2, 23, 31, 3)) / 65535
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    np.testing.assert_allclose(metrics.ssim(a, b, window), [
        structural_similarity(x, y, data_range=1, channel_axis=-1, **SKIMAGE_WINDOWS[window])
        for x, y in zip(a, b)], atol=1e-6)


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
    with pytest.raises(ValueError, match=r"gaussian window\) needs images of at least 11x11"):
        metrics.ssim(np.zeros((10, 18, 3)), np.zeros((10, 18, 3)), "gaussian")
    with pytest.raises(ValueError, match="must be one of"):
        metrics.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), "box")


def test_to_unit_quantises_network_outputs_like_the_authors():
    out = metrics.quantised_unit(np.array([-1.0, -0.99999, 0.0, 1.0, 1.7], np.float32)).numpy()
    np.testing.assert_allclose(out * 255, [0, 0, 128, 255, 255])
    np.testing.assert_allclose(metrics.quantised_unit(np.array([0, 51, 255], np.uint8)),
                               [0, 0.2, 1])
    # 16 bits: outputs to 65536 levels; 16-bit images kept, or reduced at 8 bits.
    out = metrics.quantised_unit(np.array([-1.0, 0.0, 0.5, 1.0], np.float32), 16,
                                 dtype="float64")
    np.testing.assert_array_equal(out * 65535, [0, 32768, 49151, 65535])
    stored = np.array([0, 0x12FF, 0xFF00, 65535], np.uint16)
    np.testing.assert_array_equal(metrics.quantised_unit(stored, 16, dtype="float64"),
                                  stored / 65535)
    np.testing.assert_allclose(metrics.quantised_unit(stored, 8, "high_byte") * 255,
                               [0, 18, 255, 255])
