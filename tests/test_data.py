"""Input pipeline over both builders: crops, determinism, ranges, names."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from kpac_tf import data

REPO = pathlib.Path(__file__).resolve().parents[1]
DPDD_DUMMY = REPO / "datasets" / "dpdd" / "dummy_data"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return data.prepare("synthetic", str(tmp_path_factory.mktemp("tfds")), "tiny")


@pytest.fixture(scope="module")
def dpdd_dual(tmp_path_factory):
    return data.prepare("dpdd", str(tmp_path_factory.mktemp("tfds")), "dual",
                        manual_dir=DPDD_DUMMY)


def first(dataset, n=1):
    return [tf.nest.map_structure(lambda t: t.numpy(), x) for x in dataset.take(n)]


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
            (x for x in first(data.evaluation_dataset(synthetic, "train"), 6))}
    (blurry, sharp), = first(data.training_dataset(synthetic, crop_size=32, batch_size=3))
    assert blurry.shape == sharp.shape == (3, 32, 32, 3)
    assert blurry.dtype == np.float32 and -1 <= blurry.min() and blurry.max() <= 1
    for b, s in zip(blurry, sharp):
        hits = [(name, find_window(f_sharp, s)) for name, (_, f_sharp) in full.items()]
        name, window = next((n, w) for n, w in hits if w is not None)
        r, c = window
        np.testing.assert_array_equal(full[name][0][r:r + 32, c:c + 32], b)


def test_training_is_deterministic_in_the_seed(synthetic):
    def batches(seed):
        return first(data.training_dataset(synthetic, crop_size=16, batch_size=2,
                                           seed=seed), 4)

    a, b, c = batches(0), batches(0), batches(1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_crop_larger_than_images_fails_clearly(synthetic):
    with pytest.raises(tf.errors.InvalidArgumentError, match="crop_size 128 is larger"):
        first(data.training_dataset(synthetic, crop_size=128))


def test_evaluation_yields_full_images_with_names(synthetic):
    items = first(data.evaluation_dataset(synthetic, "test"), 3)
    assert sorted(name[0].decode() for _, _, name in items) == [
        "test_00000", "test_00001", "test_00002"]
    for blurry, sharp, _ in items:
        assert blurry.shape == sharp.shape == (1, 64, 64, 3)


def test_dual_config_yields_three_inputs(dpdd_dual):
    ((center, left, right), sharp), = first(
        data.training_dataset(dpdd_dual, crop_size=8, batch_size=2))
    assert center.shape == left.shape == right.shape == sharp.shape == (2, 8, 8, 3)
    (views, sharp, name), = first(data.evaluation_dataset(dpdd_dual, "validation"))
    assert len(views) == 3 and sharp.shape == (1, 16, 24, 3)
    assert name[0].decode() in ("1P0AVA00", "1P0AVA01")


def test_sixteen_bit_to_eight_bit_round_by_default_or_high_byte():
    values = tf.constant([0, 257, 257 * 128, 65535, 300, 0x12FF], tf.uint16)
    np.testing.assert_allclose(data.to_unit_range(values).numpy(),
                               np.array([0, 1, 128, 255, 1, 19]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(data.to_unit_range(values, "high_byte").numpy(),
                               np.array([0, 1, 128, 255, 1, 18]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(data.to_unit_range(tf.constant([0, 255], tf.uint8)), [-1, 1])


@pytest.mark.parametrize("to_8bit", ["round", "high_byte"])
def test_to_8bit_reaches_the_pipeline_output(dpdd_dual, to_8bit):
    from kpac_tf import images, pixels

    folder = DPDD_DUMMY / "dd_dp_dataset_canon" / "val_c" / "target"
    validation = data.evaluation_dataset(dpdd_dual, "validation", to_8bit)
    for _, sharp, (name,) in first(validation, 2):
        png = images.read_image(folder / f"{name.decode()}.png")
        np.testing.assert_array_equal(
            sharp[0], pixels.to_network(pixels.to_uint8(png, to_8bit)))
    (_, rounded), = first(data.training_dataset(dpdd_dual, crop_size=8, batch_size=2))
    (_, crops), = first(data.training_dataset(dpdd_dual, crop_size=8, batch_size=2,
                                              to_8bit=to_8bit))
    assert (to_8bit == "round") == np.array_equal(rounded, crops)  # same crops, same seed
    assert np.abs(rounded - crops).max() <= 1 / 127.5 + 1e-6


def test_bad_to_8bit_is_named(dpdd_dual):
    with pytest.raises(ValueError, match="to_8bit must be one of"):
        data.evaluation_dataset(dpdd_dual, "validation", to_8bit="truncate")


def test_dataset_config_defaults():
    assert data.dataset_config("dpdd", "single_2level") == "single"
    assert data.dataset_config("dpdd", "dual") == "dual"
    assert data.dataset_config("synthetic", "dual") == "default"
    assert data.dataset_config("synthetic", "single_2level", "tiny") == "tiny"


def test_flips_move_every_view_together_and_swap_dual_views():
    ramp = tf.tile(tf.range(8, dtype=tf.float32)[None, :, None], [8, 1, 3]) / 8
    example = {"center": ramp, "sharp": ramp, "left": tf.fill([8, 8, 3], -0.5),
               "right": tf.fill([8, 8, 3], 0.5)}
    seen_mirrored = seen_plain = False
    for seed in range(12):
        views = data._random_crop(example, 8, True, tf.constant([seed, 0], tf.int64))
        np.testing.assert_array_equal(views["center"], views["sharp"])
        mirrored = bool(views["sharp"][0, 0, 0] > views["sharp"][0, -1, 0])
        assert float(views["left"][0, 0, 0]) == (0.5 if mirrored else -0.5)
        seen_mirrored |= mirrored
        seen_plain |= not mirrored
    assert seen_mirrored and seen_plain


def test_no_flips_by_default(synthetic):
    full = [s[0] for _, s, _ in first(data.evaluation_dataset(synthetic, "train"), 6)]
    (_, sharp), = first(data.training_dataset(synthetic, crop_size=24, batch_size=4))
    for crop in sharp:
        assert any(find_window(f, crop) is not None for f in full)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
        data.get_builder("imagenet")


def test_prepare_data_app_builds_dpdd(tmp_path):
    from experiments import prepare_data

    with flagsaver.flagsaver(dataset="dpdd", dataset_config="single",
                             data_dir=str(tmp_path), manual_dir=str(DPDD_DUMMY)):
        prepare_data.main(["prepare_data"])
    assert data.get_builder("dpdd", str(tmp_path), "single").info.splits["test"].num_examples == 2
    with flagsaver.flagsaver(dataset="dpdd", dataset_config="single",
                             data_dir=str(tmp_path / "x"),
                             manual_dir=str(tmp_path / "missing")):
        with pytest.raises(SystemExit, match="prepare_data: "):
            prepare_data.main(["prepare_data"])


def test_does_not_shadow_huggingface_datasets(tmp_path):
    """With a regular `datasets` package installed, `import datasets` from the repo
    root still finds it (our datasets/ folder is not a package), and our builders
    still load."""
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("IS_HUGGINGFACE = True\n")
    script = ("import datasets; assert datasets.IS_HUGGINGFACE, datasets.__file__\n"
              "from kpac_tf import data\n"
              "print(data.get_builder('dpdd', config='single').name)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("dpdd")
    assert not (REPO / "datasets" / "__init__.py").exists()


@pytest.mark.parametrize("args", [
    ["datasets/synthetic_defocus", "--config=tiny"],
    ["datasets/dpdd", "--config=dual", f"--manual_dir={DPDD_DUMMY}"],
])
def test_tfds_command_line_builds(tmp_path, args):
    """The standard `tfds build` command works with the project's install."""
    tfds_cli = pathlib.Path(sys.executable).with_name("tfds")
    command = [str(tfds_cli)] if tfds_cli.exists() else [
        sys.executable, "-m", "tensorflow_datasets.scripts.cli.main"]
    out = subprocess.run(command + ["build", *args, f"--data_dir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(tmp_path.glob("*/*/*/dataset_info.json"))
