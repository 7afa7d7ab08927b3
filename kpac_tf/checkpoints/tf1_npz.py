"""The authors' TF1 checkpoints (`single_2level.npz`, `single_3level.npz`, `dual.npz`).

Format (tensorlayer's `save_npz`): a zip holding `params.npy`, a 1-D numpy object
array of float32 arrays in the order the TF1 graph created its variables. The
published files were pickled by Python 2.7 / numpy 1.x (protocol 2, array bytes as
Python-2 `str`, `numpy.core.multiarray._reconstruct`).

Reading never runs code from the file: the pickle goes through an unpickler that
admits only numpy's array and dtype constructors. Writing emits the same Python-2
compatible pickle byte stream the authors' files use, so the authors' TF1 code can
read what we write.
"""

import contextlib
import io
import os
import pickle
import struct
import zipfile

import keras
import numpy as np
import tensorflow as tf

from kpac_tf.checkpoints.errors import CheckpointError, NetworkNameError
from kpac_tf.checkpoints.safe_pickle import (RestrictedUnpickler, _Refused, read_zip_member,
                                             restricted_load)
from kpac_tf.models.layers import KPACBlock, ResidualBlock
from kpac_tf.utils.files import atomic_output, is_remote

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

PARAMS_MEMBER = "params.npy"


def _layer_tf1_variables(layer):
    """[(tf1_name, variable)] of one layer, in the authors' creation order."""
    if isinstance(layer, KPACBlock):
        index = layer.name.rsplit("_", 1)[-1]
        pairs = []
        if layer.share_weights:
            pairs.append((f"dc1/{index}/W", layer.atrous_kernels[0]))
        else:
            pairs += [(f"dc1/{index}/rate{r}/W", k)
                      for r, k in zip(layer.dilation_rates, layer.atrous_kernels)]
        for conv in layer.scale_convs + layer.shape_convs + [layer.fuse_conv]:
            pairs += [(f"{conv.name}/{index}/W", conv.kernel),
                      (f"{conv.name}/{index}/b", conv.bias)]
        return pairs
    if isinstance(layer, ResidualBlock):
        index = layer.name.rsplit("_", 1)[-1]
        return [(f"res{index}/{conv.name}/{kind}", var)
                for conv in (layer.conv1, layer.conv2)
                for kind, var in (("W", conv.kernel), ("b", conv.bias))]
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        return [(f"deblur/{layer.name}/W", layer.kernel),
                (f"deblur/{layer.name}/b", layer.bias)]
    if layer.weights:
        raise CheckpointError(f"layer {layer.name!r} ({type(layer).__name__}) has "
                              "weights but no place in the authors' checkpoint format")
    return []


def tf1_variables(model):
    """[(tf1_name, keras_variable)] of a model from `build_model`, in checkpoint order.

    The authors' order is their variable creation order (encoder; per block the
    shared kernel, scale attention, shape attention, fusion; middle; decoder), which
    is also the creation order of `build_model`'s layers.
    """
    pairs = []
    for layer in model.layers:
        pairs += _layer_tf1_variables(layer)
    return pairs


# The largest uncompressed `params.npy` a checkpoint may declare: 512 MiB. The
# published networks hold 1.6-2.1 M float32 parameters (dual.npz, the largest file,
# is 8.3 MB), so this leaves room for ablations up to 8x the paper's width while
# refusing a zip bomb before anything is inflated.
MAX_PARAMS_BYTES = 512 * 2**20


def _codecs_encode_latin1(text, encoding):
    """Stand-in for `_codecs.encode`, which protocol-2 pickles of bytes call."""
    if encoding != "latin1" or not isinstance(text, str):
        raise _Refused("only latin1 _codecs.encode of text is allowed")
    return text.encode("latin1")


# Exactly the globals that real checkpoint files name (numpy's `np.save` pickles
# object arrays with protocol 2 up to numpy 1.16, 3 in 1.17-1.26, 4 from 2.0;
# never 5, so `_frombuffer` is not needed).
_ALLOWED_GLOBALS = {
    # The authors' files and ours (Python 2 pickles); numpy 1.x under Python 3.
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    # numpy 2.x's `np.save`.
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    # Every producer.
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # numpy <= 1.16 under Python 3: protocol 2 pickles bytes as
    # `_codecs.encode(text, "latin1")`.
    ("_codecs", "encode"): _codecs_encode_latin1,
}


class _ArrayOnlyUnpickler(RestrictedUnpickler):
    """Unpickler that builds numpy arrays and dtypes and refuses everything else."""

    allowed = _ALLOWED_GLOBALS
    admits = "numpy arrays"


