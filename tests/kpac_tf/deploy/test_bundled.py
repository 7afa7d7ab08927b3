"""kpac_tf.deploy.bundled: the bundled model, used by deblur and export without a
checkpoint, clearly labelled; missing or mislabelled weights are refused."""

import json
import os

import imageio
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from experiments import deblur as deblur_app, export as export_app
from kpac_tf import build_model
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.data.images import write_png
from kpac_tf.deploy import bundled
from kpac_tf.deploy.deblurring import deblur
from kpac_tf.deploy.loading import load_deblurrer
from kpac_tf.evaluation import metrics
from kpac_tf.rendering import synthetic


PARAMS = {"single_2level": 1_578_277, "single_3level": 2_057_893}


@pytest.fixture(params=bundled.NETWORKS)
def stand_in_weights(request, tmp_path, monkeypatch):
    """Random weights of each bundled network, put where the bundled ones live with
    provenance naming the network."""
    model = build_model(request.param)
    path = tmp_path / "weights" / "synthetic.npz"
    path.parent.mkdir()
    tf1_npz.save_tf1_npz(model, path)
    info = tmp_path / "weights" / "synthetic.json"
    info.write_text(json.dumps({"label": bundled.label(request.param),
                                "network": request.param}))
    monkeypatch.setattr(bundled, "WEIGHTS_PATH", str(path))
    monkeypatch.setattr(bundled, "INFO_PATH", str(info))
    return model


def test_missing_weights_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "WEIGHTS_PATH", str(tmp_path / "none.npz"))
    with pytest.raises(CheckpointError, match="none.npz: no bundled weights.*load a checkpoint"):
        load_deblurrer()


def test_apps_fall_back_to_the_bundled_model(stand_in_weights, tmp_path, rng):
    photo = tmp_path / "photo.png"
    write_png(photo, rng.randint(0, 256, (20, 28, 3)).astype(np.uint8))
    with flagsaver.flagsaver(checkpoint=None, model=None, input=str(photo),
                             output=str(tmp_path / "out.png")):
        deblur_app.main(["deblur"])
    expected = deblur(stand_in_weights, imageio.v3.imread(photo))
    got = imageio.v3.imread(tmp_path / "out.png")
    np.testing.assert_array_equal(got, expected)
    with flagsaver.flagsaver(checkpoint=None, model=None,
                             export_dir=str(tmp_path / "serving")):
        export_app.main(["export"])
    assert os.path.isfile(tmp_path / "serving" / "1" / "saved_model.pb")
    assert load_deblurrer().params == PARAMS[stand_in_weights.name]


def test_a_network_name_other_than_the_bundled_one_is_refused(stand_in_weights):
    other, = set(bundled.NETWORKS) - {stand_in_weights.name}
    with pytest.raises(CheckpointError,
                       match=f"synthetic.json: the bundled model is '{stand_in_weights.name}', "
                             f"not '{other}'"):
        load_deblurrer(None, other)
    assert load_deblurrer(None, stand_in_weights.name).name == stand_in_weights.name


@pytest.mark.parametrize("provenance,match", [
    ({"network": "dual"}, "synthetic.json: network 'dual' is not one of"),
    (["single_2level"], "synthetic.json: network None is not one of"),
    (None, "synthetic.json: no bundled weights.*load a checkpoint")])
def test_bad_or_missing_provenance_is_refused(stand_in_weights, provenance, match):
    if provenance is None:
        os.remove(bundled.INFO_PATH)
    else:
        with open(bundled.INFO_PATH, "w") as f:
            json.dump(provenance, f)
    with pytest.raises(CheckpointError, match=match):
        load_deblurrer()


def test_shipped_model_loads_and_deblurs_a_fixed_synthetic_sample():
    info = bundled.bundled_info()
    assert info["label"] == bundled.label(info["network"]) and "not DPDD" in info["label"]
    model = load_deblurrer().keras_model
    assert model.name == info["network"]
    assert model.count_params() == info["parameters"] == PARAMS[info["network"]]
    # A small fixed sample: the synthetic test split's generator (photographs never
    # trained on), first four scenes at 128x128.
    bank = synthetic.SourceBank("test")
    gains = []
    for index in range(4):
        example = synthetic.make_example(0, "test", index, bank, 128)
        output = deblur(model, example["blurry"])
        gains.append(_psnr(output, example["sharp"])
                     - _psnr(example["blurry"], example["sharp"]))
    assert min(gains) > 0 and np.mean(gains) > 1.0, gains


def _psnr(image, sharp):
    """PSNR (dB) of uint8 `image` against uint8 `sharp`."""
    return float(metrics.psnr(tf.constant(image[None] / 255.0, tf.float32),
                              tf.constant(sharp[None] / 255.0, tf.float32))[0])
