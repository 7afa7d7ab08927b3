"""Files written by kpac-tf 0.1.0, before kpac_tf became subpackages, still load and
compute the same (tests/data/saved_by_0.1.0/, README there): `.keras` files of the
three networks, and a training run folder that loads and resumes."""

import json
import pathlib
import shutil

import keras
import numpy as np
import pytest

import kpac_tf
from kpac_tf.training import loop, run_folder, settings
SAVED = pathlib.Path(__file__).resolve().parent / "data" / "saved_by_0.1.0"


@pytest.fixture(scope="module")
def expected():
    with np.load(SAVED / "expected_outputs.npz") as arrays:
        return dict(arrays)


@pytest.mark.parametrize("name", kpac_tf.MODEL_NAMES)
def test_keras_files_load_and_compute_what_they_did(name, expected):
    model = keras.models.load_model(SAVED / f"{name}_c4.keras")
    inputs = ([expected[f"{name}_input{i}"] for i in range(3)] if name == "dual"
              else expected[f"{name}_input"])
    np.testing.assert_array_equal(model(inputs).numpy(), expected[f"{name}_output"])


def test_a_run_folder_loads_as_it_did(expected):
    deblurrer = kpac_tf.load_deblurrer(SAVED / "run_single_2level_c4")
    np.testing.assert_array_equal(deblurrer(expected["run_photo"]), expected["run_deblurred"])


def test_a_run_folder_resumes(tmp_path, data_dir, caplog):
    run = tmp_path / "run"
    shutil.copytree(SAVED / "run_single_2level_c4", run)
    saved = json.loads((run / run_folder.CONFIG).read_text())
    assert "perceptual_weight" in saved and "loss" not in saved  # from before `loss`
    recorded = settings.recorded_settings(str(run))  # in today's terms
    identity = {k: recorded[k] for k in settings.IDENTITY if k != "workers"}
    config = settings.TrainConfig(**dict(identity, model_dir=str(run), data_dir=data_dir,
                                         steps=4, eval_every=2, save_every=2,
                                         eval_images=1, log_every=1))
    with caplog.at_level("INFO", logger="absl"):
        final = loop.train(config)
    assert "Restored from step 2" in caplog.text
    assert final["step"] == 4 and run_folder.latest_step(run) == 4
