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

import io
import os
import pickle
import struct
import zipfile

import keras
import numpy as np
import tensorflow as tf

from kpac_tf.files import atomic_output
from kpac_tf.layers import KPACBlock, ResidualBlock
from kpac_tf.models import build_model
from kpac_tf.tf1_graph import tf1_forward

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

PARAMS_MEMBER = "params.npy"


class CheckpointError(ValueError):
    """An authors'-format checkpoint could not be read, written or assigned."""


# ---------------------------------------------------------------------------
# Which model variable is which TF1 tensor.


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


# ---------------------------------------------------------------------------
# Reading.


# The largest uncompressed `params.npy` a checkpoint may declare: 512 MiB. The
# published networks hold 1.6-2.1 M float32 parameters (dual.npz, the largest file,
# is 8.3 MB), so this leaves room for ablations up to 8x the paper's width while
# refusing a zip bomb before anything is inflated.
MAX_PARAMS_BYTES = 512 * 2**20


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something other than numpy arrays."""


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


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that never runs code named by the file.

    `find_class` hands out only the objects in the subclass's `allowed` table
    ((module, name) -> the object to use instead, often a checking stand-in);
    anything else, and any persistent id a subclass does not handle, raises
    `_Refused`. `restricted_load` turns that into a `CheckpointError`. Used for
    the authors' TF1 `.npz` files here and for PyTorch `.pth` files in
    `kpac_tf.lpips`.
    """

    allowed = {}
    admits = "the objects this format needs"  # completes "only ... are allowed"

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _Refused(
                f"refusing to load '{module}.{name}': only {self.admits} are allowed "
                "in a checkpoint") from None

    def persistent_load(self, pid):
        del pid
        raise _Refused("persistent ids are not allowed in a checkpoint")


def restricted_load(unpickler, stream, source, what, **kwargs):
    """Unpickles one object from `stream` with `unpickler` (a `RestrictedUnpickler`
    class or a factory of one; `kwargs` go to it).

    Raises:
        CheckpointError: naming `source`: "refused, the file may be hostile" when
            the pickle asks for anything not allowed, "corrupt <what>" when the
            stream is malformed.
    """
    try:
        return unpickler(stream, **kwargs).load()
    except CheckpointError:
        raise
    except _Refused as e:
        raise CheckpointError(f"{source}: refused, the file may be hostile: {e}") from None
    except Exception as e:  # any malformed pickle stream
        raise CheckpointError(f"{source}: corrupt {what} ({type(e).__name__}: {e})") from None


def read_zip_member(archive, name, limit, source, hint=""):
    """The bytes of member `name` of an open zip, refused unread over `limit` bytes.

    Not `archive.read`: it inflates all the compressed data (up to 2 GiB a step)
    before cutting it to the declared size, so a member that under-declares could
    take gigabytes. Reading the declared size inflates no more than that, and still
    checks the CRC. A compression-ratio limit would add nothing: memory is bounded
    by the declared size either way, as it is for a stored member that size.
    zipfile's own errors (corrupt, encrypted, CRC) propagate to the caller.
    """
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise CheckpointError(
            f"{source}: '{name}' declares {info.file_size:,} bytes uncompressed, over "
            f"the {limit:,}-byte limit{hint}; refused unread, the file may be hostile")
    with archive.open(info) as member:
        return member.read(info.file_size)


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
        with zipfile.ZipFile(path) as archive:
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
            raise CheckpointError(
                f"{source}: tensor {i} ({name}, Keras {variable.path}) expected shape "
                f"{tuple(variable.shape)}, found {tensor.shape}; is this checkpoint for "
                f"a different network than {model.name!r}?")
    if len(tensors) != len(pairs):
        raise CheckpointError(
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


def validation_inputs(name, seed=0, batch=1, height=64, width=96):
    """Fixed pseudo-random inputs in [-1, 1] for network `name` (a list for "dual")."""
    rng = np.random.RandomState(seed)
    shape = (batch, height, width, 3)
    images = [rng.uniform(-1, 1, shape).astype(np.float32)
              for _ in range(3 if name == "dual" else 1)]
    return images if name == "dual" else images[0]


def convert_tf1_checkpoint(npz_path, name, output_path, tolerance=1e-4):
    """Converts an authors' `.npz` into a Keras model file, validated twice.

    The converted model must match the authors' graph as re-expressed with raw TF
    ops (`kpac_tf.tf1_graph`, run on the checkpoint's raw tensors; itself checked
    against the authors' TF1 output in the tests) within `tolerance` on a fixed input, and the
    written `.keras` file must reload to identical outputs. The file is written
    atomically and only if both checks pass.

    Args:
        npz_path: str. The authors' checkpoint.
        name: str. Network name, as for `build_model`.
        output_path: str. Destination `.keras` file.
        tolerance: float. Max-abs tolerance against the authors' graph.

    Returns:
        dict with `params` (int), `max_abs_diff` (float, vs the authors' graph),
        `checksum` (float, sum of |output| on `validation_inputs(name)`).

    Raises:
        CheckpointError: unreadable checkpoint, wrong network, or a failed check.
    """
    tensors = read_tf1_npz(npz_path)
    model = assign_tf1_tensors(build_model(name), tensors, source=os.fspath(npz_path))
    inputs = validation_inputs(name)
    ours = model(inputs).numpy()
    theirs = tf1_forward(name, tensors, *(inputs if name == "dual" else [inputs]))
    diff = float(np.max(np.abs(ours - theirs)))
    if not diff <= tolerance:
        raise CheckpointError(f"{npz_path}: converted {name} differs from the authors' "
                              f"graph by {diff:.3g} (tolerance {tolerance:g})")
    if not os.fspath(output_path).endswith(".keras"):
        raise CheckpointError(f"output {output_path} must end with .keras")
    with atomic_output(output_path) as tmp:
        model.save(tmp)
        reloaded = keras.models.load_model(tmp)
        if not np.array_equal(reloaded(inputs).numpy(), ours):
            raise CheckpointError(f"{output_path}: reloaded model's outputs differ")
    return {"params": model.count_params(), "max_abs_diff": diff,
            "checksum": float(np.sum(np.abs(ours), dtype=np.float64))}


# ---------------------------------------------------------------------------
# Writing: a Python-2 compatible pickle, exactly like the authors' files.


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


# ---------------------------------------------------------------------------
# Starting weights from any checkpoint kind.


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


def training_checkpoint(path):
    """The newest tf.train checkpoint in a run folder, its checkpoints/ or `path`."""
    for folder in (os.path.join(path, "checkpoints"), path):
        latest = tf.train.latest_checkpoint(folder) if os.path.isdir(folder) else None
        if latest:
            return latest
    return None


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
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: no such Keras model file")
        _assign_keras_weights(model, keras.models.load_model(path), path)
    elif os.path.isdir(path):
        latest = training_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no training checkpoint found (expected a "
                                  "run's model_dir or its checkpoints/ folder)")
        staging = keras.models.clone_model(model)
        tf.train.Checkpoint(model=staging).restore(latest).expect_partial() \
            .assert_existing_objects_matched()
        _assign_keras_weights(model, staging, latest)
    else:
        raise CheckpointError(f"{path}: expected a .keras file, an authors' .npz, or a "
                              "training run folder")
    return model
