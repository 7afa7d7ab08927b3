"""kpac_tf.rendering.defocus: thin lens, aperture kernels, occlusion, sensor noise."""

import numpy as np
import pytest

from kpac_tf.rendering import defocus


def test_coc_is_linear_in_inverse_depth():
    np.testing.assert_allclose(defocus.coc_radius(np.array([0.2, 0.5, 0.9]), 0.5, 10),
                               [3, 0, 4], atol=1e-6)


@pytest.mark.parametrize("radius,blades", [(3.0, 0), (5.5, 0), (4.0, 6), (7.0, 5)])
def test_aperture_kernels(radius, blades):
    kernel = defocus.aperture_kernel(radius, blades)
    half = int(np.ceil(radius))
    assert kernel.shape == (2 * half + 1, 2 * half + 1)
    assert kernel.sum() == pytest.approx(1)
    # Area of the support matches the disc / regular polygon.
    area = np.count_nonzero(kernel / kernel.max() > 0.5)
    expected = (np.pi * radius ** 2 if not blades
                else 0.5 * blades * radius ** 2 * np.sin(2 * np.pi / blades))
    assert area == pytest.approx(expected, rel=0.15)
    if not blades:
        np.testing.assert_allclose(kernel, kernel.T, atol=1e-12)
        np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-12)


def test_small_radius_is_identity():
    np.testing.assert_array_equal(defocus.aperture_kernel(0.3), [[1.0]])
    with pytest.raises(ValueError, match="blades"):
        defocus.aperture_kernel(3, blades=2)


def test_all_in_focus_scene_is_unchanged(rng):
    sharp = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
    depth = rng.uniform(0, 1, (32, 32)).astype(np.float32)
    blurry, radius = defocus.render_defocus(sharp, depth, 0.5, pixels_per_unit=0.0)
    np.testing.assert_allclose(blurry, sharp, atol=1e-5)
    assert not radius.any()


def test_uniform_depth_is_a_disc_convolution_in_linear_light(rng):
    sharp = rng.uniform(0, 1, (40, 40, 3)).astype(np.float32)
    depth = np.full((40, 40), 0.8, np.float32)
    blurry, radius = defocus.render_defocus(sharp, depth, 0.5, pixels_per_unit=10.0)
    np.testing.assert_allclose(radius, 3.0, atol=1e-5)
    kernel = defocus.aperture_kernel(3.0)
    linear = sharp ** defocus.GAMMA
    expected = np.zeros_like(linear)
    for dy in range(7):
        for dx in range(7):
            expected[3:-3, 3:-3] += kernel[dy, dx] * linear[6 - dy:40 - dy, 6 - dx:40 - dx]
    expected = expected ** (1 / defocus.GAMMA)
    np.testing.assert_allclose(blurry[3:-3, 3:-3], expected[3:-3, 3:-3], atol=2e-4)


def test_occlusion_sharp_foreground_over_blurred_background():
    sharp = np.zeros((40, 40, 3), np.float32)
    sharp[:, :, 0] = (np.arange(40) % 2)[None, :]          # background: fine stripes
    sharp[10:30, 10:30] = [0, 1, 0]                          # foreground: green square
    depth = np.full((40, 40), 0.0, np.float32)
    depth[10:30, 10:30] = 1.0
    # Focus on the foreground: it stays exactly sharp, background stripes blur.
    blurry, _ = defocus.render_defocus(sharp, depth, 1.0, pixels_per_unit=4.0)
    np.testing.assert_allclose(blurry[10:30, 10:30], sharp[10:30, 10:30], atol=1e-5)
    assert blurry[:8, :8, 0].std() < 0.1 * sharp[:8, :8, 0].std()
    # Focus on the background: the blurred green square spills over it.
    blurry, _ = defocus.render_defocus(sharp, depth, 0.0, pixels_per_unit=4.0)
    assert blurry[20, 8, 1] > 0.2 and blurry[20, 2, 1] < 0.01
    np.testing.assert_allclose(blurry[0:5, 0:5, 0], sharp[0:5, 0:5, 0], atol=1e-5)


def test_keep_blur_below_blurs_only_the_near_focus_layers(rng):
    """The training target of a defocused example: the blur of layers below
    `keep_blur_below` px stays, every other layer is sharp."""
    sharp = rng.uniform(0, 1, (32, 48, 3)).astype(np.float32)
    depth = np.full((32, 48), 0.58, np.float32)   # radius 0.8 px on the left
    depth[:, 24:] = 0.8                            # radius 3 px on the right (nearer)
    full, radius = defocus.render_defocus(sharp, depth, 0.5, pixels_per_unit=10.0)
    target, same_radius = defocus.render_defocus(sharp, depth, 0.5, pixels_per_unit=10.0,
                                                 keep_blur_below=1.0)
    np.testing.assert_array_equal(radius, same_radius)
    np.testing.assert_allclose(target[:, 26:], sharp[:, 26:], atol=1e-5)
    np.testing.assert_allclose(target[:, :20], full[:, :20], atol=1e-5)
    assert np.abs(target[:, :20] - sharp[:, :20]).mean() > 0.02  # the 0.8 px blur stays
    nothing_kept, _ = defocus.render_defocus(sharp, depth, 0.5, 10.0, keep_blur_below=0.0)
    np.testing.assert_allclose(nothing_kept, sharp, atol=1e-5)
    all_kept, _ = defocus.render_defocus(sharp, depth, 0.5, 10.0, keep_blur_below=3.01)
    np.testing.assert_array_equal(all_kept, full)


def test_sensor_noise_is_mild_and_signal_dependent():
    rng = np.random.default_rng(0)
    dark = defocus.add_sensor_noise(np.full((100, 100), 0.05), rng)
    bright = defocus.add_sensor_noise(np.full((100, 100), 0.9), rng)
    assert 0.001 < dark.std() < bright.std() < 0.02


def test_graded_defocus_is_sharp_at_the_top_and_blurred_at_the_bottom():
    stripes = np.tile(np.arange(64) % 2, (64, 1))[..., None].repeat(3, axis=-1) * 0.8 + 0.1
    blurry = defocus.graded_defocus(stripes, 6.0, np.random.default_rng(0))
    assert blurry.dtype == np.float32 and blurry.shape == stripes.shape
    assert np.abs(blurry[:2] - stripes[:2]).mean() < 0.02
    assert blurry[-8:].std() < 0.1 * stripes[-8:].std()