def read_tf1_npz(path):
    """Reads the tensor list of an authors'-format `.npz`, without running its code.

    Args:
        path: str or PathLike. The checkpoint file.

    Returns:
        list of float32 numpy arrays, in file order.

    Raises:
        CheckpointError: the file is missing, not a zip, truncated, holds no
            `params.npy` or one over `MAX_PARAMS_BYTES`, or its pickle asks for
            anything but numpy arrays.
    """
    path = os.fspath(path)
    try:
        if is_remote(path) and not tf.io.gfile.exists(path):
            raise FileNotFoundError(path)
        with contextlib.ExitStack() as opened:
            source = (opened.enter_context(tf.io.gfile.GFile(path, "rb")) if is_remote(path)
                      else path)
            archive = opened.enter_context(zipfile.ZipFile(source))
            if PARAMS_MEMBER not in archive.namelist():
                raise CheckpointError(
                    f"{path}: no '{PARAMS_MEMBER}' inside; found {archive.namelist()}. "
                    "Authors' checkpoints are tensorlayer npz files (single_2level.npz, "
                    "single_3level.npz, dual.npz)")
            payload = read_zip_member(
                archive, PARAMS_MEMBER, MAX_PARAMS_BYTES, path,
                hint=" (the published checkpoints are under 10 MB)")
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as e:  # zipfile, zlib, bz2, lzma: corrupt, encrypted, unknown method
        raise CheckpointError(f"{path}: not a readable npz (zip) file ({e}); "
                              "it may be truncated, re-download it") from None
    try:
        stream = io.BytesIO(payload)
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(stream)
    except Exception as e:  # any malformed header
        raise CheckpointError(f"{path}: corrupt '{PARAMS_MEMBER}' "
                              f"({type(e).__name__}: {e})") from None
    if dtype != object:
        raise CheckpointError(
            f"{path}: '{PARAMS_MEMBER}' holds a {dtype} array of shape {shape}, "
            "expected the 1-D object array tensorlayer writes")
    params = restricted_load(_ArrayOnlyUnpickler, stream, path, f"'{PARAMS_MEMBER}'",
                             encoding="latin1")
    if not (isinstance(params, np.ndarray) and params.dtype == object
            and params.ndim == 1):
        raise CheckpointError(f"{path}: '{PARAMS_MEMBER}' does not hold a 1-D list "
                              "of tensors")
    tensors = []
    for i, tensor in enumerate(params):
        if not (isinstance(tensor, np.ndarray) and tensor.dtype.kind == "f"):
            raise CheckpointError(f"{path}: entry {i} is not a float array "
                                  f"({type(tensor).__name__})")
        tensors.append(tensor.astype(np.float32, copy=False))
    return tensors


def assign_tf1_tensors(model, tensors, source="checkpoint"):
    """Assigns a checkpoint's tensor list to `model`, all or nothing.

    Every tensor is checked before any is assigned, so on failure the model's
    weights are untouched. `source` names the file in error messages.
    """
    pairs = tf1_variables(model)
    for i, ((name, variable), tensor) in enumerate(zip(pairs, tensors)):
        if tuple(variable.shape) != tensor.shape:
            raise NetworkNameError(
                f"{source}: tensor {i} ({name}, Keras {variable.path}) expected shape "
                f"{tuple(variable.shape)}, found {tensor.shape}; is this checkpoint for "
                f"a different network than {model.name!r}?")
    if len(tensors) != len(pairs):
        raise NetworkNameError(
            f"{source}: holds {len(tensors)} tensors, model {model.name!r} expects "
            f"{len(pairs)}; is this checkpoint for a different network?")
    for (_, variable), tensor in zip(pairs, tensors):
        variable.assign(tensor)
    return model


def load_tf1_npz(model, path):
    """Assigns an authors'-format checkpoint to a model built by `build_model`.

    Args:
        model: keras.Model from `kpac_tf.build_model` (matching the checkpoint).
        path: str or PathLike. The `.npz` file (Python-2 original or re-save).

    Returns:
        the model. On any failure its weights are untouched.

    Raises:
        CheckpointError: unreadable or hostile file, or tensors that do not fit
            the model (message names the first offending tensor and both shapes).

    Example:
    >>> model = load_tf1_npz(build_model("single_2level"), "single_2level.npz")
    """
    return assign_tf1_tensors(model, read_tf1_npz(path), source=os.fspath(path))


