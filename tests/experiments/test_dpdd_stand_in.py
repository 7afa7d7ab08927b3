"""experiments/dpdd_stand_in: an archive the DPDD builder pairs; another archive's
folder is refused."""

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from experiments import dpdd_stand_in as app
from kpac_tf.data import images, pipelines
from kpac_tf.datasets.dpdd import dpdd_dataset_builder, stand_in as dpdd_stand_in


COUNTS = {"train": 2, "val": 1, "test": 2}

HEIGHT, WIDTH = 48, 72


def _psnr(a, b):
    return float(tf.image.psnr(a.astype(np.float32), b.astype(np.float32), 65535.0))


def test_app_writes_an_archive_the_builder_pairs(tmp_path, capsys):
    output = tmp_path / "stand_in"
    with flagsaver.flagsaver(output=str(output), train=2, val=1, test=2, seed=5,
                             height=HEIGHT, width=WIDTH):
        app.main(["dpdd_stand_in"])
    printed = capsys.readouterr().out
    assert "NOT DPDD" in printed and "--data_dir=" in printed
    root = output / "dd_dp_dataset_canon"
    assert "NOT DPDD" in (root / dpdd_dataset_builder.STAND_IN_MARKER).read_text()
    names = dpdd_stand_in.capture_names(COUNTS, 5)
    for split, pairs in names.items():
        for source, target in pairs:
            for path in dpdd_stand_in.scene_paths(root, split, source, target).values():
                image = images.read_image(path)
                assert image.dtype == np.uint16 and image.shape == (HEIGHT, WIDTH, 3)
    assert not list(root.rglob(".tmp-*"))

    builder = pipelines.prepare("dpdd", str(tmp_path / "tfds"), "dual", output)
    assert builder.info.metadata["stand_in"] is True
    examples = [{k: v.numpy() for k, v in example.items()}
                for example in builder.as_dataset(split="test")]
    assert sorted((e["name"].decode(), e["target_name"].decode()[:-4]) for e in examples
                  ) == names["test"]
    for i, example in enumerate(examples):
        paths = dpdd_stand_in.scene_paths(root, "test", example["name"].decode(),
                                          example["target_name"].decode()[:-4])
        for feature, view in (("image", "source"), ("target", "target"),
                              ("left", "left"), ("right", "right")):
            np.testing.assert_array_equal(example[feature], images.read_image(paths[view]))
        # One scene's files belong together: the centre is the views' mean, and the
        # source resembles its own target far more than any other scene's.
        unit = {k: example[k] / 65535.0 for k in ("image", "left", "right")}
        np.testing.assert_allclose(
            unit["image"], dpdd_stand_in.combine_views(unit["left"], unit["right"]),
            atol=2 / 65535)
        own = _psnr(example["image"], example["target"])
        for j, other in enumerate(examples):
            if j != i:
                assert own > _psnr(example["image"], other["target"]) + 6


def test_app_refuses_a_folder_holding_another_archive(tmp_path):
    dpdd_stand_in.write_archive(tmp_path, {"train": 1, "val": 1, "test": 1}, seed=0,
                                height=32, width=32)
    before = sorted(tmp_path.rglob("*"))
    with flagsaver.flagsaver(output=str(tmp_path), train=1, val=1, test=1, seed=1,
                             height=32, width=32):
        with pytest.raises(SystemExit, match="dpdd_stand_in: .* holds 12 PNG files this "
                                             "run would not write.*empty --output"):
            app.main(["dpdd_stand_in"])
    assert sorted(tmp_path.rglob("*")) == before
