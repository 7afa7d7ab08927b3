"""kpac_tf.paper.inverse_kernels: the key idea (Eqs. 4 and 5)."""

import numpy as np
import pytest

from kpac_tf.evaluation import metrics
from kpac_tf.paper import inverse_kernels as ik
from kpac_tf.rendering import defocus


def test_inverse_kernel_tools():
    k = defocus.aperture_kernel(2.0)
    same = ik.lanczos_upsample(k, 1.0)  # scale 1: the kernel, inside a zero margin
    margin = (same.shape[0] - k.shape[0]) // 2
    np.testing.assert_allclose(same[margin:-margin, margin:-margin], k, atol=1e-12)
    assert same.sum() == pytest.approx(1)
    assert ik.lanczos_upsample(k, 3.0).sum() / 9 == pytest.approx(1, abs=0.02)
    dilated = ik.dilate(k, 3)
    assert dilated.shape == (13, 13) and dilated.sum() == pytest.approx(1)
    assert not dilated[1::3].any()
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    inverse = ik.wiener_inverse(delta, 9, snr=99.0)
    assert inverse[4, 4] == pytest.approx(0.99) and abs(inverse).sum() == pytest.approx(0.99)
    # A Wiener inverse undoes most of the blur it was made for.
    sharp = np.random.RandomState(0).uniform(0, 1, (64, 64))
    blurry = ik.convolve(sharp, k)
    restored = ik.convolve(blurry, ik.wiener_inverse(k, 31, snr=1e4))
    inner = (slice(8, -8), slice(8, -8), None)
    assert metrics.psnr(restored[inner], sharp[inner]) > metrics.psnr(
        blurry[inner], sharp[inner]) + 5
