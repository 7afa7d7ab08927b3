"""TFDS tests of the DPDD builder on dummy_data/ (the archive's real layout and
naming: a scene's files are paired by position, their names differ)."""

import tensorflow_datasets as tfds

from kpac_tf.datasets.dpdd import dpdd_dataset_builder, make_dummy_data


class DpddSingleTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = dpdd_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["single"]
    SPLITS = {"train": 3, "validation": 2, "test": 2}
    SKIP_CHECKSUMS = True


class DpddDualTest(DpddSingleTest):
    BUILDER_CONFIG_NAMES_TO_TEST = ["dual"]


if __name__ == "__main__":
    tfds.testing.test_main()


# Pairing, content, bad input: every failure names the file and leaves nothing in
# data_dir.

import pathlib  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402

DUMMY = pathlib.Path(__file__).parent / "dummy_data" / "dd_dp_dataset_canon"


def _build(manual_dir, data_dir, config="single"):
    builder = dpdd_dataset_builder.Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _files(data_dir):
    """Files in data_dir, less TFDS's own `.config/metadata.json` (written up front)."""
    return sorted(str(p) for p in pathlib.Path(data_dir).rglob("*")
                  if p.is_file() and p.parent.name != ".config")


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "manual" / "dd_dp_dataset_canon"
    shutil.copytree(DUMMY, root)
    return root


@pytest.mark.parametrize("config", ["single", "dual"])
def test_scenes_pair_by_position_and_belong_together(tmp_path, config):
    """Every example's views hold one scene's pixels, though their names differ."""
    import tensorflow as tf

    builder = _build(DUMMY.parent, tmp_path / "data", config)
    views = {"image": "source", "target": "target", "left": "left", "right": "right"}
    scenes = [pair for pairs in make_dummy_data.SCENES.values() for pair in pairs]
    for split, folder in (("train", "train"), ("validation", "val"), ("test", "test")):
        seen = []
        for example in builder.as_dataset(split=split):
            name = example["name"].numpy().decode()
            target_name = example["target_name"].numpy().decode()
            scene = scenes.index((name, target_name[:-len(".png")]))
            for feature, view in views.items():
                if feature in example:
                    assert example[feature].dtype == tf.uint16
                    assert make_dummy_data.decode(example[feature].numpy()) == (scene, view)
            seen.append((name, target_name[:-len(".png")]))
        assert sorted(seen) == make_dummy_data.SCENES[folder]


def _corrupt_png(root):
    path = root / "val_c" / "target" / "1P0A0982.png"
    path.write_bytes(path.read_bytes()[:40])
    return "val_c/target/1P0A0982.png.*not a readable PNG"


def _other_size(root):
    import tensorflow as tf
    path = root / "test_c" / "target" / "1P0A0916.png"
    path.write_bytes(tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint16)).numpy())
    return "1P0A0917.*differ in size.*test_c/target/1P0A0916.png 8x8"


@pytest.mark.parametrize("config,breaks", [
    ("single", lambda root: (shutil.rmtree(root / "test_c" / "target"),
                             "DPDD folder missing: .*test_c/target")[1]),
    ("single", _corrupt_png),
    ("single", _other_size),
])
def test_bad_archives_fail_clearly_and_write_nothing(archive, tmp_path, config, breaks):
    pattern = breaks(archive)
    data_dir = tmp_path / "data"
    with pytest.raises((ValueError, FileNotFoundError), match=pattern):
        _build(archive.parent, data_dir, config)
    assert _files(data_dir) == []


@pytest.mark.parametrize("config,missing,pattern", [
    ("single", "test_c/target/1P0A0985.png",
     r"test_c/source 2, .*test_c/target 1\b"),
    ("dual", "val_r/source/1P0A0894_R.png",
     r"val_c/source 2, .*val_c/target 2, .*val_l/source 2, .*val_r/source 1\b"),
])
def test_unequal_folders_fail_before_anything_is_read(archive, tmp_path, monkeypatch,
                                                      config, missing, pattern):
    """A split whose folders hold different numbers of PNGs cannot be paired by
    position: the error lists every folder with its count before any PNG is read or
    any split written (the broken split is the last one listed)."""
    (archive / missing).unlink()
    monkeypatch.setattr(dpdd_dataset_builder, "_read_png", pytest.fail)
    data_dir = tmp_path / "data"
    with pytest.raises(ValueError, match="DPDD: the view folders hold different numbers "
                                         "of images.*" + pattern):
        _build(archive.parent, data_dir, config)
    assert _files(data_dir) == []


def test_missing_manual_dir_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="DPDD not found in --manual_dir=.*train_c"):
        _build(tmp_path, tmp_path / "data")


def test_stores_16_bit_pngs_losslessly(archive, tmp_path):
    import tensorflow as tf
    builder = _build(archive, tmp_path / "data", "dual")
    assert builder.info.metadata["stand_in"] is False
    for example in builder.as_dataset(split="validation"):
        name = example["name"].numpy().decode()
        target_name = example["target_name"].numpy().decode()
        for feature, path in (("image", f"val_c/source/{name}.png"),
                              ("target", f"val_c/target/{target_name}"),
                              ("left", f"val_l/source/{name}_L.png"),
                              ("right", f"val_r/source/{name}_R.png")):
            original = tf.io.decode_png((archive / path).read_bytes(), dtype=tf.uint16)
            assert (example[feature].numpy() == original.numpy()).all()
