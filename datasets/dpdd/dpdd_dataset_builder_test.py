"""TFDS tests of the DPDD builder on dummy_data/ (the archive's real layout)."""

import tensorflow_datasets as tfds

from dpdd import dpdd_dataset_builder


class DpddSingleTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = dpdd_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["single"]
    SPLITS = {"train": 3, "validation": 2, "test": 2}
    SKIP_CHECKSUMS = True


class DpddDualTest(DpddSingleTest):
    BUILDER_CONFIG_NAMES_TO_TEST = ["dual"]


if __name__ == "__main__":
    tfds.testing.test_main()


# Bad input: every failure names the file and leaves nothing in data_dir.

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


def _corrupt_png(root):
    path = root / "val_c" / "target" / "1P0AVA01.png"
    path.write_bytes(path.read_bytes()[:40])
    return "val_c/target/1P0AVA01.png.*not a readable PNG"


def _other_size(root):
    import tensorflow as tf
    path = root / "test_c" / "target" / "1P0ATE00.png"
    path.write_bytes(tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint16)).numpy())
    return "1P0ATE00.*differ in size.*test_c/target/1P0ATE00.png 8x8"


@pytest.mark.parametrize("config,breaks", [
    ("single", lambda root: (shutil.rmtree(root / "test_c" / "target"),
                             "DPDD folder missing: .*test_c/target")[1]),
    ("single", lambda root: ((root / "train_c" / "target" / "1P0ATR01.png").unlink(),
                             "train_c/source/1P0ATR01.png has no target view")[1]),
    ("dual", lambda root: ((root / "val_r" / "source" / "1P0AVA00_R.png").unlink(),
                           "val_c/source/1P0AVA00.png has no right view")[1]),
    ("single", _corrupt_png),
    ("single", _other_size),
])
def test_bad_archives_fail_clearly_and_write_nothing(archive, tmp_path, config, breaks):
    pattern = breaks(archive)
    data_dir = tmp_path / "data"
    with pytest.raises((ValueError, FileNotFoundError), match=pattern):
        _build(archive.parent, data_dir, config)
    assert _files(data_dir) == []


def test_missing_manual_dir_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="DPDD not found in --manual_dir=.*train_c"):
        _build(tmp_path, tmp_path / "data")


def test_stores_16_bit_pngs_losslessly(archive, tmp_path):
    import tensorflow as tf
    builder = _build(archive, tmp_path / "data", "dual")
    example = next(iter(builder.as_dataset(split="validation").take(1)))
    name = example["name"].numpy().decode()
    original = tf.io.decode_png((archive / "val_l" / "source" / f"{name}_L.png").read_bytes(),
                                dtype=tf.uint16)
    assert example["left"].dtype == tf.uint16
    assert (example["left"].numpy() == original.numpy()).all()
