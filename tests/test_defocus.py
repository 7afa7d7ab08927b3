"""Defocus rendering: thin lens, aperture kernels, occlusion; synthetic examples."""

import numpy as np
import pytest
from scipy import ndimage

from kpac_tf.rendering import defocus, synthetic


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


@pytest.fixture(scope="module")
def banks():
    return {split: synthetic.SourceBank(split) for split in synthetic.SOURCES}


def test_splits_share_no_photograph(banks):
    splits = list(synthetic.SOURCES.values())
    assert sorted(synthetic.SOURCES) == ["test", "train", "validation"]
    assert sum(map(len, splits)) == len(set().union(*splits))  # no photo in two splits
    assert banks["train"].with_depth == ["motorcycle"] and banks["test"].with_depth == []


def test_examples_are_deterministic_and_varied(banks):
    a = synthetic.make_example(0, "train", 3, banks["train"], 48)
    b = synthetic.make_example(0, "train", 3, banks["train"], 48)
    c = synthetic.make_example(0, "train", 4, banks["train"], 48)
    for key in ("blurry", "sharp", "blur_radius"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["sharp"], c["sharp"])
    assert a["blurry"].dtype == np.uint8 and a["blurry"].shape == (48, 48, 3)
    assert a["name"] == "train_00003"


def test_examples_are_blurred_where_the_radius_says(banks):
    compared = 0
    for index in range(6):
        ex = synthetic.make_example(1, "test", index, banks["test"], 64)
        radius = ex["blur_radius"]
        assert 0 <= radius.min() and radius.max() <= synthetic.MAX_RADIUS + 1e-4
        diff = np.abs(ex["blurry"].astype(float) - ex["sharp"].astype(float)).mean(-1)
        sharp_zone, blurred_zone = radius < 0.5, radius > 4
        if sharp_zone.sum() > 50 and blurred_zone.sum() > 50:
            assert diff[blurred_zone].mean() > diff[sharp_zone].mean()
            compared += 1
    assert compared >= 2


def test_photo_crops_are_only_ever_shrunk(monkeypatch):
    """An enlarged crop would be a soft 'sharp' target (dataset 1.1.0)."""
    resized = []
    real_resize = synthetic._resize

    def shrink_only(image, size):
        assert image.shape[0] >= size[0] and image.shape[1] >= size[1], image.shape
        resized.append(image.shape)
        return real_resize(image, size)

    monkeypatch.setattr(synthetic, "_resize", shrink_only)
    rng = np.random.default_rng(0)
    small = rng.uniform(size=(40, 60, 3)).astype(np.float32)
    crop, depth = synthetic._random_crop(rng, small, 64, small[..., 0])
    assert crop.shape == (64, 64, 3) and depth.shape == (64, 64)
    assert np.isin(crop, small).all()  # mirrored out, not interpolated
    for _ in range(10):
        assert synthetic._random_crop(rng, rng.uniform(size=(300, 200, 3)), 64).shape == \
            (64, 64, 3)
    assert resized


