"""Loading a model for deblurring from any source: the bundled model, a `.keras`
file, a training run folder, an authors' `.npz` or an exported SavedModel (on a local
disk or any filesystem TensorFlow reads). `load_deblurrer` is the one loader.
"""

import os

import keras
import tensorflow as tf
from absl import logging

from kpac_tf.checkpoints.errors import CheckpointError, NetworkNameError
from kpac_tf.checkpoints.tf1_npz import load_tf1_npz
from kpac_tf.deploy import bundled, export
from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.models.networks import MODEL_NAMES, build_model
from kpac_tf.training import run_folder
from kpac_tf.training.warm_start import initialize_weights
from kpac_tf.utils.files import is_remote


def _saved_model_folder(path):
    """`path` if it is a SavedModel, its newest numeric version folder if it is an
    export base folder (TF Serving's layout), else None; on a local disk or any
    filesystem TensorFlow reads (gs://, ...)."""
    def join(*parts):
        return "/".join(part.rstrip("/") for part in parts)

    if tf.io.gfile.exists(join(path, "saved_model.pb")):
        return path
    if not tf.io.gfile.isdir(path):
        return None
    versions = [int(n.rstrip("/")) for n in tf.io.gfile.listdir(path)
                if n.rstrip("/").isdigit()
                and tf.io.gfile.exists(join(path, n, "saved_model.pb"))]
    return join(path, str(max(versions))) if versions else None


def _keras_model(source, name):
    """A keras.Model from a checkpoint source (see `load_deblurrer`)."""
    if source is None:
        network = bundled.bundled_info()["network"]
        if name not in (None, network):
            raise NetworkNameError(
                f"{bundled.INFO_PATH}: the bundled model is {network!r}, not {name!r}; "
                "drop the network name or give a checkpoint")
        logging.warning("No checkpoint given: using the bundled %s", bundled.label(network))
        return load_tf1_npz(build_model(network), bundled.weights_path())
    if not tf.io.gfile.exists(source):
        raise CheckpointError(
            f"{source}: no such file or folder; expected a .keras file, a training run "
            "folder, an authors' .npz (with the network name) or an exported SavedModel")
    if source.endswith(".keras"):
        return keras.models.load_model(source)
    overrides = {}
    if tf.io.gfile.isdir(source) and run_folder.is_run(source):
        run = run_folder.read_config(source)
        if name not in (None, run["model"]):
            raise NetworkNameError(
                f"{source}: this run trained {run['model']!r}, not {name!r}; drop the "
                "network name or give another checkpoint")
        name, overrides = run["model"], run.get("model_overrides", {})
    if name is None:
        raise NetworkNameError(
            f"{source}: name the network (one of {', '.join(MODEL_NAMES)}) to load this "
            "checkpoint")
    return initialize_weights(build_model(name, **overrides), source)


def load_deblurrer(source=None, name=None, precision="float32"):
    """The one way to load a model for deblurring, from any source.

    Args:
        source: str, PathLike or None. None: the bundled model (`kpac_tf.deploy.bundled`, a
            network trained on synthetic defocus, not DPDD; a warning says so).
            Otherwise a `.keras` file; a training run folder (`experiments.train`'s
            model_dir: its config.json names the network); an authors' `.npz`
            (`single_2level.npz`, ...; needs `name`); or a SavedModel exported by
            `experiments.export` (a version folder, or the export folder: its newest
            version).
        name: str or None, network name (`MODEL_NAMES`) for sources that do not
            record it.
        precision: "float32" or "bfloat16" (Keras sources; a SavedModel runs as
            exported).

    Returns:
        `Deblurrer`: call it on a uint8/uint16 photo to get the deblurred photo.

    Raises:
        CheckpointError: missing, unreadable or mismatched source; its subclass
            NetworkNameError for a missing name or one the source contradicts.

    Example:
    >>> deblurrer = kpac_tf.load_deblurrer("single_2level.npz", "single_2level")
    >>> sharp = deblurrer(photo)    # uint8 (h, w, 3) -> uint8 (h, w, 3)
    """
    source = None if source is None else os.fspath(source)
    saved_model = None if source is None else _saved_model_folder(source)
    if saved_model is not None:
        return _saved_model_deblurrer(saved_model)
    return Deblurrer.from_keras(_keras_model(source, name), precision,
                                source or "the bundled model")


def _saved_model_deblurrer(path):
    """A `Deblurrer` over an export of `kpac_tf.deploy.export` (its `float` signature)."""
    loaded = tf.saved_model.load(path)
    if export.FLOAT_SIGNATURE not in loaded.signatures:
        raise CheckpointError(f"{path}: SavedModel has no {export.FLOAT_SIGNATURE!r} "
                              "signature; export it with experiments.export")
    signature = loaded.signatures[export.FLOAT_SIGNATURE]
    names = set(signature.structured_input_signature[1])
    keys = export.DUAL_INPUTS if names == set(export.DUAL_INPUTS) else export.SINGLE_INPUTS
    num_inputs = len(keys)

    def predict(inputs):
        views = inputs if num_inputs == 3 else (inputs,)
        unit = {k: (tf.convert_to_tensor(v, tf.float32) + 1.0) / 2.0
                for k, v in zip(keys, views)}
        return signature(**unit)[export.OUTPUT] * 2.0 - 1.0

    predict.loaded = loaded  # keeps the SavedModel alive
    parts = path.rstrip("/").split("/") if is_remote(path) else \
        os.path.normpath(os.path.abspath(path)).split(os.sep)
    name = parts[-2] if parts[-1].isdigit() and len(parts) > 1 else parts[-1]
    return Deblurrer(predict, name, num_inputs, source=path)
