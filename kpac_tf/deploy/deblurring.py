"""Running a network on photos and tensors of any size: the `Deblurrer` (made by
`kpac_tf.deploy.loading.load_deblurrer`) pads to the network's multiple, tiles large
photos (`kpac_tf.deploy.tiling`) and converts uint8/uint16 photos, grey and alpha
included, to and from the network range, float32 (batch, h, w, 3) in [-1, 1].
"""

import numpy as np
import tensorflow as tf

from kpac_tf.data import pixels
from kpac_tf.deploy import tiling
from kpac_tf.models.forward import fast_predict_fn, model_size_multiple, predict_any_size


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

    def network(self, inputs):
        """The network on float32 (batch, h, w, 3) in [-1, 1] (or the dual triple),
        any h and w, unchecked: float32 tensor (batch, h, w, 3) clipped to [-1, 1],
        from a Keras model as from a SavedModel (whose signature clips; a Keras
        network's NaN or inf comes back as NaN, for `NonFiniteOutput`)."""
        return self._predict(inputs)

    def __call__(self, inputs, tile_size=None, overlap=tiling.OVERLAP):
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


def deblur(model, image, tile_size=None, overlap=tiling.OVERLAP, precision="float32",
           on_tile=None):
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
            `tile_size`; see `tiling.predict_tiled`).

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
    out = _deblur_batch(deblurrer, [pixels.photo_to_rgb(image)], tile_size, overlap, on_tile)
    return pixels.rgb_to_photo(out, image).reshape(original_shape)


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


def run_network(deblurrer, views, tile_size=None, overlap=tiling.OVERLAP, on_tile=None):
    """`deblurrer`'s network on float32 views (n, h, w, 3) in [-1, 1] (one, or the
    dual triple), an image at a time; with `tile_size`, in blended tiles
    (`tiling.predict_tiled`, which calls `on_tile`). Returns float32 numpy (n, h, w, 3).

    Raises:
        NonFiniteOutput: an output holds NaN or inf."""
    outputs = []
    for index in range(views[0].shape[0]):
        item = tuple(v[index:index + 1] for v in views)
        item = item if len(item) == 3 else item[0]
        outputs.append(
            tiling.predict_tiled(deblurrer, item, tile_size, overlap, on_tile) if tile_size
            else np.asarray(deblurrer.network(item)))
        if not np.isfinite(outputs[-1]).all():
            raise NonFiniteOutput(
                f"{deblurrer.name} from {deblurrer.source} gives NaN or inf for a finite "
                "image: its weights are broken (a diverged training run?)")
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)
