"""kpac_tf.evaluation.items: scenes from folders and datasets, one at a time."""

import numpy as np
import pytest

from kpac_tf import Deblurrer, build_model, save_tf1_npz
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.data import images
from kpac_tf.evaluation import items as evaluation_items, scoring
from tests.test_case import DPDD_DUMMY, count_examples_read


def test_dual_model_on_a_dpdd_layout_folder(tmp_path, capsys):
    save_tf1_npz(build_model("dual", channels=4), tmp_path / "dual.npz")
    model = build_model("dual", channels=4)
    tf1_npz.load_tf1_npz(model, tmp_path / "dual.npz")
    items = evaluation_items.folder_items(str(DPDD_DUMMY / "dd_dp_dataset_canon"), "val",
                                          dual=True)
    summary = scoring.evaluate(Deblurrer.from_keras(model), items, str(tmp_path / "out"))
    assert summary["images"] == 2 and np.isfinite(summary["psnr"])


def test_blurry_sharp_folders_of_odd_sizes(tmp_path, rng):
    for folder in ("blurry", "sharp"):
        (tmp_path / folder).mkdir()
    for name, (h, w) in {"a": (37, 50), "b": (21, 19)}.items():
        sharp = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        images.write_png(tmp_path / "sharp" / f"{name}.png", sharp)
        images.write_png(tmp_path / "blurry" / f"{name}.png", sharp // 2)
    items = evaluation_items.folder_items(str(tmp_path), "test", dual=False)
    deblurrer = Deblurrer.from_keras(build_model("single_3level", channels=4))
    summary = scoring.evaluate(deblurrer, items, str(tmp_path / "out"))
    assert summary["images"] == 2
    assert images.read_image(tmp_path / "out" / "images" / "a.png").shape == (37, 50, 3)


def test_dataset_stream_reads_at_most_two_scenes_ahead(tmp_path, monkeypatch):
    """While one scene is scored, the split is not read far ahead: the scene in hand,
    the one prefetched and the one being decoded (with TFDS's and tf.data's default
    buffering, 4-6 of these 6 examples were read by then)."""
    import time

    from kpac_tf.data import pipelines

    data_dir = str(tmp_path / "tfds")
    read = count_examples_read(pipelines.prepare("synthetic", data_dir, "tiny"), monkeypatch)
    items = evaluation_items.dataset_items("synthetic", "tiny", data_dir, None, "train",
                                   "single_2level")
    assert len(items) == 6 and not read  # counted from metadata, nothing read
    stream = iter(items)
    next(stream)
    time.sleep(1.0)  # time for any read-ahead to happen
    assert len(read) <= 3
    assert len(list(stream)) == 5 and len(read) == 6


def test_views_a_few_pixels_apart_are_a_crop_not_a_pair(tmp_path):
    for folder in ("blurry", "sharp"):
        (tmp_path / folder).mkdir()
    images.write_png(tmp_path / "blurry" / "a.png", np.zeros((40, 60, 3), np.uint8))
    images.write_png(tmp_path / "sharp" / "a.png", np.zeros((36, 56, 3), np.uint8))
    images.write_png(tmp_path / "blurry" / "b.png", np.zeros((40, 60, 3), np.uint8))
    images.write_png(tmp_path / "sharp" / "b.png", np.zeros((400, 60, 3), np.uint8))
    (_, crop), (_, other) = evaluation_items.folder_items(str(tmp_path), "test", dual=False)
    with pytest.raises(ValueError, match=r"differ in size by a few pixels \(.*blurry/a.png "
                                         r"is 60x40, .*sharp/a.png is 56x36\): one of them was "
                                         r"cropped"):
        crop()
    with pytest.raises(ValueError, match=r"differ in size \(.*\): check that these files "
                                         r"show the same scene"):
        other()
