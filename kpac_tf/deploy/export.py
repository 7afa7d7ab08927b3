"""Exports for serving and other runtimes: SavedModel (TF Serving), LiteRT, ONNX.

Every export takes images of any batch, height and width: padding to the network's
multiple and cropping back happen inside the graph.

- `export_saved_model(model, export_dir)` writes `export_dir/<version>/` (the layout
  TF Serving watches) with four signatures:
  - `serving_default`: `images` uint8 (batch, h, w, 3) -> `deblurred` uint8;
  - `serving_uint16`: uint16 in -> uint16 out (16-bit photos);
  - `float`: float32 in [0, 1] -> float32 in [0, 1];
  - `serving_encoded`: `images_bytes` string (batch,) of PNG (8 or 16-bit) or JPEG
    files -> `deblurred_bytes` string (batch,) of PNG files at each input's bit depth
    and in its layout (grey, grey + alpha, RGB, RGBA) (what image services send: b64
    JSON over TF Serving's REST API, whose `_bytes` names mark binary values).
- `export_litert(model, path)` and `export_onnx(model, path)` write one file with the
  `float` contract: input `images` float32 (batch, h, w, 3) in [0, 1], output
  `deblurred` float32 of the same shape, clipped to [0, 1].

The dual network takes `center`, `left` and `right` instead of `images` (and
`center_bytes`, `left_bytes`, `right_bytes` instead of `images_bytes`). Written
files and folders get the permissions the process umask gives (as any new file would),
so a server running as another user can read them.
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from kpac_tf.data import pixels
from kpac_tf.deploy import tiling
from kpac_tf.models.fast_path import fast_forward
from kpac_tf.models.forward import model_size_multiple, predict_any_size
from kpac_tf.utils.files import (apply_umask, atomic_output, is_remote, output_folder,
                                 publish_folder)

# The signatures' names: inputs, the output, the float endpoint `Deblurrer` loads.
SINGLE_INPUTS, DUAL_INPUTS = ("images",), ("center", "left", "right")
OUTPUT = "deblurred"
FLOAT_SIGNATURE = "float"
# Encoded files in and out; TF Serving's REST API base64-encodes `_bytes` values.
ENCODED_SIGNATURE, BYTES_SUFFIX = "serving_encoded", "_bytes"
_PNG_MAGIC, _JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
LITERT_WEIGHTS = ("float32", "float16", "int8")
ONNX_OPSET = 17
# The served graph's tiles: an image with a side above SERVE_TILE_SIZE is deblurred in
# tiles of at most that side (a 24 MP photo served in 2.4 GB of peak RSS, measured;
# whole, `tiling.memory_needed` estimates 17 GB).
SERVE_TILE_SIZE, SERVE_OVERLAP = 1024, tiling.OVERLAP


def input_names(model):
    """("images",) or, for the dual network, ("center", "left", "right")."""
    return DUAL_INPUTS if len(model.inputs) == 3 else SINGLE_INPUTS


def _network_fn(model, tile_size=None, overlap=None):
    """[-1, 1] views (any size) -> [-1, 1] float32 output, padded inside the graph;
    the fast forward pass of `kpac_tf.models.fast_path`. With `tile_size`, an image
    with a side above it runs in blended tiles (`tiling.tiled_in_graph`, sharing
    `overlap` pixels), so memory follows the tile."""
    multiple = model_size_multiple(model)
    forward = fast_forward(model)

    def call(inputs):
        return tf.cast(forward(inputs), tf.float32)

    def whole(views):
        return predict_any_size(call, tuple(views) if len(views) > 1 else views[0],
                                multiple)

    if not tile_size:
        return whole

    def clipped(views):  # each tile clipped before blending, as `Deblurrer.network`
        return tf.clip_by_value(whole(views), -1.0, 1.0)

    def run(views):
        height, width = tf.shape(views[0])[1], tf.shape(views[0])[2]
        return tf.cond((height > tile_size) | (width > tile_size),
                       lambda: tiling.tiled_in_graph(clipped, views, tile_size, overlap),
                       lambda: whole(views))

    return run


def _shared_network_fn(model, tile_size=None, overlap=None):
    """`_network_fn` as one `tf.function` for float32 views of any size: every
    signature of a SavedModel calls it, so the network is traced once, not once per
    signature."""
    run = _network_fn(model, tile_size, overlap)
    specs = [tf.TensorSpec((None, None, None, 3), tf.float32) for _ in model.inputs]
    traced = tf.function(lambda *views: run(list(views)), input_signature=specs)
    return lambda views: traced(*views)


def serving_function(model, dtype, network=None):
    """The exported computation for input `dtype` as a `tf.function` with its
    signature: uint8 / uint16 images -> `deblurred` of the same dtype; float32 in
    [0, 1] -> float32 in [0, 1], clipped. Keyword inputs named by `input_names`;
    `network`: a `_shared_network_fn` (None: `_network_fn(model)`, whole images)."""
    run = network or _network_fn(model)
    names = input_names(model)
    specs = [tf.TensorSpec((None, None, None, 3), dtype, name=n) for n in names]
    if dtype == tf.float32:
        def serve(*images):
            out = run([pixels.unit_to_network(x) for x in images])
            return {OUTPUT: pixels.network_to_unit(out)}
    else:
        def serve(*images):
            out = run([pixels.to_network(x) for x in images])
            return {OUTPUT: pixels.from_network(out, dtype)}
    return tf.function(serve, input_signature=specs)


def _is_sixteen_bit(data, name):
    """bool scalar: one PNG or JPEG file (tf.string scalar) is a 16-bit PNG. Anything
    else stops the call with InvalidArgument naming the input."""
    # The first 25 bytes, zero-padded: a file of any length has them.
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 25), b"\0" * 25]),
                             0, 25)
    is_png = tf.equal(tf.strings.substr(head, 0, 8), _PNG_MAGIC)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), _JPEG_MAGIC)
    first = tf.strings.reduce_join(tf.strings.as_string(tf.io.decode_raw(
        tf.strings.substr(head, 0, 8), tf.uint8)), separator=" ")  # as numbers: any bytes
    with tf.control_dependencies([tf.debugging.Assert(
            is_png | is_jpeg, [f"{name}: not a PNG or JPEG file; its first bytes are", first])]):
        return is_png & tf.equal(tf.strings.substr(head, 24, 1), b"\x10")  # IHDR depth


def encoded_serving_function(model, network):
    """The `serving_encoded` computation as a `tf.function`: string (batch,) files
    per input name (`images_bytes`, or the dual network's three) -> {`deblurred_bytes`:
    string (batch,) PNG files} at the input's bit depth (16-bit for a 16-bit PNG) and
    in its layout (grey, grey + alpha, RGB or RGBA: `pixels.photo_to_rgb` and back),
    as `deblur` returns them. Images are deblurred one at a time (each may have its
    own size); the dual network's three files of an item must be RGB and agree in
    size and bit depth, as `deblur` asks. `network`: a `_shared_network_fn`."""
    names = [name + BYTES_SUFFIX for name in input_names(model)]

    def one(files):
        depths = [_is_sixteen_bit(data, name) for data, name in zip(files, names)]
        checks = [tf.debugging.Assert(tf.equal(depth, depths[0]), [
            f"{name} and {names[0]} differ in bit depth"])
            for depth, name in zip(depths[1:], names[1:])]

        def decoded(decode):
            """(the first photo as uint16 values (h, w, c), unscaled; each photo's
            channel count; the network views)"""
            photos = [decode(data) for data in files]
            return (tf.cast(photos[0], tf.uint16), [tf.shape(p)[-1] for p in photos],
                    [pixels.to_network(pixels.photo_to_rgb(p))[None] for p in photos])

        # The bit depth picks the decoder and the encoder; the network runs once.
        # Every file is checked (a PNG or JPEG, of one bit depth) before any is decoded.
        with tf.control_dependencies(depths + checks):
            photo, channels, views = tf.cond(
                depths[0], lambda: decoded(lambda data: tf.io.decode_png(data, 0, tf.uint16)),
                lambda: decoded(lambda data: tf.io.decode_image(data, 0, tf.uint8,
                                                                expand_animations=False)))
        dual = [tf.debugging.assert_equal(
            count, 3, message=f"{name}: the dual network takes RGB files")
            for count, name in zip(channels, names) if len(views) == 3]
        sizes = [tf.debugging.assert_equal(
            tf.shape(view), tf.shape(views[0]), message=f"{name} and {names[0]} differ in size")
            for view, name in zip(views[1:], names[1:])]
        with tf.control_dependencies(dual + sizes):
            out = network(views)[0]

        def encoded(dtype):
            return tf.io.encode_png(pixels.rgb_to_photo(pixels.from_network(out, dtype),
                                                        tf.cast(photo, dtype)))

        return tf.cond(depths[0], lambda: encoded(tf.uint16), lambda: encoded(tf.uint8))

    def serve(*files):
        # One image at a time: memory follows the largest image, not the batch.
        return {OUTPUT + BYTES_SUFFIX: tf.map_fn(one, files, parallel_iterations=1,
                                                 fn_output_signature=tf.string)}

    specs = [tf.TensorSpec((None,), tf.string, name=name) for name in names]
    return tf.function(serve, input_signature=specs)


def next_version(export_dir):
    """1 + the largest numeric version folder in `export_dir` (1 if none); local or
    any filesystem TensorFlow reads (gs://, ...)."""
    if not tf.io.gfile.isdir(export_dir):
        return 1
    versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(export_dir)
                if name.rstrip("/").isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(model, export_dir, version=None, tile_size=SERVE_TILE_SIZE,
                       overlap=SERVE_OVERLAP):
    """Exports `model` to `export_dir/<version>/`, atomically.

    Args:
        model: keras.Model from `build_model` (or `load_deblurrer(...).keras_model`).
        export_dir: str, the model base folder TF Serving watches: a local folder
            (the version appears by a rename) or any filesystem TensorFlow writes,
            such as gs:// (the version is uploaded file by file, saved_model.pb last,
            so a server polling the folder finds it only once the rest is there).
        version: int or None (None: the next free version number).
        tile_size: int or None: the served graph deblurs an image with a side above
            it in blended tiles of at most this side (memory follows the tile, not the
            photo); None or 0: always whole.
        overlap: int, pixels neighbouring tiles share (`tiling.check_tiling`).

    Returns:
        str, the version folder written.

    Raises:
        FileExistsError: that version already exists (never overwritten).
    """
    if tile_size:
        tiling.check_tiling(tile_size, overlap)
    version = next_version(export_dir) if version is None else int(version)
    target = f"{export_dir.rstrip('/')}/{version}" if is_remote(export_dir) \
        else os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(target):
        raise FileExistsError(f"{target} already exists; choose another version")
    tf.io.gfile.makedirs(export_dir)
    archive = keras.export.ExportArchive()
    archive.track(model)
    network = _shared_network_fn(model, tile_size, overlap)
    for endpoint, dtype in (("serving_default", tf.uint8), ("serving_uint16", tf.uint16),
                            (FLOAT_SIGNATURE, tf.float32)):
        function = serving_function(model, dtype, network=network)
        archive.add_endpoint(endpoint, function.python_function,
                             input_signature=function.input_signature)
    encoded = encoded_serving_function(model, network=network)
    archive.add_endpoint(ENCODED_SIGNATURE, encoded.python_function,
                         input_signature=encoded.input_signature)
    # Staged beside the target on a local disk (a rename), or in the local temporary
    # folder for a remote one: TF Serving never sees a half-written version.
    staging = tempfile.mkdtemp(prefix=".tmp-",
                               dir=None if is_remote(export_dir) else export_dir)
    try:
        archive.write_out(staging, verbose=False)
        apply_umask(staging)
        publish_folder(staging, target, last=("saved_model.pb",))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _frozen_float_saved_model(model, folder):
    """Writes the float contract to `folder` as a SavedModel with the weights as
    constants and the signature `serving_default` (inputs by `input_names`, output
    `deblurred`), for the LiteRT converter.

    Keras 3 variables are not frozen by the converter: a file converted from them holds
    no weights and computes NaN."""
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2

    function = serving_function(model, tf.float32)
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())

    @tf.function(input_signature=function.input_signature)
    def serve(*images):
        (deblurred,) = frozen(*images)
        return {OUTPUT: deblurred}

    tf.saved_model.save(tf.Module(), folder,
                        signatures={"serving_default": serve.get_concrete_function()})


