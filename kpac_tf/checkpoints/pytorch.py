"""PyTorch state-dict files (`.pth`), read without PyTorch and without running
code from them.

`read_torch_state_dict` reads both PyTorch formats:

- zip (`torch.save` since 1.6): `<name>/data.pkl` pickles the state dict; each
  tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
  requires_grad, backward_hooks)` whose storage is a persistent id
  `('storage', torch.FloatStorage, key, location, numel)`, stored raw in
  `<name>/data/<key>`, in the byte order of `<name>/byteorder` (little if absent).
- legacy (before 1.6): five pickles in a row (the magic number
  0x1950a86a20f9469cfc6c, protocol 1001, a dict of system facts, the state dict
  whose persistent ids add a sixth entry, a storage-view record or None, then the
  sorted list of storage keys), followed by each listed storage as its element
  count (int64 little-endian) and its raw little-endian bytes.

The storage location (`cpu`, `cuda:0`: the `lpips` files are tagged `cuda:0`) is
ignored: everything lands in numpy. The pickles go through
`safe_pickle.RestrictedUnpickler`, the mechanism that reads the authors' TF1
checkpoints: it admits only the tensor-rebuilding functions, the storage types
(as dtype tags), `collections.OrderedDict` and plain data, and builds inert
records; any other global is refused with `CheckpointError` before anything runs.
Sizes are bounded before reading: the pickle (`MAX_PICKLE_BYTES`), every storage
read and every tensor (`MAX_STORAGE_BYTES`); storages not asked for are skipped
unread.
"""

import collections
import io
import math
import os
import struct
import zipfile
from typing import NamedTuple

import numpy as np

from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.checkpoints.safe_pickle import RestrictedUnpickler, read_zip_member, restricted_load


# The most pickle read: a zip file's `data.pkl`, or the five pickles of the legacy
# format together. A state dict's pickle holds names, shapes and storage keys, no
# tensor data (the reference AlexNet trunk's: 927 bytes; lpips' alex.pth: 1.4 KB).
MAX_PICKLE_BYTES = 16 * 2**20


# The largest storage read and the largest tensor built: 512 MiB. AlexNet's
# largest storage is its classifier's 151 MB (never read); `features`' is 3.5 MB.
MAX_STORAGE_BYTES = 512 * 2**20


LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


LEGACY_PROTOCOL = 1001


class _StorageType(NamedTuple):
    """Stand-in for `torch.FloatStorage` etc. in persistent ids: a dtype tag."""
    name: str
    dtype: np.dtype


_STORAGE_TYPES = {name: _StorageType(name, np.dtype(code)) for name, code in (
    ("FloatStorage", "f4"), ("DoubleStorage", "f8"), ("HalfStorage", "f2"),
    ("LongStorage", "i8"), ("IntStorage", "i4"), ("ShortStorage", "i2"),
    ("CharStorage", "i1"), ("ByteStorage", "u1"), ("BoolStorage", "?"))}


class _Storage(NamedTuple):
    """A storage a persistent id named: root `key`, its `numel` elements of `dtype`,
    and the window [start, start + length) of it this reference sees (a legacy
    storage view; otherwise the whole)."""
    key: str
    dtype: np.dtype
    numel: int
    start: int
    length: int


class _Tensor(NamedTuple):
    """A tensor record: a strided window (in elements) of a storage."""
    storage: _Storage
    offset: int
    shape: tuple
    strides: tuple


def _is_count(value):
    return type(value) is int and value >= 0


