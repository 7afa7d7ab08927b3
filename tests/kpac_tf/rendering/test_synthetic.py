"""kpac_tf.rendering.synthetic: the synthetic scenes and their split recipes."""

import numpy as np
import pytest
from scipy import ndimage

from kpac_tf.rendering import synthetic


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
