"""kpac_tf.training.warm_start: --init_from an npz, a .keras file or a run folder;
checkpoints that cannot be restored are named."""

import glob
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import CheckpointError, build_model
from kpac_tf.training import loop, warm_start
from tests.test_case import tiny_config, weights_of


@pytest.mark.parametrize("source", ["npz", "keras", "run"])
def test_init_from(tmp_path, data_dir, source):
    first = tmp_path / "first"
    loop.train(tiny_config(first, data_dir, steps=2))
    path = {"npz": first / "weights_tf1.npz", "keras": first / "model.keras",
            "run": first}[source]
    second = tmp_path / "second"
    loop.train(tiny_config(second, data_dir, steps=0, init_from=str(path)))
    for a, b in zip(weights_of(first), weights_of(second)):
        np.testing.assert_array_equal(a, b)


def _checkpointed_run(folder, model):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         str(folder / "checkpoints"), max_to_keep=1)
    return manager.save()


def test_a_run_whose_checkpoint_cannot_be_restored_is_named(tmp_path):
    """Missing files of a listed checkpoint, or another network's checkpoint: a
    CheckpointError naming the checkpoint, never a TensorFlow traceback."""
    other = tmp_path / "other"
    saved = _checkpointed_run(other, build_model("single_2level", channels=8))
    with pytest.raises(CheckpointError, match=f"{re.escape(saved)}: cannot restore it"):
        warm_start.initialize_weights(build_model("single_2level", channels=4), other)
    broken = tmp_path / "broken"
    saved = _checkpointed_run(broken, build_model("single_2level", channels=4))
    for data in glob.glob(saved + ".data-*"):
        os.remove(data)
    with pytest.raises(CheckpointError, match=f"{re.escape(saved)}: damaged"):
        warm_start.initialize_weights(build_model("single_2level", channels=4), broken)