def _dims(value, what):
    if not (isinstance(value, (tuple, list)) and len(value) <= 32
            and all(_is_count(v) for v in value)):
        raise ValueError(f"tensor {what} must be a tuple of non-negative ints, "
                         f"got {value!r:.100}")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for `torch._utils._rebuild_tensor`: checks types, builds a record."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"tensor storage must be a storage record, got "
                         f"{type(storage).__name__}")
    if not _is_count(storage_offset):
        raise ValueError(f"tensor offset must be a non-negative int, got {storage_offset!r:.50}")
    size, stride = _dims(size, "size"), _dims(stride, "stride")
    if len(size) != len(stride):
        raise ValueError(f"tensor size {size} and stride {stride} differ in length")
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2` (gradient flags ignored)."""
    del requires_grad, backward_hooks, metadata
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stand-in for `torch._utils._rebuild_parameter`: a parameter is its tensor."""
    del requires_grad, backward_hooks
    if not isinstance(data, _Tensor):
        raise ValueError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


class _PlainUnpickler(RestrictedUnpickler):
    """The legacy format's header pickles and key list: plain data only."""

    allowed = {}
    admits = "numbers, strings and lists"


class _TorchUnpickler(RestrictedUnpickler):
    """A PyTorch state-dict pickle: tensor records over storage records, nothing else.

    `legacy` selects the persistent-id layout (6 entries, with the storage-view
    record, instead of 5). `storages` collects every root storage named:
    key -> (dtype, numel).
    """

    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        **{("torch", name): storage for name, storage in _STORAGE_TYPES.items()},
    }
    admits = "tensors, their storages and ordered dicts"

    def __init__(self, stream, legacy):
        super().__init__(stream, encoding="utf-8")
        self.legacy = legacy
        self.storages = {}

    def persistent_load(self, pid):
        size = 6 if self.legacy else 5
        if not (isinstance(pid, tuple) and len(pid) == size and pid[0] == "storage"):
            raise ValueError(f"expected a persistent id ('storage', type, key, location, "
                             f"numel{', view' if self.legacy else ''}), got {pid!r:.120}")
        _, storage_type, key, location, numel = pid[:5]
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str)
                and isinstance(location, str) and _is_count(numel)):
            raise ValueError(f"malformed storage id {pid!r:.120}")
        known = self.storages.setdefault(key, (storage_type.dtype, numel))
        if known != (storage_type.dtype, numel):
            raise ValueError(f"storage '{key}' is named as {known} and as "
                             f"{(storage_type.dtype, numel)}")
        start, length = 0, numel
        view = pid[5] if self.legacy else None
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                    and _is_count(view[1]) and _is_count(view[2])
                    and view[1] + view[2] <= numel):
                raise ValueError(f"malformed storage view {view!r:.120} of storage '{key}' "
                                 f"({numel} elements)")
            start, length = view[1], view[2]
        return _Storage(key, storage_type.dtype, numel, start, length)


def read_torch_state_dict(path, names=None):
    """Tensors of a PyTorch state-dict file (`torch.save(module.state_dict())`), as numpy.

    Reads the zip format and the legacy format (see the module docstring) without
    PyTorch and without running code from the file; storages tagged with a GPU
    location load all the same.

    Args:
        path: str or PathLike. The `.pth` / `.pt` file.
        names: iterable of str or None. Only these tensors are built and only their
            storages read; None reads every tensor. Names absent from the file are
            absent from the result (the caller says what it needed).

    Returns:
        dict {name: numpy array in the file's dtype and shape}.

    Raises:
        CheckpointError: naming the file: missing, neither PyTorch format, corrupt or
            truncated, hostile (its pickle names anything but tensors and storages),
            not a dict of tensors, or sizes over `MAX_PICKLE_BYTES` /
            `MAX_STORAGE_BYTES`.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e})") from None
    if start == b"PK\x03\x04":
        return _read_zip_format(path, names)
    if start[:1] == b"\x80":  # a pickle's PROTO opcode
        return _read_legacy_format(path, names)
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither the zip format "
                          "of torch.save nor its legacy pickle format)")


def _state_dict(obj, path, names):
    """The tensor records of the unpickled object that `names` asks for."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict "
                              "(a dict of tensors)")
    wanted = obj.keys() if names is None else [n for n in names if n in obj]
    records = {}
    for name in wanted:
        if not isinstance(obj[name], _Tensor):
            if names is None:
                continue
            raise CheckpointError(f"{path}: '{name}' is a {type(obj[name]).__name__}, "
                                  "not a tensor")
        records[name] = obj[name]
    return records


def _storage_bytes(path, key, dtype, numel):
    nbytes = numel * dtype.itemsize
    if nbytes > MAX_STORAGE_BYTES:
        raise CheckpointError(
            f"{path}: storage '{key}' declares {nbytes:,} bytes, over the "
            f"{MAX_STORAGE_BYTES:,}-byte limit; refused unread, the file may be hostile")
    return nbytes


def _build(path, name, record, raw, byteorder):
    """The numpy array of tensor record `record` over its storage's bytes `raw`."""
    storage = record.storage
    dtype = storage.dtype.newbyteorder("<" if byteorder == "little" else ">")
    count = math.prod(record.shape)
    if count * dtype.itemsize > MAX_STORAGE_BYTES:
        raise CheckpointError(
            f"{path}: tensor '{name}' of shape {record.shape} declares "
            f"{count * dtype.itemsize:,} bytes, over the {MAX_STORAGE_BYTES:,}-byte limit; "
            "refused, the file may be hostile")
    if count == 0:
        return np.zeros(record.shape, storage.dtype)
    window = np.frombuffer(raw, dtype)[storage.start:storage.start + storage.length]
    last = record.offset + sum((n - 1) * s for n, s in zip(record.shape, record.strides))
    if last >= len(window):
        raise CheckpointError(
            f"{path}: tensor '{name}' (shape {record.shape}, stride {record.strides}, "
            f"offset {record.offset}) reaches element {last} of a storage of "
            f"{len(window)}; the file is corrupt")
    view = np.lib.stride_tricks.as_strided(
        window[record.offset:], record.shape, [s * dtype.itemsize for s in record.strides],
        writeable=False)
    return np.array(view, dtype=storage.dtype)  # a native-order copy


def _read_zip_format(path, names):
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            pickles = sorted(n for n in members
                             if n.endswith("/data.pkl") and n.count("/") == 1)
            if len(pickles) != 1:
                raise CheckpointError(
                    f"{path}: a zip file, but not a PyTorch checkpoint (expected one "
                    f"'<name>/data.pkl' inside, found {pickles or 'none'})")
            prefix = pickles[0][:-len("data.pkl")]
            byteorder = "little"
            if prefix + "byteorder" in members:
                byteorder = read_zip_member(archive, prefix + "byteorder", 16, path) \
                    .decode("ascii", "replace")
                if byteorder not in ("little", "big"):
                    raise CheckpointError(f"{path}: unknown byte order {byteorder!r:.20}")
            data = read_zip_member(archive, pickles[0], MAX_PICKLE_BYTES, path)
            unpickler = None

            def make(stream):
                nonlocal unpickler
                unpickler = _TorchUnpickler(stream, legacy=False)
                return unpickler

            obj = restricted_load(make, io.BytesIO(data), path, f"'{pickles[0]}'")
            records = _state_dict(obj, path, names)
            raws = {}
            for record in records.values():
                storage = record.storage
                if storage.key in raws:
                    continue
                member = f"{prefix}data/{storage.key}"
                if member not in members:
                    raise CheckpointError(f"{path}: storage '{member}' is missing; the "
                                          "file is corrupt or truncated")
                nbytes = _storage_bytes(path, storage.key, storage.dtype, storage.numel)
                found = archive.getinfo(member).file_size
                if found != nbytes:
                    raise CheckpointError(
                        f"{path}: storage '{member}' holds {found:,} bytes, its tensors "
                        f"declare {storage.numel:,} x {storage.dtype.itemsize}; the file "
                        "is corrupt")
                raws[storage.key] = read_zip_member(archive, member, nbytes, path)
    except CheckpointError:
        raise
    except Exception as e:  # zipfile, zlib: corrupt, truncated, encrypted
        raise CheckpointError(f"{path}: not a readable PyTorch zip file ({e}); it may be "
                              "truncated, download it again") from None
    return {name: _build(path, name, record, raws[record.storage.key], byteorder)
            for name, record in records.items()}


def _read_legacy_format(path, names):
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # The five pickles come first; together they may take MAX_PICKLE_BYTES.
            limit = MAX_PICKLE_BYTES
            head = io.BytesIO(f.read(limit))

            def load(make, what):
                try:
                    return restricted_load(make, head, path, what)
                except CheckpointError:
                    if limit < size and head.tell() == limit:
                        raise CheckpointError(
                            f"{path}: its pickles run past {limit:,} bytes, "
                            "the limit; refused, the file may be hostile") from None
                    raise

            magic = load(_PlainUnpickler, "header")
            if magic != LEGACY_MAGIC:
                raise CheckpointError(
                    f"{path}: not a PyTorch checkpoint (a pickle, but without the "
                    "magic number of torch.save's legacy format)")
            protocol = load(_PlainUnpickler, "header")
            if protocol != LEGACY_PROTOCOL:
                raise CheckpointError(f"{path}: unknown PyTorch legacy protocol "
                                      f"{protocol!r:.40} (expected {LEGACY_PROTOCOL})")
            if not isinstance(load(_PlainUnpickler, "header"), dict):
                raise CheckpointError(f"{path}: corrupt header (system facts are not a dict)")
            unpickler = None

            def make(stream):
                nonlocal unpickler
                unpickler = _TorchUnpickler(stream, legacy=True)
                return unpickler

            obj = load(make, "state dict pickle")
            keys = load(_PlainUnpickler, "storage key list")
            if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)
                    and len(set(keys)) == len(keys)):
                raise CheckpointError(f"{path}: corrupt storage key list")
            if set(keys) != set(unpickler.storages):
                raise CheckpointError(
                    f"{path}: the storage key list {sorted(keys)[:5]} does not match the "
                    f"storages the tensors use {sorted(unpickler.storages)[:5]}; the file "
                    "is corrupt")
            records = _state_dict(obj, path, names)
            needed = {record.storage.key for record in records.values()}
            raws = {}
            f.seek(head.tell())
            for key in keys:
                header = f.read(8)
                if len(header) < 8:
                    raise CheckpointError(f"{path}: truncated before storage '{key}'")
                (count,) = struct.unpack("<q", header)
                dtype, numel = unpickler.storages[key]
                if count != numel:
                    raise CheckpointError(
                        f"{path}: storage '{key}' holds {count} elements, its tensors "
                        f"declare {numel}; the file is corrupt")
                nbytes = numel * dtype.itemsize
                if key in needed:
                    _storage_bytes(path, key, dtype, numel)
                if nbytes > size - f.tell():
                    raise CheckpointError(f"{path}: truncated in storage '{key}' "
                                          f"({nbytes:,} bytes declared)")
                if key in needed:
                    raws[key] = f.read(nbytes)
                else:
                    f.seek(nbytes, os.SEEK_CUR)
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e})") from None
    # Legacy storages are little-endian whatever machine wrote them.
    return {name: _build(path, name, record, raws[record.storage.key], "little")
            for name, record in records.items()}
