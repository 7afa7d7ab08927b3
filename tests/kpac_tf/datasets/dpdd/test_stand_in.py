"""kpac_tf.datasets.dpdd.stand_in: DPDD's real naming, dual-pixel rendering, archives
written whole."""

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.data import images
from kpac_tf.datasets.dpdd import stand_in as dpdd_stand_in
from kpac_tf.rendering import defocus


COUNTS = {"train": 2, "val": 1, "test": 2}


def _number(stem):
    return int(stem[len("1P0A"):])


def test_capture_names_pair_by_sorted_position_only():
    names = dpdd_stand_in.capture_names({"train": 30, "val": 7, "test": 8}, seed=3)
    assert {split: len(pairs) for split, pairs in names.items()} == {
        "train": 30, "val": 7, "test": 8}
    numbers = [_number(stem) for pairs in names.values() for pair in pairs for stem in pair]
    assert len(set(numbers)) == len(numbers) and min(numbers) >= 890
    offsets = set()
    for pairs in names.values():
        sources, targets = zip(*pairs)
        assert list(zip(sorted(sources), sorted(targets))) == pairs
        offsets |= {_number(t) - _number(s) for s, t in pairs}
    assert offsets <= {-1, 1, 2} and {-1, 1} <= offsets  # names differ within a scene
    assert dpdd_stand_in.capture_names(COUNTS, 0) == dpdd_stand_in.capture_names(COUNTS, 0)
    assert dpdd_stand_in.capture_names(COUNTS, 0) != dpdd_stand_in.capture_names(COUNTS, 1)
    with pytest.raises(ValueError, match="past 1P0A9999"):
        dpdd_stand_in.capture_names({"train": 5000})
    with pytest.raises(ValueError, match="counts must be >= 0"):
        dpdd_stand_in.capture_names({"training": 1})


@pytest.mark.parametrize("radius", [-4.5, -2.0, 3.0])
def test_half_disc_kernels_split_the_disc(radius):
    left, right = dpdd_stand_in.half_disc_kernels(radius)
    assert left.sum() == pytest.approx(1) and right.sum() == pytest.approx(1)
    np.testing.assert_allclose((left + right) / 2, defocus.aperture_kernel(abs(radius)),
                               atol=1e-12)
    np.testing.assert_allclose(right, left[::-1, ::-1], atol=1e-12)
    columns = np.arange(left.shape[1]) - left.shape[1] // 2
    mean_column = (left.sum(axis=0) * columns).sum()
    assert mean_column < -0.3 * abs(radius) if radius < 0 else mean_column > 0.3 * radius
    np.testing.assert_array_equal(dpdd_stand_in.half_disc_kernels(0.2)[0], [[1.0]])


def _bar_scene(depth):
    """A bright vertical bar on black, all at inverse depth `depth`."""
    sharp = np.zeros((64, 64, 3), np.float32)
    sharp[:, 30:34] = 1.0
    return sharp, np.full((64, 64), depth, np.float32)


@pytest.mark.parametrize("depth,left_moves", [(0.2, "left"), (0.8, "right")])
def test_defocused_content_shifts_apart_in_the_two_views(depth, left_moves):
    """Behind the focal plane (0.5) the left view's blur lies left of the right
    view's; in front, the other way round. The centre (their mean) stays put."""
    sharp, inverse_depth = _bar_scene(depth)
    left, right = dpdd_stand_in.render_dual_pixel(sharp, inverse_depth, 0.5, 20.0)

    def centroid(image):
        profile = image[..., 0].mean(axis=0) ** defocus.GAMMA
        return (profile * np.arange(64)).sum() / profile.sum()

    shift = centroid(left) - centroid(right)
    assert (shift < -2.0) if left_moves == "left" else (shift > 2.0)
    center = dpdd_stand_in.combine_views(left, right)
    assert centroid(center) == pytest.approx(centroid(sharp), abs=0.3)
    assert center[:, 28].max() > 0.2  # blurred: light spills out of the bar


def test_in_focus_scene_is_unchanged(rng):
    sharp = rng.uniform(0, 1, (32, 48, 3)).astype(np.float32)
    depth = rng.uniform(0, 1, (32, 48)).astype(np.float32)
    for view in dpdd_stand_in.render_dual_pixel(sharp, depth, 0.5, 0.0):
        np.testing.assert_allclose(view, sharp, atol=1e-4)


def test_an_interrupted_run_leaves_only_whole_pngs(tmp_path, monkeypatch):
    encode, calls = tf.io.encode_png, []

    def failing_encode(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return encode(*args, **kwargs)

    monkeypatch.setattr(tf.io, "encode_png", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        dpdd_stand_in.write_archive(tmp_path, COUNTS, height=32, width=32)
    written = sorted(tmp_path.rglob("*.png"))
    assert len(written) == 5 and not list(tmp_path.rglob(".tmp-*"))
    for path in written:
        images.read_image(path)
