"""Shared pytest fixtures: quiet TensorFlow, the reference vectors in tests/data/; the
order files run in under README's `-n 2 --dist loadfile`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

from tests.test_case import REPO  # noqa: E402

REFERENCE_DIR = REPO / "tests" / "data"

# The slowest files, slowest first (`pytest --durations=0`): handed out first, so that
# the two workers of README's test command finish together instead of one running the
# last long file alone (xdist would otherwise queue files by their number of tests,
# which puts these few-test, many-process files last).
SLOWEST_FILES = ["tests/kpac_tf/training/test_loop.py", "tests/kpac_tf/training/test_cluster.py",
                 "tests/kpac_tf/deploy/test_export.py", "tests/test_installed.py",
                 "tests/experiments/test_train.py", "tests/test_cloud_storage.py",
                 "tests/test_dpdd_full_size.py", "tests/kpac_tf/deploy/test_shipping.py",
                 "tests/experiments/test_export.py", "tests/experiments/test_deblur.py"]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's, when installed
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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
