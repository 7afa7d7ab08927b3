"""PyTorch files written as torch.save writes them (zip and legacy formats), and hostile
pickles, for the reader's tests."""

import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np


MAGIC = 0x1950a86a20f9469cfc6c  # torch.serialization.MAGIC_NUMBER

STORAGE_TYPES = {"float32": "FloatStorage", "float64": "DoubleStorage",
                 "float16": "HalfStorage", "int64": "LongStorage"}


def data(value):
    """Plain data (str, int, tuple, None) as protocol-2 opcodes, without PROTO and STOP."""
    return pickletools.optimize(pickle.dumps(value, protocol=2))[2:-1]


def global_(module, name):
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def tensor_ops(storage_type, key, numel, offset, shape, stride, location="cpu",
               legacy=False, view=None):
    """`_rebuild_tensor_v2(<persistent storage id>, offset, shape, stride, False,
    OrderedDict())` as torch.save pickles a tensor."""
    pid = (pickle.MARK + data("storage") + global_("torch", storage_type) + data(key)
           + data(location) + data(numel) + (data(view) if legacy else b"")
           + pickle.TUPLE + pickle.BINPERSID)
    return (global_("torch._utils", "_rebuild_tensor_v2") + pickle.MARK + pid
            + data(offset) + data(tuple(shape)) + data(tuple(stride)) + pickle.NEWFALSE
            + global_("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
            + pickle.TUPLE + pickle.REDUCE)


def state_dict_pickle(entries):
    """An OrderedDict of {name: opcodes of its value}."""
    body = b"".join(data(name) + ops for name, ops in entries.items())
    return (pickle.PROTO + b"\x02" + global_("collections", "OrderedDict")
            + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.MARK + body + pickle.SETITEMS
            + pickle.STOP)


def contiguous(tensors, legacy=False, location="cpu"):
    """(pickle, storages) for {name: array}, one storage per tensor, as torch.save does."""
    entries, storages = {}, {}
    for i, (name, array) in enumerate(tensors.items()):
        array = np.array(array, order="C")  # keeps 0-d tensors 0-d
        stride = [s // array.itemsize for s in array.strides]
        entries[name] = tensor_ops(STORAGE_TYPES[array.dtype.name], str(i), array.size, 0,
                                   array.shape, stride, location, legacy)
        storages[str(i)] = array
    return state_dict_pickle(entries), storages


def write_zip(path, pickle_bytes, storages, byteorder="little", name="archive"):
    """torch.save's zip format: <name>/data.pkl, <name>/byteorder, <name>/data/<key>."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/data.pkl", pickle_bytes)
        if byteorder is not None:
            archive.writestr(f"{name}/byteorder", byteorder)
        for key, array in storages.items():
            order = "<" if byteorder in ("little", None) else ">"
            archive.writestr(f"{name}/data/{key}",
                             np.asarray(array, array.dtype.newbyteorder(order)).tobytes())
        archive.writestr(f"{name}/version", "3\n")
    return path


def write_legacy(path, pickle_bytes, storages, counts=None):
    """torch.save's legacy format: magic, protocol, system facts, the object, the
    sorted storage keys, then each storage as int64 element count + raw bytes."""
    keys = sorted(storages)
    counts = counts or {}
    parts = [pickle.dumps(MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True,
                           "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
             pickle_bytes, pickle.dumps(keys, protocol=2)]
    for key in keys:
        array = np.asarray(storages[key])
        parts += [struct.pack("<q", counts.get(key, array.size)),
                  np.asarray(array, array.dtype.newbyteorder("<")).tobytes()]
    path.write_bytes(b"".join(parts))
    return path


def save(path, tensors, fmt, **kwargs):
    if fmt == "zip":
        return write_zip(path, *contiguous(tensors), **kwargs)
    return write_legacy(path, *contiguous(tensors, legacy=True, **kwargs))


SMALL = {"a": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
         "b.weight": np.linspace(-1, 1, 2 * 3 * 2 * 2).reshape(2, 3, 2, 2),
         "half": np.array([0.5, -2, 65504], np.float16),
         "steps": np.array(7, np.int64),
         "empty": np.zeros((0, 3), np.float32)}


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Evaluates:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def legacy_with(position, payload, tmp_path):
    """A legacy file whose pickle number `position` (0: magic ... 3: the object) is
    `payload`."""
    pickled, storages = contiguous({"x": np.ones(3, np.float32)}, legacy=True)
    path = write_legacy(tmp_path / "hostile.pth", pickled, storages)
    parts = []
    with open(path, "rb") as f:
        for _ in range(4):  # without unpickling: torch is not importable here
            start = f.tell()
            for _ in pickletools.genops(f):
                pass
            parts.append(path.read_bytes()[start:f.tell()])
        rest = f.read()
    parts[position] = payload
    path.write_bytes(b"".join(parts) + rest)
    return path


def one_tensor_zip(path, numel=3, offset=0, shape=(3,), stride=(1,), raw=None):
    raw = np.ones(3, np.float32) if raw is None else raw
    ops = tensor_ops("FloatStorage", "0", numel, offset, shape, stride)
    return write_zip(path, state_dict_pickle({"x": ops}), {"0": raw})
