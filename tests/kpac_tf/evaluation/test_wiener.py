"""kpac_tf.evaluation.wiener: deconvolution undoes a known blur."""

from kpac_tf.evaluation import metrics, wiener
from kpac_tf.paper import inverse_kernels as ik
from kpac_tf.rendering import defocus


def test_wiener_deconvolution_undoes_a_known_blur(rng):
    sharp = ik.convolve(rng.uniform(0, 1, (48, 56, 3)), defocus.aperture_kernel(1.0))
    kernel = defocus.aperture_kernel(3.0)
    blurry = ik.convolve(sharp, kernel)
    restored = wiener.wiener_deconvolve(blurry, kernel, snr=1e3)
    inner = (slice(8, -8), slice(8, -8))
    assert restored.shape == blurry.shape
    assert metrics.psnr(restored[inner], sharp[inner]) > metrics.psnr(
        blurry[inner], sharp[inner]) + 5