def litert_bytes(model, weights="float32"):
    """The LiteRT (TFLite) flatbuffer of the float contract, with the signature
    `serving_default` (inputs `images`, or `center`, `left`, `right`; output
    `deblurred`).

    Args:
        model: keras.Model.
        weights: "float32"; "float16" (weights stored as float16, computed in float32);
            "int8" (dynamic-range quantisation: int8 weights, float activations).

    Returns:
        bytes.
    """
    if weights not in LITERT_WEIGHTS:
        raise ValueError(f"LiteRT weights must be one of {LITERT_WEIGHTS}, got {weights!r}")
    with tempfile.TemporaryDirectory(prefix="kpac_litert_") as folder:
        _frozen_float_saved_model(model, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if weights != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def export_litert(model, path, weights="float32"):
    """Writes the LiteRT file of `litert_bytes(model, weights)` to `path`, atomically.
    Returns `path`."""
    output_folder(path)  # before the slow conversion
    flatbuffer = litert_bytes(model, weights)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(flatbuffer)
    return path


def explicit_same_padding(graph):
    """Rewrites an ONNX graph's dilated 'SAME' convolutions to explicit padding, in place.

    tf2onnx turns `tf.nn.conv2d(padding="SAME", dilations=r)` into a Conv with
    `auto_pad=SAME_UPPER`, which onnxruntime refuses when dilated. With stride 1 the
    padding is fixed: `r * (k - 1)` per axis, the odd pixel at the end (SAME_UPPER) or
    the start (SAME_LOWER), so `pads` states it exactly. The Keras model is untouched.

    Returns:
        int, the number of convolutions rewritten.
    """
    import onnx

    rewritten = 0
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        auto_pad = attributes.get("auto_pad", b"NOTSET")
        dilations = attributes.get("dilations", [1, 1])
        if (node.op_type != "Conv" or auto_pad not in (b"SAME_UPPER", b"SAME_LOWER")
                or all(d == 1 for d in dilations)):
            continue
        if any(stride != 1 for stride in attributes.get("strides", [1, 1])):
            raise ValueError(f"{node.name}: a strided dilated convolution; no fixed padding")
        begin, end = [], []
        for size, rate in zip(attributes["kernel_shape"], dilations):
            total = rate * (size - 1)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == b"SAME_UPPER" else large)
            end.append(large if auto_pad == b"SAME_UPPER" else small)
        kept = [a for a in node.attribute if a.name != "auto_pad"]
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute("pads", begin + end)])
        rewritten += 1
    return rewritten


def export_onnx(model, path, opset=ONNX_OPSET):
    """Writes the ONNX model of the float contract to `path`, atomically (needs
    tf2onnx). Returns `path`."""
    try:
        import tf2onnx
    except ImportError:
        raise ImportError("the ONNX export needs tf2onnx: pip install tf2onnx onnxruntime "
                          "(or kpac-tf's [export] extra)") from None
    output_folder(path)  # before the slow conversion
    function = serving_function(model, tf.float32)
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=opset)
    explicit_same_padding(proto.graph)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(proto.SerializeToString())
    return path
