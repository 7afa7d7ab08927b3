"""kpac_tf.data.pipelines (and the decoded cache it reads through): crops,
determinism, ranges, names, flips, epochs, over both builders."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.data import pipelines, training_cache
from tests.test_case import DPDD_DUMMY


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return pipelines.prepare("synthetic", str(tmp_path_factory.mktemp("tfds")), "tiny")


@pytest.fixture(scope="module")
def dpdd_dual(tmp_path_factory):
    return pipelines.prepare("dpdd", str(tmp_path_factory.mktemp("tfds")), "dual",
                        manual_dir=DPDD_DUMMY)


def first(dataset, n=1):
    return [tf.nest.map_structure(lambda t: t.numpy(), x) for x in dataset.take(n)]


def dummy_targets(split):
    """{scene name (source stem): target PNG} of the dummy DPDD split, paired as the
    official loaders pair them: the sorted file lists, by position."""
    folder = DPDD_DUMMY / "dd_dp_dataset_canon" / f"{split}_c"
    sources, targets = (sorted((folder / kind).glob("*.png"))
                        for kind in ("source", "target"))
    assert len(sources) == len(targets) > 0
    return {source.stem: target for source, target in zip(sources, targets)}


def find_window(full, crop):
    """(row, col) where `crop` sits inside `full`, or None."""
    size = crop.shape[0]
    for r in range(full.shape[0] - size + 1):
        for c in range(full.shape[1] - size + 1):
            if np.array_equal(full[r:r + size, c:c + size], crop):
                return r, c
    return None


def test_training_batches_are_aligned_crops_in_unit_range(synthetic):
    full = {name.decode(): (blurry[0], sharp[0]) for blurry, sharp, (name,) in
            (x for x in first(pipelines.evaluation_dataset(synthetic, "train"), 6))}
    (blurry, sharp), = first(pipelines.training_dataset(synthetic, crop_size=32, batch_size=3))
    assert blurry.shape == sharp.shape == (3, 32, 32, 3)
    assert blurry.dtype == np.float32 and -1 <= blurry.min() and blurry.max() <= 1
    for b, s in zip(blurry, sharp):
        hits = [(name, find_window(f_sharp, s)) for name, (_, f_sharp) in full.items()]
        name, window = next((n, w) for n, w in hits if w is not None)
        r, c = window
        np.testing.assert_array_equal(full[name][0][r:r + 32, c:c + 32], b)


def test_training_is_deterministic_in_the_seed(synthetic):
    def batches(seed):
        return first(pipelines.training_dataset(synthetic, crop_size=16, batch_size=2,
                                           seed=seed), 4)

    a, b, c = batches(0), batches(0), batches(1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_crop_larger_than_images_fails_clearly(synthetic):
    with pytest.raises(ValueError, match=r"crop_size 128 is larger .*\(64x64\)"):
        pipelines.training_dataset(synthetic, crop_size=128)


def stored_8bit(builder, split, to_8bit):
    """{view: [uint8 (h, w, 3)]} of a split as TFDS stores it, through
    `pixels.to_uint8` (independent of the training cache)."""
    from kpac_tf.data import pixels

    keys = {"image": "center", "target": "sharp", "left": "left", "right": "right",
            "blurry": "center", "sharp": "sharp"}
    out = {}
    stored = builder.as_dataset(split=split, shuffle_files=False)
    for example in stored.as_numpy_iterator():
        for key, view in keys.items():
            if key in example:
                out.setdefault(view, []).append(pixels.to_uint8(example[key], to_8bit))
    return out


@pytest.mark.parametrize("to_8bit", ["round", "high_byte"])
def test_crops_are_exact_windows_of_the_8bit_images(dpdd_dual, to_8bit):
    """Every view of a crop is the same window of the stored 16-bit image converted
    by `pixels.to_uint8(.., to_8bit)`, then `x / 127.5 - 1`; so is the cache."""
    full = stored_8bit(dpdd_dual, "train", to_8bit)
    cache = training_cache.training_images(dpdd_dual, "train", to_8bit)
    assert cache.views == ["center", "left", "right", "sharp"]
    for view, images in full.items():
        for index, image in enumerate(images):
            np.testing.assert_array_equal(cache.image(view, index), image)
    batches = first(pipelines.training_dataset(dpdd_dual, crop_size=8, batch_size=3,
                                          to_8bit=to_8bit), 4)
    for (center, left, right), sharp in batches:
        crops = dict(center=center, left=left, right=right, sharp=sharp)
        for j in range(3):
            hits = [(i, find_window(to_network(image), sharp[j]))
                    for i, image in enumerate(full["sharp"])]
            (index, (r, c)), = [(i, w) for i, w in hits if w is not None]
            for view, crop in crops.items():
                np.testing.assert_array_equal(
                    crop[j], to_network(full[view][index][r:r + 8, c:c + 8]))


def to_network(image):
    from kpac_tf.data import pixels

    return pixels.to_network(np.ascontiguousarray(image))


def test_each_image_is_decoded_once(tmp_path, monkeypatch):
    """The first pass decodes the split into the cache; later epochs, other seeds,
    resumed streams and new pipelines decode nothing."""
    decoded = []
    original = training_cache._decoded_split

    def counting(*args):
        for name, views in original(*args):
            decoded.append(name)
            yield name, views

    monkeypatch.setattr(training_cache, "_decoded_split", counting)
    builder = pipelines.prepare("synthetic", str(tmp_path), "tiny")
    first(pipelines.training_dataset(builder, crop_size=16, batch_size=4), 9)  # 6 epochs
    first(pipelines.training_dataset(builder, crop_size=32, batch_size=2, seed=5, start=7), 3)
    assert sorted(decoded) == [f"train_{i:05d}" for i in range(6)]
    cache = pathlib.Path(builder.data_dir) / "training_cache" / "train-round"
    assert sorted(p.name for p in cache.iterdir()) == [
        f"{i:05d}-{view}.u8" for i in range(6) for view in ("center", "sharp")] + [
        "manifest.json"]
    assert (cache / "00000-center.u8").stat().st_size == 64 * 64 * 3


def test_an_unwritable_data_folder_caches_in_the_temporary_folder(tmp_path, monkeypatch):
    builder = pipelines.prepare("synthetic", str(tmp_path / "tfds"), "tiny")
    (pathlib.Path(builder.data_dir) / "training_cache").write_text("not a folder")
    monkeypatch.setattr(training_cache.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    cache = training_cache.training_images(builder)
    assert pathlib.Path(cache.folder).is_relative_to(tmp_path / "tmp")
    assert len(cache) == 6 and training_cache.training_images(builder).folder == cache.folder


def test_a_rebuilt_dataset_gets_a_fresh_cache(tmp_path):
    builder = pipelines.prepare("synthetic", str(tmp_path), "tiny")
    cache = training_cache.training_images(builder)
    manifest = pathlib.Path(cache.folder) / "manifest.json"
    saved = json.loads(manifest.read_text())
    saved["source"]["num_bytes"] += 1  # as if the stored split had changed
    manifest.write_text(json.dumps(saved))
    assert training_cache._open_images(cache.folder, to_8bit="round",
                             source=saved["source"]) is not None
    again = training_cache.training_images(builder)
    assert json.loads(manifest.read_text())["source"]["num_bytes"] == \
        saved["source"]["num_bytes"] - 1
    assert len(again) == 6


def test_every_epoch_visits_every_image_once_and_streams_resume_anywhere(synthetic):
    """The stream is a pure function of (seed, position): starting at batch b gives
    batch b of the stream started at 0, with no iterator state."""
    full = [to_network(image) for image in stored_8bit(synthetic, "train", "round")["sharp"]]
    batches = first(pipelines.training_dataset(synthetic, crop_size=64, batch_size=3), 6)
    order = [next(i for i, f in enumerate(full) if np.array_equal(f, crop))
             for _, sharp in batches for crop in sharp]
    for epoch in range(3):
        assert sorted(order[6 * epoch:6 * epoch + 6]) == list(range(6))
    assert order[:6] != order[6:12]  # a new order each epoch
    resumed = first(pipelines.training_dataset(synthetic, crop_size=64, batch_size=3,
                                          start=4), 2)
    for (x, y), (xr, yr) in zip(batches[4:], resumed):
        np.testing.assert_array_equal(x, xr)
        np.testing.assert_array_equal(y, yr)


def test_evaluation_yields_full_images_with_names(synthetic):
    items = first(pipelines.evaluation_dataset(synthetic, "test"), 3)
    assert sorted(name[0].decode() for _, _, name in items) == [
        "test_00000", "test_00001", "test_00002"]
    for blurry, sharp, _ in items:
        assert blurry.shape == sharp.shape == (1, 64, 64, 3)


def test_dual_config_yields_three_inputs(dpdd_dual):
    ((center, left, right), sharp), = first(
        pipelines.training_dataset(dpdd_dual, crop_size=8, batch_size=2))
    assert center.shape == left.shape == right.shape == sharp.shape == (2, 8, 8, 3)
    (views, sharp, name), = first(pipelines.evaluation_dataset(dpdd_dual, "validation"))
    assert len(views) == 3 and sharp.shape == (1, 16, 24, 3)
    assert name[0].decode() in dummy_targets("val")


@pytest.mark.parametrize("to_8bit", ["round", "high_byte"])
def test_to_8bit_reaches_the_pipeline_output(dpdd_dual, to_8bit):
    from kpac_tf.data import images, pixels

    targets = dummy_targets("val")
    validation = pipelines.evaluation_dataset(dpdd_dual, "validation", to_8bit)
    for _, sharp, (name,) in first(validation, 2):
        png = images.read_image(targets[name.decode()])
        np.testing.assert_array_equal(
            sharp[0], pixels.to_network(pixels.to_uint8(png, to_8bit)))
    (_, rounded), = first(pipelines.training_dataset(dpdd_dual, crop_size=8, batch_size=2))
    (_, crops), = first(pipelines.training_dataset(dpdd_dual, crop_size=8, batch_size=2,
                                              to_8bit=to_8bit))
    assert (to_8bit == "round") == np.array_equal(rounded, crops)  # same crops, same seed
    assert np.abs(rounded - crops).max() <= 1 / 127.5 + 1e-6


def test_bad_to_8bit_is_named(dpdd_dual):
    with pytest.raises(ValueError, match="to_8bit must be one of"):
        pipelines.evaluation_dataset(dpdd_dual, "validation", to_8bit="truncate")


def test_dataset_config_defaults():
    assert pipelines.dataset_config("dpdd", "single_2level") == "single"
    assert pipelines.dataset_config("dpdd", "dual") == "dual"
    assert pipelines.dataset_config("synthetic", "dual") == "default"
    assert pipelines.dataset_config("synthetic", "single_2level", "tiny") == "tiny"


def test_flips_move_every_view_together_and_swap_dual_views(tmp_path):
    """A mirrored crop mirrors every view and swaps left and right (a mirrored left
    view looks like a right view); upside-down turns every view."""
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    ramp = np.repeat((rows * 16 + cols)[..., None], 3, axis=-1).astype(np.uint8)
    left, right = ramp + 128, 255 - ramp
    training_cache._write_images(str(tmp_path), [(
        "scene", {"center": ramp, "left": left, "right": right, "sharp": ramp})])
    source = training_cache._open_images(str(tmp_path))
    seen = set()
    for (center, left_crop, right_crop), sharp in first(
            pipelines._crop_stream(source, 8, 4, True, seed=0, start=0), 8):
        for j in range(4):
            mirrored = bool(sharp[j][0, 0, 0] > sharp[j][0, -1, 0])
            upside_down = bool(sharp[j][0, 0, 0] > sharp[j][-1, 0, 0])
            seen.add((mirrored, upside_down))

            def flip(image):
                image = image[:, ::-1] if mirrored else image
                return to_network(image[::-1] if upside_down else image)

            np.testing.assert_array_equal(sharp[j], flip(ramp))
            np.testing.assert_array_equal(center[j], flip(ramp))
            np.testing.assert_array_equal(left_crop[j], flip(right if mirrored else left))
            np.testing.assert_array_equal(right_crop[j], flip(left if mirrored else right))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}
    (_, plain), = first(pipelines._crop_stream(source, 8, 4, False, seed=0, start=0))
    assert all(np.array_equal(crop, to_network(ramp)) for crop in plain)


def test_no_flips_by_default(synthetic):
    full = [s[0] for _, s, _ in first(pipelines.evaluation_dataset(synthetic, "train"), 6)]
    (_, sharp), = first(pipelines.training_dataset(synthetic, crop_size=24, batch_size=4))
    for crop in sharp:
        assert any(find_window(f, crop) is not None for f in full)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
        pipelines.get_builder("imagenet")
