"""SavedModel export for TF Serving.

`export_saved_model(model, export_dir)` writes `export_dir/<version>/` (the layout TF
Serving watches) with two signatures, both for any batch, height and width (padding
to the network's multiple and cropping back happen inside the graph):

- `serving_default`: `images` uint8 (batch, h, w, 3) -> `deblurred` uint8, same shape.
- `float`: `images` float32 in [0, 1] -> `deblurred` float32 in [0, 1].

The dual network's signatures take `center`, `left` and `right` instead of `images`.
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from kpac_tf import pixels
from kpac_tf.fast_path import fast_forward
from kpac_tf.inference import predict_any_size, size_multiple_of

DUAL_INPUTS = ("center", "left", "right")


def _network_fn(model):
    """[-1, 1] views (any size) -> [-1, 1] output, padded inside the graph; the
    fast forward pass of `kpac_tf.fast_path`."""
    multiple = size_multiple_of(model)
    forward = fast_forward(model)

    def call(inputs):
        return tf.cast(forward(inputs), tf.float32)

    def run(views):
        return predict_any_size(call, tuple(views) if len(views) > 1 else views[0],
                                multiple)

    return run


def next_version(export_dir):
    """1 + the largest numeric version folder in `export_dir` (1 if none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(name) for name in os.listdir(export_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(model, export_dir, version=None):
    """Exports `model` to `export_dir/<version>/`, atomically.

    Args:
        model: keras.Model from `build_model` / `checkpoints.load_model`.
        export_dir: str, the model base folder TF Serving watches.
        version: int or None (None: the next free version number).

    Returns:
        str, the version folder written.

    Raises:
        FileExistsError: that version already exists (never overwritten).
    """
    version = next_version(export_dir) if version is None else int(version)
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target} already exists; choose another --version")
    os.makedirs(export_dir, exist_ok=True)
    run = _network_fn(model)
    names = DUAL_INPUTS if len(model.inputs) == 3 else ("images",)

    def specs(dtype):
        return [tf.TensorSpec((None, None, None, 3), dtype, name=n) for n in names]

    def serve_uint8(*images):
        out = run([pixels.to_network(x) for x in images])
        return {"deblurred": pixels.from_network(out, tf.uint8)}

    def serve_float(*images):
        out = run([pixels.unit_to_network(x) for x in images])
        return {"deblurred": pixels.network_to_unit(out)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_uint8, input_signature=specs(tf.uint8))
    archive.add_endpoint("float", serve_float, input_signature=specs(tf.float32))
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=export_dir)
    try:
        archive.write_out(staging, verbose=False)
        os.rename(staging, target)  # TF Serving never sees a half-written version
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
