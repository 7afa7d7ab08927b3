"""kpac_tf.rendering.gather_defocus: the second renderer (gather, cat-eye aperture)."""

import numpy as np

from kpac_tf.rendering import gather_defocus


def test_cat_eye_aperture_is_a_lens_shape_brighter_at_the_rim():
    from kpac_tf.rendering.defocus import aperture_kernel

    assert np.array_equal(gather_defocus.cat_eye_aperture(0.3), np.ones((1, 1)))
    kernel = gather_defocus.cat_eye_aperture(8.0, angle=0.0)
    assert kernel.shape == (17, 17) and np.isclose(kernel.sum(), 1)
    support = kernel > 0
    # Narrower along the offset axis (x) than across it: 2 (1 - 0.35) R vs ~1.87 R.
    assert support[8].sum() < 0.75 * support[:, 8].sum()
    assert kernel[8, 12] > kernel[8, 8] and kernel[3, 8] > kernel[8, 8]  # bright rim
    turned = gather_defocus.cat_eye_aperture(8.0, angle=np.pi / 2)
    np.testing.assert_allclose(turned, kernel.T, atol=1e-12)
    # Not the training apertures: no disc or polygon of any size is within 0.3 of it
    # (L1 between normalised kernels, at most 2; the closest, a 6-px disc, is 0.37).
    for radius in (5.0, 6.0, 7.0, 8.0):
        for blades in (0, 5, 6, 7, 8):
            disc = aperture_kernel(radius, blades)
            pad = (17 - disc.shape[0]) // 2
            assert np.abs(np.pad(disc, pad) - kernel).sum() > 0.3


def test_gather_renderer_blurs_by_each_pixels_radius(rng):
    sharp = rng.uniform(0, 1, (40, 60, 3))
    radius = np.zeros((40, 60))
    np.testing.assert_allclose(gather_defocus.render_gather(sharp, radius), sharp, atol=1e-9)
    radius[:, 30:] = 4.0
    blurry = gather_defocus.render_gather(sharp, radius)
    np.testing.assert_allclose(blurry[:, :30], sharp[:, :30], atol=1e-9)  # no spill-over
    assert np.std(blurry[10:30, 40:50]) < 0.5 * np.std(sharp[10:30, 40:50])
    flat = np.full((20, 20, 3), 0.3)
    np.testing.assert_allclose(gather_defocus.render_gather(flat, np.full((20, 20), 3.0)), flat,
                               atol=1e-9)