class _Py2PickleWriter:
    """Pickles a list of float32 arrays exactly as Python 2.7's cPickle (protocol 2)
    with numpy 1.x did: same opcodes, same memo, hence the same bytes."""

    def __init__(self):
        self.out = io.BytesIO()
        self.memo = {}

    def op(self, code, payload=b""):
        self.out.write(code + payload)

    def remember(self, key=None):
        """Memoises the object just written (BINPUT), under `key` for later reuse."""
        index = len(self.memo)
        self.memo[key if key is not None else ("unique", index)] = index
        self.op(*((pickle.BINPUT, bytes([index])) if index < 256
                  else (pickle.LONG_BINPUT, struct.pack("<I", index))))

    def recall(self, key):
        """Writes a BINGET for `key` if it was memoised; returns whether it was."""
        index = self.memo.get(key)
        if index is None:
            return False
        self.op(*((pickle.BINGET, bytes([index])) if index < 256
                  else (pickle.LONG_BINGET, struct.pack("<I", index))))
        return True

    def global_(self, module, name):
        if not self.recall(("global", module, name)):
            self.op(pickle.GLOBAL, f"{module}\n{name}\n".encode("ascii"))
            self.remember(("global", module, name))

    def int_(self, value):
        if 0 <= value < 256:
            self.op(pickle.BININT1, bytes([value]))
        elif 0 <= value < 65536:
            self.op(pickle.BININT2, struct.pack("<H", value))
        else:
            self.op(pickle.BININT, struct.pack("<i", value))

    def str_(self, data, key=None):
        """A Python-2 `str` (read back by Python 3 with encoding='latin1')."""
        if key is not None and self.recall(key):
            return
        if len(data) < 256:
            self.op(pickle.SHORT_BINSTRING, bytes([len(data)]) + data)
        else:
            self.op(pickle.BINSTRING, struct.pack("<I", len(data)) + data)
        self.remember(key)

    def tuple_end(self, length, key=None):
        """Closes a tuple whose items were written (after MARK when length > 3)."""
        self.op((pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)[length - 1]
                if length <= 3 else pickle.TUPLE)
        self.remember(key)

    def shape(self, shape):
        if len(shape) > 3:
            self.op(pickle.MARK)
        for size in shape:
            self.int_(size)
        self.tuple_end(len(shape))

    def dtype(self, dtype):
        key = ("dtype", dtype.str)
        if self.recall(key):
            return
        is_object = dtype == object
        self.global_("numpy", "dtype")
        self.str_(b"O8" if is_object else b"f4")
        self.int_(0)
        self.int_(1)
        self.tuple_end(3)
        self.op(pickle.REDUCE)
        self.remember(key)
        self.op(pickle.MARK)
        self.int_(3)
        self.str_(b"|" if is_object else b"<")
        self.op(pickle.NONE * 3)
        self.int_(-1)
        self.int_(-1)
        self.int_(63 if is_object else 0)
        self.tuple_end(8)
        self.op(pickle.BUILD)

    def array(self, array, items=None):
        """An ndarray; `items` is the element list of an object array."""
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        if not self.recall(("tuple", 0)):
            self.int_(0)
            self.tuple_end(1, key=("tuple", 0))
        self.str_(b"b", key=("str", b"b"))
        self.tuple_end(3)
        self.op(pickle.REDUCE)
        self.remember()
        self.op(pickle.MARK)
        self.int_(1)
        self.shape(array.shape)
        self.dtype(array.dtype)
        self.op(pickle.NEWFALSE)
        if items is None:
            self.str_(np.ascontiguousarray(array).tobytes())
        else:
            self.op(pickle.EMPTY_LIST)
            self.remember()
            self.op(pickle.MARK)
            for item in items:
                self.array(item)
            self.op(pickle.APPENDS)
        self.tuple_end(5)
        self.op(pickle.BUILD)

    def params(self, tensors):
        self.op(pickle.PROTO, b"\x02")
        self.array(np.empty(len(tensors), dtype=object), items=tensors)
        self.op(pickle.STOP)
        return self.out.getvalue()


def _npy_bytes(tensors):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (len(tensors),)})
    return header.getvalue() + _Py2PickleWriter().params(tensors)


def write_tf1_npz(tensors, path):
    """Writes float32 tensors as an authors'-format `.npz`, atomically.

    The file appears complete or not at all; an existing file is replaced only
    once the new one is fully written.
    """
    tensors = [np.asarray(t, dtype="<f4") for t in tensors]
    payload = _npy_bytes(tensors)
    with atomic_output(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(PARAMS_MEMBER, payload)


def save_tf1_npz(model, path):
    """Writes a model's weights in the authors' checkpoint format (atomically).

    Args:
        model: keras.Model from `kpac_tf.build_model`.
        path: str or PathLike. Destination `.npz`.

    Example:
    >>> save_tf1_npz(model, "single_2level.npz")
    """
    write_tf1_npz([np.asarray(v.numpy()) for _, v in tf1_variables(model)], path)
