"""Shared pytest fixtures: quiet TensorFlow, locate the reference vectors."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_DIR = pathlib.Path(
    os.environ.get("KPAC_REFERENCE_DIR", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir():
    """Folder of the authors'-graph reference vectors (tf1_{2,3}level_*.npz)."""
    if not (REFERENCE_DIR / "tf1_2level_io.npz").exists():
        pytest.fail(f"reference vectors not found in {REFERENCE_DIR}: they sit in the "
                    "project's shared/reference folder beside the clone; point "
                    "KPAC_REFERENCE_DIR at a copy")
    return REFERENCE_DIR


@pytest.fixture
def rng():
    return np.random.RandomState(1234)


@pytest.fixture(autouse=True)
def absl_flags_parsed():
    """The apps read absl flags; tests set them with flagsaver instead of argv."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory):
    """A VGG19 no-top weights file the tests make themselves (random, not ImageNet)."""
    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("vgg") / "vgg19_notop.weights.h5")
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return path
