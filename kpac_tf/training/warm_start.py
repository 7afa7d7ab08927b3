"""Starting weights from any checkpoint kind (`--init_from`, and `load_deblurrer` for
run folders): a `.keras` file, an authors' `.npz`, or a training run."""

import os

import keras
import tensorflow as tf

from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.checkpoints.tf1_npz import load_tf1_npz
from kpac_tf.training import run_folder


def _assign_keras_weights(model, source, path):
    ours, theirs = model.weights, source.weights
    if len(ours) != len(theirs):
        raise CheckpointError(f"{path}: holds {len(theirs)} weights, model {model.name!r} "
                              f"has {len(ours)}")
    for mine, other in zip(ours, theirs):
        if tuple(mine.shape) != tuple(other.shape):
            raise CheckpointError(f"{path}: weight {other.path} has shape "
                                  f"{tuple(other.shape)}, model expects {tuple(mine.shape)} "
                                  f"({mine.path})")
    for mine, other in zip(ours, theirs):
        mine.assign(other)


def initialize_weights(model, path):
    """Copies weights into an existing `model` from a `.keras` file, an authors'
    `.npz`, or a training run (its model_dir or checkpoint folder). All or nothing.

    Warm starts (`--init_from`) and `kpac_tf.load_deblurrer` use it; to load a
    model for deblurring, use `load_deblurrer`.

    Raises:
        CheckpointError: unreadable, missing, or not matching the model.
    """
    path = os.fspath(path)
    if path.endswith(".npz"):
        load_tf1_npz(model, path)
    elif path.endswith(".keras"):
        if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
            raise CheckpointError(f"{path}: no such Keras model file")
        _assign_keras_weights(model, keras.models.load_model(path), path)
    elif tf.io.gfile.isdir(path):
        latest = run_folder.newest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no training checkpoint found (expected a "
                                  "run's model_dir or its checkpoints/ folder)")
        damage = run_folder.checkpoint_damage(latest)
        if damage:
            raise CheckpointError(f"{latest}: damaged ({damage}); load another of the "
                                  "run's files instead (its model.keras, or "
                                  "checkpoints/best)")
        staging = keras.models.clone_model(model)
        try:
            tf.train.Checkpoint(model=staging).restore(latest).expect_partial() \
                .assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
            raise CheckpointError(f"{latest}: cannot restore it into model {model.name!r} "
                                  f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
        _assign_keras_weights(model, staging, latest)
    else:
        raise CheckpointError(f"{path}: expected a .keras file, an authors' .npz, or a "
                              "training run folder")
    return model
