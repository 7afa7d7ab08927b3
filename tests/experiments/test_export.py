"""experiments/export (with deblur): each format written; an npz to a served model to
a deblurred folder."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app
from absl.testing import flagsaver

from experiments import deblur as deblur_app, export as export_app
from kpac_tf import build_model, deblur, load_deblurrer, save_tf1_npz
from kpac_tf.data import images
from tests.test_case import DPDD_DUMMY, no_os_calls_on


def test_npz_to_served_model_to_deblurred_folder(tmp_path, rng):
    """The user path: authors' npz -> export -> deblur a folder with the SavedModel."""
    npz = tmp_path / "weights.npz"
    save_tf1_npz(build_model("single_2level"), npz)
    with flagsaver.flagsaver(checkpoint=str(npz), model="single_2level",
                             export_dir=str(tmp_path / "serving")):
        export_app.main(["export"])
    photos = tmp_path / "photos"
    photos.mkdir()
    images.write_png(photos / "odd.png", rng.randint(0, 65536, (45, 67, 3)).astype(np.uint16))
    images.write_png(photos / "rgba.png", rng.randint(0, 256, (32, 40, 4)).astype(np.uint8))
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "serving" / "1"), model=None,
                             input=str(photos), output=str(tmp_path / "out")):
        deblur_app.main(["deblur"])
    odd = images.read_image(tmp_path / "out" / "odd.png")
    assert odd.dtype == np.uint16 and odd.shape == (45, 67, 3)
    keras_out = deblur(load_deblurrer(str(npz), "single_2level"),
                       images.read_image(photos / "odd.png"))
    assert np.abs(odd.astype(int) - keras_out.astype(int)).max() <= 2
    rgba = images.read_image(tmp_path / "out" / "rgba.png")
    np.testing.assert_array_equal(rgba[..., 3], images.read_image(photos / "rgba.png")[..., 3])
    # The evaluation app takes the SavedModel too.

    from experiments import evaluate as evaluate_app

    with flagsaver.flagsaver(checkpoint=str(tmp_path / "serving" / "1"), model=None,
                             input_dir=str(DPDD_DUMMY / "dd_dp_dataset_canon"),
                             split="val", output_dir=str(tmp_path / "eval")):
        evaluate_app.main(["evaluate"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"] == 2


def test_export_app_writes_each_format(tmp_path):
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    common = dict(checkpoint=str(tmp_path / "m.keras"), model=None)
    for fmt, output in (("litert", "k.tflite"), ("onnx", "k.onnx")):
        with flagsaver.flagsaver(format=fmt, output=str(tmp_path / output), **common):
            export_app.main(["export"])
        assert (tmp_path / output).stat().st_size > 0
    with flagsaver.flagsaver(format="onnx", **common):
        with pytest.raises(app.UsageError, match="--format=onnx needs --output"):
            export_app.main(["export"])
    with flagsaver.flagsaver(format="onnx", output=str(tmp_path / "x.onnx"),
                             litert_weights="int8", **common):
        with pytest.raises(app.UsageError, match="--litert_weights applies to --format=litert"):
            export_app.main(["export"])
    with flagsaver.flagsaver(format="saved_model", output=str(tmp_path / "x"), **common):
        with pytest.raises(app.UsageError, match="--output is not used by --format=saved_model"):
            export_app.main(["export"])
    with flagsaver.flagsaver(format="litert", output=str(tmp_path / "no" / "k.tflite"),
                             **common):
        with pytest.raises(SystemExit, match="output folder .*no does not exist"):
            export_app.main(["export"])
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x").exists()


def test_cloud_storage_exports_and_serves(tmp_path, rng, monkeypatch):
    """ram:// stands in for gs://: the export app writes a version there, deblur and
    evaluate load it from there, evaluate and compare write their results there, and
    nothing local is written but what was asked for (no "ram:" folder). A whole run
    on cloud storage: tests/test_cloud_storage.py."""
    from experiments import compare as compare_app
    from experiments import evaluate as evaluate_app

    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    photos = tmp_path / "photos"
    photos.mkdir()
    images.write_png(photos / "a.png", rng.randint(0, 256, (20, 30, 3)).astype(np.uint8))
    pairs = tmp_path / "pairs"
    for view in ("blurry", "sharp"):
        (pairs / view).mkdir(parents=True)
        images.write_png(pairs / view / "p.png",
                         rng.randint(0, 256, (24, 32, 3)).astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    with no_os_calls_on("ram://"):
        with flagsaver.flagsaver(checkpoint=str(tmp_path / "m.keras"), model=None,
                                 export_dir="ram://serving/app"):
            export_app.main(["export"])
        with flagsaver.flagsaver(checkpoint="ram://serving/app", model=None,
                                 input=str(photos), output=str(tmp_path / "out")):
            deblur_app.main(["deblur"])
        with flagsaver.flagsaver(checkpoint="ram://serving/app", model=None,
                                 input_dir=str(pairs), output_dir="ram://eval"):
            evaluate_app.main(["evaluate"])
        with flagsaver.flagsaver(checkpoint="ram://serving/app", model=None,
                                 baseline=str(tmp_path / "m.keras"), input_dir=str(pairs),
                                 output_dir="ram://compare"):
            compare_app.main(["compare"])
    assert images.read_image(tmp_path / "out" / "a.png").shape == (20, 30, 3)
    with tf.io.gfile.GFile("ram://eval/metrics.json") as f:
        assert json.load(f)["images"] == 1
    assert tf.io.gfile.exists("ram://eval/per_image.csv")
    assert tf.io.gfile.exists("ram://eval/images/p.png")
    assert tf.io.gfile.exists("ram://eval/report.png")
    with tf.io.gfile.GFile("ram://compare/comparison.json") as f:
        assert set(json.load(f)) >= {"a", "b", "protocol", "metrics"}
    assert tf.io.gfile.exists("ram://compare/a/per_image.csv")
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "out", "pairs", "photos"]
