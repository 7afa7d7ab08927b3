"""Loading a model from any source and running it on photos of any size.

`load_deblurrer` is the one loader; the `Deblurrer` it returns pads to the network's
multiple, tiles large photos and converts uint8/uint16 photos to and from the
network range, float32 (batch, h, w, 3) in [-1, 1].
"""

import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.checkpoints.tf1_npz import load_tf1_npz
from kpac_tf.data import pixels
from kpac_tf.deploy import bundled, export, tiling
from kpac_tf.models.networks import MODEL_NAMES, build_model
from kpac_tf.models.forward import fast_predict_fn, model_size_multiple, predict_any_size
from kpac_tf.training import run_folder
from kpac_tf.training.warm_start import initialize_weights
from kpac_tf.utils.files import is_remote


class NonFiniteOutput(ValueError):
    """The network gave NaN or inf for a finite input: its weights are broken (the
    message names the network and where its weights came from)."""


class Deblurrer:
    """A network ready for photos and tensors of any size: a Keras model (traced once,
    no retracing for new sizes) or an exported SavedModel. Make one with
    `load_deblurrer`.

    Attributes:
        name: str, network name.
        num_inputs: int, 1 (single image) or 3 (centre, left, right).
        params: int or None, parameter count (None for a SavedModel).
        keras_model: keras.Model or None (None for a SavedModel).
        source: str, where the weights came from (a path, or "the bundled model"),
            for messages.

    Call arguments:
        inputs: a photo, numpy uint8 or uint16 (h, w, 3) or a batch (n, h, w, 3)
            (grey and alpha layouts as for `deblur`), any h and w; or network-range
            floats (h, w, 3) / (n, h, w, 3) in [-1, 1]. The dual network takes a
            tuple (center, left, right) of such arrays.
        tile_size: int or None, deblur in overlapping tiles of this side (bounds
            memory for large photos).
        overlap: int, tile overlap in pixels.

    Returns:
        numpy array of the input's shape: for a photo, the deblurred photo in its
        dtype; for floats, float32 network output clipped to [-1, 1] (what an exported
        SavedModel gives).

    Raises:
        ValueError: an input of another dtype or shape, an empty one, a list that is
            not the dual triple, or floats outside [-1, 1] or not finite (the message
            shows what was given and what is accepted).
        NonFiniteOutput: the network gave NaN or inf (broken weights).

    Example:
    >>> deblurrer = load_deblurrer()
    >>> sharp = deblurrer(imageio.v3.imread("photo.jpg"))   # uint8 (h, w, 3)
    """

    def __init__(self, predict, name, num_inputs, params=None, keras_model=None,
                 source=None):
        self._predict = predict
        self.name = name
        self.num_inputs = num_inputs
        self.params = params
        self.keras_model = keras_model
        self.source = source or f"the Keras model {name!r}"

    @classmethod
    def from_keras(cls, model, precision="float32", source=None):
        """Wraps a Keras model with `fast_predict_fn(model, precision)`; `source`
        says where its weights came from (for messages)."""
        multiple, predict = model_size_multiple(model), fast_predict_fn(model, precision)
        specs = [tf.TensorSpec((None, None, None, 3), tf.float32) for _ in model.inputs]

        # One graph with padding and clipping (traced once for any size): no eager
        # ops between the network and the caller, which tiles call many times.
        @tf.function(input_signature=[tuple(specs) if len(specs) > 1 else specs[0]])
        def clipped(inputs):  # as the export clips; NaN where the network broke
            output = predict_any_size(predict, inputs, multiple)
            return tf.where(tf.math.is_finite(output), tf.clip_by_value(output, -1.0, 1.0),
                            np.float32(np.nan))

        def network(inputs):  # the dual triple as a list too
            return clipped(tuple(inputs) if isinstance(inputs, list) else inputs)

        return cls(network, model.name, len(model.inputs), model.count_params(), model,
                   source)

    @classmethod
    def from_saved_model(cls, path):
        """Loads an export of `kpac_tf.deploy.export` (its `float` signature)."""
        loaded = tf.saved_model.load(path)
        if export.FLOAT_SIGNATURE not in loaded.signatures:
            raise ValueError(f"{path}: SavedModel has no {export.FLOAT_SIGNATURE!r} "
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
        return cls(predict, name, num_inputs, source=path)

    def network(self, inputs):
        """The network on float32 (batch, h, w, 3) in [-1, 1] (or the dual triple),
        any h and w, unchecked: float32 tensor (batch, h, w, 3) clipped to [-1, 1],
        from a Keras model as from a SavedModel (whose signature clips; a Keras
        network's NaN or inf comes back as NaN, for `NonFiniteOutput`)."""
        return self._predict(inputs)

    def __call__(self, inputs, tile_size=None, overlap=64):
        views = _views(self, inputs)
        if views[0].dtype in (np.uint8, np.uint16):
            return deblur(self, inputs, tile_size, overlap)
        if any(v.dtype.kind != "f" or v.ndim not in (3, 4) or v.shape[-1] != 3
               or v.shape != views[0].shape for v in views):
            raise ValueError(
                f"{self.name} deblurs uint8 or uint16 photos (h, w, 3) or (n, h, w, 3), "
                "or network-range floats (h, w, 3) or (n, h, w, 3) in [-1, 1]; got "
                + ", ".join(f"{v.dtype} {v.shape}" for v in views))
        for view in views:
            _check_network_range(view)
        single = views[0].ndim == 3
        views = [v[None].astype(np.float32) if single else v.astype(np.float32)
                 for v in views]
        out = run_network(self, views, tile_size, overlap)
        return out[0] if single else out


def _views(deblurrer, inputs):
    """`inputs` as a list of non-empty numpy arrays, one per network input (a tuple or
    list for the dual network's (center, left, right), else one array); ValueError
    saying what was given and what the network takes otherwise."""
    if deblurrer.num_inputs == 3:
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 3:
            given = (f"a {type(inputs).__name__} of {len(inputs)} items"
                     if isinstance(inputs, (tuple, list)) else "one array")
            raise ValueError(f"{deblurrer.name} takes a (center, left, right) tuple of "
                             f"images, got {given}")
        views = [np.asarray(v) for v in inputs]
    elif isinstance(inputs, (tuple, list)):
        raise ValueError(
            f"{deblurrer.name} takes one image, a numpy array (h, w, c) or (n, h, w, c); "
            f"got a {type(inputs).__name__} of {len(inputs)} items (an image held in "
            "nested lists: np.asarray(image, np.uint8) first)")
    else:
        views = [np.asarray(inputs)]
    for view in views:
        if view.ndim >= 2 and 0 in view.shape:
            raise ValueError(f"{deblurrer.name} got an empty image, {view.dtype} "
                             f"{view.shape}; images and batches need at least one pixel")
    return views


def _check_network_range(view):
    """ValueError unless the float array lies in [-1, 1] (the network range)."""
    finite = np.isfinite(view)
    if not finite.all():
        raise ValueError(f"network-range input holds {np.size(view) - finite.sum()} "
                         "values that are NaN or inf; it takes finite floats in [-1, 1]")
    low, high = float(view.min()), float(view.max())
    if low < -1 - 1e-6 or high > 1 + 1e-6:
        raise ValueError(
            f"network-range input runs from {low:g} to {high:g}; it takes floats in "
            "[-1, 1] (from a photo: kpac_tf.data.pixels.to_network; from [0, 1]: "
            "pixels.unit_to_network), or pass the uint8 / uint16 photo itself")


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
            raise CheckpointError(
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
            raise CheckpointError(
                f"{source}: this run trained {run['model']!r}, not {name!r}; drop the "
                "network name or give another checkpoint")
        name, overrides = run["model"], run.get("model_overrides", {})
    if name is None:
        raise CheckpointError(
            f"{source}: name the network (one of {', '.join(MODEL_NAMES)}; --model in "
            "the apps) to load this checkpoint")
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
        CheckpointError: missing, unreadable or mismatched source, or a missing name.

    Example:
    >>> deblurrer = kpac_tf.load_deblurrer("single_2level.npz", "single_2level")
    >>> sharp = deblurrer(photo)    # uint8 (h, w, 3) -> uint8 (h, w, 3)
    """
    source = None if source is None else os.fspath(source)
    saved_model = None if source is None else _saved_model_folder(source)
    if saved_model is not None:
        return Deblurrer.from_saved_model(saved_model)
    return Deblurrer.from_keras(_keras_model(source, name), precision,
                                source or "the bundled model")


# Peak memory of deblurring one photo, per pixel, beyond the model itself: measured
# with the bundled single_3level in float32 on 1.5-24 MP photos (bfloat16 takes about
# 370 bytes per pixel whole); benchmarks/tiled_memory.py measures it again.
WHOLE_BYTES_PER_PIXEL = 700   # the network on the whole photo
TILED_BYTES_PER_PIXEL = 65    # the photo's float buffers while tiles run


def memory_needed(height, width, tile_size=None):
    """Bytes deblurring a height x width photo takes at its peak, whole (`tile_size`
    None) or in tiles (the photo's buffers plus one tile run whole)."""
    if tile_size is None:
        return height * width * WHOLE_BYTES_PER_PIXEL
    tile = min(tile_size, height) * min(tile_size, width)
    return height * width * TILED_BYTES_PER_PIXEL + tile * WHOLE_BYTES_PER_PIXEL


def predict_tiled(deblurrer, inputs, tile_size, overlap=64, on_tile=None):
    """Runs `deblurrer` tile by tile and blends overlapping tiles smoothly.

    Peak memory follows the tile, not the photo. The tiles and their weights are
    `kpac_tf.deploy.tiling`'s (as the served graph's): at most `tile_size` on a side,
    as few as fit and all of one size, overlapping by at least `overlap` pixels and
    blended with raised-cosine weights, so no seam shows.

    Args:
        deblurrer: `Deblurrer`.
        inputs: numpy float32 (1, h, w, 3) in [-1, 1], or the dual triple.
        tile_size: int, tile side in pixels.
        overlap: int, pixels shared by neighbouring tiles (< tile_size / 2).
        on_tile: callable or None, called as `on_tile(done, total)` after each tile
            (progress for a page or a bar).

    Returns:
        numpy float32 (1, h, w, 3).
    """
    views = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    height, width = views[0].shape[1:3]
    tiling.check_tiling(tile_size, overlap)
    rows, row_weights = (t.numpy() for t in tiling.blend_weights(height, tile_size, overlap))
    cols, col_weights = (t.numpy() for t in tiling.blend_weights(width, tile_size, overlap))
    total = np.zeros((1, height, width, 3), np.float32)
    tiles = [(row, col) for row in range(len(rows)) for col in range(len(cols))]
    for done, (row, col) in enumerate(tiles, 1):
        top, left = rows[row], cols[col]
        wy, wx = row_weights[row], col_weights[col]
        window = (slice(None), slice(top, top + len(wy)), slice(left, left + len(wx)))
        tile_views = tuple(v[window] for v in views)
        out = np.asarray(deblurrer.network(tile_views if len(views) == 3
                                           else tile_views[0]))
        total[window] += out * (wy[:, None, None] * wx[None, :, None])
        if on_tile is not None:
            on_tile(done, len(tiles))
    return total


def deblur(model, image, tile_size=None, overlap=64, precision="float32", on_tile=None):
    """Deblurs a photo (or a batch) of any size; returns the same dtype and shape.

    Args:
        model: keras.Model (e.g. from `build_model`) or a `Deblurrer`.
        image: numpy uint8 or uint16, (h, w) or (h, w, c) with c = 1 (grey),
            2 (grey + alpha), 3 (RGB) or 4 (RGBA), or a batch (n, h, w, c). For the
            dual model, a tuple (center, left, right) of RGB arrays. Grey is
            deblurred as RGB and averaged back; alpha is passed through unchanged.
            16-bit images keep 16-bit precision.
        tile_size: int or None. Process in overlapping tiles of this side (bounds
            memory for large photos); None runs the whole image at once.
        overlap: int, tile overlap in pixels.
        precision: "float32", or "bfloat16" (faster on CPUs with AVX512-BF16 / AMX;
            see `fast_predict_fn`). Ignored for a `Deblurrer`.
        on_tile: callable or None, `on_tile(done, total)` after each tile (with
            `tile_size`; see `predict_tiled`).

    Returns:
        numpy array of `image`'s dtype and shape.

    Example:
    >>> sharp = deblur(model, imageio.imread("photo.png"), tile_size=1024)
    """
    deblurrer = (model if isinstance(model, Deblurrer)
                 else Deblurrer.from_keras(model, precision))
    views = _views(deblurrer, image)
    if deblurrer.num_inputs == 3:
        if any(v.dtype not in (np.uint8, np.uint16) or v.ndim not in (3, 4)
               or v.shape[-1] != 3 or v.shape != views[0].shape or v.dtype != views[0].dtype
               for v in views):
            raise ValueError("the dual model's (center, left, right) must be uint8 or "
                             "uint16 RGB arrays of one shape, (h, w, 3) or (n, h, w, 3); got "
                             + ", ".join(f"{v.dtype} {v.shape}" for v in views))
        return _deblur_batch(deblurrer, views, tile_size, overlap, on_tile)
    image = views[0]
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be a uint8 or uint16 photo, got {image.dtype} "
                         f"{image.shape}; network-range floats go through a Deblurrer "
                         "(`load_deblurrer`)")
    original_shape = image.shape
    batched = image.ndim == 4
    if image.ndim == 2:  # (h, w) grayscale
        image = image[..., None]
    if not batched:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"a photo must be (h, w), (h, w, c) or (n, h, w, c) with c in "
                         f"1-4 (grey, grey + alpha, RGB, RGBA); got {image.dtype} "
                         f"{original_shape}")
    color = 1 if image.shape[-1] <= 2 else 3      # 2 and 4 channels carry alpha
    rgb = np.repeat(image[..., :1], 3, axis=-1) if color == 1 else image[..., :3]
    out = _deblur_batch(deblurrer, [rgb], tile_size, overlap, on_tile)
    if color == 1:
        out = pixels.from_network(pixels.to_network(out).mean(axis=-1, keepdims=True),
                                  image.dtype)
    if image.shape[-1] > color:  # alpha, passed through
        out = np.concatenate([out, image[..., color:]], axis=-1)
    return out.reshape(original_shape)


def _deblur_batch(deblurrer, views, tile_size, overlap, on_tile=None):
    """views: list of (n, h, w, 3) (or (h, w, 3)) same-dtype integer arrays; one
    image at a time, so only one is in float at once."""
    dtype = views[0].dtype
    single = views[0].ndim == 3
    views = [v[None] if single else v for v in views]
    out = [np.asarray(pixels.from_network(run_network(
        deblurrer, [pixels.to_network(v[i:i + 1]) for v in views], tile_size, overlap,
        on_tile), dtype)) for i in range(views[0].shape[0])]
    return out[0][0] if single else np.concatenate(out, axis=0)


def run_network(deblurrer, views, tile_size=None, overlap=64, on_tile=None):
    """`deblurrer`'s network on float32 views (n, h, w, 3) in [-1, 1] (one, or the
    dual triple), an image at a time; with `tile_size`, in blended tiles
    (`predict_tiled`, which calls `on_tile`). Returns float32 numpy (n, h, w, 3).

    Raises:
        NonFiniteOutput: an output holds NaN or inf."""
    outputs = []
    for index in range(views[0].shape[0]):
        item = tuple(v[index:index + 1] for v in views)
        item = item if len(item) == 3 else item[0]
        outputs.append(predict_tiled(deblurrer, item, tile_size, overlap, on_tile) if tile_size
                       else np.asarray(deblurrer.network(item)))
        if not np.isfinite(outputs[-1]).all():
            raise NonFiniteOutput(
                f"{deblurrer.name} from {deblurrer.source} gives NaN or inf for a finite "
                "image: its weights are broken (a diverged training run?)")
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)
