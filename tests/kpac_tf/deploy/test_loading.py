"""kpac_tf.deploy.loading: one loader for every source, each giving the same network,
and bad sources named with the fix."""

import logging

import numpy as np
import pytest

import kpac_tf
from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.data import pipelines
from kpac_tf.deploy.export import export_saved_model
from kpac_tf.training import loop, settings


@pytest.fixture
def photo(rng):
    return rng.randint(0, 256, (37, 50, 3)).astype(np.uint8)


def test_every_source_loads_the_same_network(reference_dir, tmp_path, photo):
    npz = reference_dir / "tf1_2level_weights.npz"
    from_npz = kpac_tf.load_deblurrer(npz, "single_2level")
    expected = from_npz(photo)
    keras_file = tmp_path / "model.keras"
    from_npz.keras_model.save(keras_file)
    np.testing.assert_array_equal(kpac_tf.load_deblurrer(keras_file)(photo), expected)
    version = export_saved_model(from_npz.keras_model, str(tmp_path / "serving"))
    for saved_model in (version, tmp_path / "serving"):  # a version, or the newest one
        served = kpac_tf.load_deblurrer(saved_model)
        assert served.keras_model is None and served.num_inputs == 1
        # The SavedModel rounds through [0, 1] floats: at most one 8-bit level apart.
        assert np.abs(served(photo).astype(int) - expected).max() <= 1


def test_a_training_run_folder_names_its_own_network(tmp_path, photo):
    data_dir = str(tmp_path / "tfds")
    pipelines.prepare("synthetic", data_dir, "tiny")
    config = settings.make_config(
        None, model_dir=str(tmp_path / "run"), dataset="synthetic", dataset_config="tiny",
        data_dir=data_dir, steps=2, batch_size=2, crop_size=32, eval_every=2,
        save_every=2, eval_images=1, model_overrides={"channels": 4})
    loop.train(config)
    loaded = kpac_tf.load_deblurrer(config.model_dir)
    final = kpac_tf.load_deblurrer(tmp_path / "run" / "model.keras")
    assert loaded.params == final.params  # channels=4 came from the run's config.json
    np.testing.assert_array_equal(loaded(photo), final(photo))
    with pytest.raises(CheckpointError, match="trained 'single_2level', not "
                                                          "'dual'"):
        kpac_tf.load_deblurrer(config.model_dir, "dual")


def test_no_source_is_the_bundled_model_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="absl"):
        deblurrer = kpac_tf.load_deblurrer()
    network = kpac_tf.deploy.bundled.bundled_info()["network"]
    assert deblurrer.params == kpac_tf.build_model(network).count_params()
    assert f"{network} trained on synthetic defocus, not DPDD" in caplog.text


@pytest.mark.parametrize("source,name,match", [
    ("tf1_2level_weights.npz", None, "name the network"),
    ("missing.npz", "single_2level", "no such"),
    ("missing_folder", None, "no such file or folder"),
])
def test_bad_sources_name_the_file_and_the_fix(reference_dir, source, name, match):
    with pytest.raises(CheckpointError, match=match):
        kpac_tf.load_deblurrer(reference_dir / source, name)