def test_training_examples_include_in_focus_images_and_large_blur(banks, monkeypatch):
    """The training recipe (`synthetic.TRAIN`): whole in-focus images (sharp content a
    model must leave alone: no blur, no noise, composed with photographs at native scale
    and enlarged as a whole), blur beyond the test split's MAX_RADIUS, defocused
    examples whose photographs are only shrunk, without noise and with noise weaker and
    stronger than the test's."""
    noise_levels, natives, scene_sizes = [], [], []
    real_crop, real_scene = synthetic._random_crop, synthetic.make_scene

    def recording_noise(image, rng, strength):
        noise_levels.append(strength)
        return image

    def recording_crop(rng, image, size, depth=None, native=False):
        natives.append(native)
        return real_crop(rng, image, size, depth, native)

    def recording_scene(rng, bank, size, native=False):
        scene_sizes.append(size)
        return real_scene(rng, bank, size, native)

    monkeypatch.setattr(synthetic, "add_sensor_noise", recording_noise)
    monkeypatch.setattr(synthetic, "_random_crop", recording_crop)
    monkeypatch.setattr(synthetic, "make_scene", recording_scene)
    count, in_focus, large, noise_free, in_focus_sizes = 80, 0, 0, 0, []
    for index in range(count):
        del natives[:], scene_sizes[:]
        noisy_before = len(noise_levels)
        ex = synthetic.make_example(0, "train", index, banks["train"], 48)
        radius = ex["blur_radius"]
        noisy = len(noise_levels) > noisy_before
        if radius.max() == 0:
            in_focus += 1
            assert np.array_equal(ex["blurry"], ex["sharp"]) and not noisy, ex["name"]
            assert all(natives) and ex["sharp"].shape == (48, 48, 3), ex["name"]
            in_focus_sizes += scene_sizes  # composed at 48 / zoom, then enlarged
        else:
            assert not any(natives) and scene_sizes == [48], ex["name"]  # as in test
            noise_free += not noisy
        large += radius.max() > synthetic.MAX_RADIUS
    assert in_focus >= 5 and large >= 2 and noise_free >= 5, (in_focus, large, noise_free)
    # Enlarged 3x or more and 1.5x or less (TRAIN: 1-4x) both occur.
    assert min(in_focus_sizes) <= 16 and max(in_focus_sizes) >= 32, in_focus_sizes
    assert min(noise_levels) < 0.8 and max(noise_levels) > 1.2, noise_levels


def test_training_targets_keep_only_near_focus_blur(banks, monkeypatch):
    """A defocused training example's target keeps the blur of the depth layers whose
    radius is below `TRAIN['keep_blur_below']` (a layer spans up to 0.75 px of radius,
    `render_defocus`'s radius_step; its spill is under 2 px); the input does not depend
    on it."""
    def examples():
        return [synthetic.make_example(0, "train", index, banks["train"], 48)
                for index in range(12)]

    kept, keep_blur_below = examples(), synthetic.TRAIN["keep_blur_below"]
    monkeypatch.setitem(synthetic.TRAIN, "keep_blur_below", 0.0)
    all_sharp = examples()
    changed = 0
    for a, b in zip(kept, all_sharp):
        np.testing.assert_array_equal(a["blurry"], b["blurry"], err_msg=a["name"])
        differs = np.abs(a["sharp"].astype(int) - b["sharp"].astype(int)).max(-1) > 0
        spill = ndimage.binary_dilation(a["blur_radius"] < keep_blur_below + 0.75,
                                        iterations=2)
        assert not (differs & ~spill).any(), a["name"]
        changed += differs.any()
    assert changed >= 3, changed


def test_validation_and_test_do_not_follow_the_training_recipe(banks, monkeypatch):
    """Dataset versions that change `TRAIN` keep validation and test example for example
    (scores stay comparable across versions): their draws never read the recipe."""
    def examples():
        return [synthetic.make_example(0, split, index, banks[split], 48)
                for split in ("validation", "test") for index in range(4)]

    before = examples()
    defocused = synthetic.make_example(0, "train", 1, banks["train"], 48)
    assert defocused["blur_radius"].max() > 0  # so the check below shows the patch works
    monkeypatch.setattr(synthetic, "TRAIN", dict(
        in_focus=1.0, in_focus_zoom=(3.0, 3.0), large_blur=1.0, large_radius=40.0,
        noise_free=1.0, noise_scale=(5.0, 5.0), keep_blur_below=5.0))
    for a, b in zip(before, examples()):
        for key in ("blurry", "sharp", "blur_radius"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=a["name"])
    assert synthetic.make_example(0, "train", 1, banks["train"], 48)["blur_radius"].max() == 0


def test_native_scale_crops_are_cut_without_resampling():
    """Native-scale in-focus crops keep the photograph's own softness: the crop is a
    window of the photograph, pixel for pixel."""
    rng = np.random.default_rng(1)
    photo = rng.uniform(size=(300, 200, 3)).astype(np.float32)
    for _ in range(5):
        crop = synthetic._random_crop(rng, photo, 64, native=True)
        top, left = (int(v[0]) for v in np.nonzero(photo[..., 0] == crop[0, 0, 0]))
        np.testing.assert_array_equal(crop, photo[top:top + 64, left:left + 64])
