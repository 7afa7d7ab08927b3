"""Shared pytest fixtures: quiet TensorFlow, the reference vectors in tests/data/."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

from tests.test_case import REPO  # noqa: E402

REFERENCE_DIR = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def reference_dir():
    """tests/data/ (its README lists the files): random weights in the authors' format
    and what the authors' TF1 code computed from them (tf1_*), and LPIPS reference
    vectors made by the `lpips` package (lpips_*)."""
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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A TFDS data folder holding the synthetic `tiny` config (one per test module)."""
    from kpac_tf.data import pipelines

    path = str(tmp_path_factory.mktemp("tfds"))
    pipelines.prepare("synthetic", path, "tiny")
    return path
