"""kpac_tf.load_deblurrer: one loader for every source; what it returns deblurs photos."""

import logging
import pathlib
import re

import imageio.v3 as iio
import numpy as np
import pytest

import kpac_tf
from kpac_tf import build_model
from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.data import pipelines
from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.deploy.export import export_saved_model
from kpac_tf.training import loop, settings

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    """A Deblurrer of a narrow single_2level (fast)."""
    return Deblurrer.from_keras(build_model("single_2level", channels=4))


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
    with caplog.at_level(logging.WARNING):
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


@pytest.mark.parametrize("shape,dtype", [
    ((37, 50, 3), np.uint8), ((2, 21, 30, 3), np.uint8), ((21, 30, 3), np.uint16),
    ((2, 21, 30, 3), np.uint16),
])
def test_photos_come_back_in_their_dtype_and_shape(tiny, rng, shape, dtype):
    image = rng.randint(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    out = tiny(image)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, kpac_tf.deblur(tiny, image))


def test_floats_keep_the_network_contract(tiny, rng):
    x = rng.uniform(-1, 1, (2, 24, 32, 3)).astype(np.float32)
    expected = tiny.keras_model(x).numpy()
    np.testing.assert_allclose(tiny(x), expected, atol=1e-5)
    single = tiny(x[0])
    assert single.dtype == np.float32 and single.shape == (24, 32, 3)
    np.testing.assert_allclose(single, expected[0], atol=1e-5)


@pytest.mark.parametrize("bad,shown", [
    (np.zeros((8, 8, 3), np.int32), "int32 (8, 8, 3)"),
    (np.zeros((8, 8, 2), np.float32), "float32 (8, 8, 2)"),
    (np.zeros((1, 2, 8, 8, 3), np.uint8), "uint8 (1, 2, 8, 8, 3)"),
    (np.zeros((8, 8, 5), np.uint8), "uint8 (8, 8, 5)"),
    ((np.zeros((8, 8, 3), np.uint8),) * 3, "one image, got 3"),
])
def test_wrong_inputs_say_what_was_given_and_what_is_expected(tiny, bad, shown):
    with pytest.raises(ValueError, match=re.escape(shown)) as error:
        tiny(bad)
    assert "(h, w" in str(error.value) or "one image" in str(error.value)


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, rng):
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using the library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    iio.imwrite("photo.jpg", rng.randint(0, 256, (60, 90, 3)).astype(np.uint8))
    exec(compile(code, "README.md", "exec"), {})
    sharp = iio.imread("sharp.png")
    assert sharp.shape == (60, 90, 3) and sharp.dtype == np.uint8
