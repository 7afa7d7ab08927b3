"""LPIPS v0.1 (AlexNet): parity with the reference implementation, an independent
NumPy check, and the PyTorch-file reader (both formats, hostile and broken files)."""

import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import CheckpointError
from kpac_tf.checkpoints.pytorch import read_torch_state_dict
from kpac_tf.checkpoints import pytorch
from kpac_tf.evaluation import lpips
from kpac_tf.evaluation.lpips import LPIPS

TRUNK_FILE = "lpips_alex_alexnet_trunk.pth"
LINEAR_FILE = "lpips_v0.1_alex.pth"


@pytest.fixture(scope="module")
def files(reference_dir):
    return {"alexnet": reference_dir / TRUNK_FILE, "linear": reference_dir / LINEAR_FILE}


@pytest.fixture(scope="module")
def metric(files):
    return LPIPS.from_files(**files)


@pytest.fixture(scope="module")
def reference(reference_dir):
    return dict(np.load(reference_dir / "lpips_alex_io.npz"))


@pytest.fixture(scope="module")
def weights(files):
    """{name: array} of both files, PyTorch layouts (read by the reader under test,
    itself checked against the reference vectors)."""
    return {**read_torch_state_dict(files["alexnet"]), **read_torch_state_dict(files["linear"])}


def relative_error(ours, expected):
    return float(np.max(np.abs(np.asarray(ours) / expected - 1)))


# ---------------------------------------------------------------------------
# Parity with the reference implementation.


def test_reproduces_the_reference_distances(metric, reference):
    """lpips 0.1.4 on torch computed these from the same two files."""
    assert relative_error(metric(reference["in0"], reference["in1"]),
                          reference["distance"]) <= 1e-3
    layers = metric.per_layer(reference["in0"], reference["in1"]).numpy()
    for k in range(5):
        assert relative_error(layers[:, k], reference[f"layer{k}"]) <= 1e-3


def test_reads_the_reference_files_as_stored(files):
    """The legacy lin-head file (CUDA-tagged) and the zip trunk: names, shapes, dtypes."""
    heads = read_torch_state_dict(files["linear"])
    assert {k: v.shape for k, v in heads.items()} == lpips.LINEAR_SHAPES
    trunk = read_torch_state_dict(files["alexnet"])
    assert {k: v.shape for k, v in trunk.items()} == lpips.TRUNK_SHAPES
    assert all(v.dtype == np.float32 for v in [*heads.values(), *trunk.values()])
    assert all(np.all(v >= 0) for v in heads.values())  # v0.1 heads are clamped >= 0


def numpy_conv(x, w, b, stride, pad):
    """PyTorch's Conv2d on NCHW float64: out[i] = b + sum x[i * stride + k - pad] w[k]."""
    n, _, h, wd = x.shape
    k = w.shape[2]
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    padded = np.zeros((n, x.shape[1], h + 2 * pad, wd + 2 * pad))
    padded[:, :, pad:pad + h, pad:pad + wd] = x
    out = np.broadcast_to(b[None, :, None, None], (n, w.shape[0], oh, ow)).copy()
    for i in range(k):
        for j in range(k):
            taps = padded[:, :, i:i + stride * (oh - 1) + 1:stride,
                          j:j + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", taps, w[:, :, i, j])
    return out


def numpy_max_pool(x):
    """PyTorch's MaxPool2d(3, stride 2), no padding, floor mode."""
    oh, ow = (x.shape[2] - 3) // 2 + 1, (x.shape[3] - 3) // 2 + 1
    return np.max([x[:, :, i:i + 2 * (oh - 1) + 1:2, j:j + 2 * (ow - 1) + 1:2]
                   for i in range(3) for j in range(3)], axis=0)


def numpy_lpips(w, in0, in1):
    """The reference's computation in float64 NumPy, from PyTorch-layout tensors:
    returns (N, 5) per-layer values."""
    shift = np.array([-.030, -.088, -.188])[None, :, None, None]
    scale = np.array([.458, .448, .450])[None, :, None, None]

    def trunk(x):
        x = (np.transpose(x, (0, 3, 1, 2)).astype(np.float64) - shift) / scale
        outs = []
        for name, stride, pad, pool in [("0", 4, 2, False), ("3", 1, 2, True),
                                        ("6", 1, 1, True), ("8", 1, 1, False),
                                        ("10", 1, 1, False)]:
            if pool:
                x = numpy_max_pool(x)
            x = np.maximum(numpy_conv(x, w[f"features.{name}.weight"].astype(np.float64),
                                      w[f"features.{name}.bias"].astype(np.float64),
                                      stride, pad), 0)
            outs.append(x)
        return outs

    layers = []
    for k, (f0, f1) in enumerate(zip(trunk(in0), trunk(in1))):
        f0 = f0 / (np.sqrt(np.sum(f0 ** 2, axis=1, keepdims=True)) + 1e-10)
        f1 = f1 / (np.sqrt(np.sum(f1 ** 2, axis=1, keepdims=True)) + 1e-10)
        head = w[f"lin{k}.model.1.weight"].astype(np.float64)[0, :, 0, 0]
        layers.append(np.einsum("nchw,c->nhw", (f0 - f1) ** 2, head).mean(axis=(1, 2)))
    return np.stack(layers, axis=1)


@pytest.mark.parametrize("height,width,batch", [(31, 31, 2), (37, 50, 1), (64, 96, 2),
                                                (47, 33, 3)])
def test_matches_an_independent_numpy_implementation(metric, weights, rng,
                                                     height, width, batch):
    """Sizes where every floor in PyTorch's size arithmetic bites differently."""
    in0 = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)
    in1 = np.clip(in0 + rng.normal(0, 0.3, in0.shape), -1, 1).astype(np.float32)
    expected = numpy_lpips(weights, in0, in1)
    np.testing.assert_allclose(metric.per_layer(in0, in1).numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(metric(in0, in1).numpy(), expected.sum(axis=1), rtol=1e-4)


def test_random_weights_through_the_constructor(rng):
    trunk = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in lpips.TRUNK_SHAPES.items()}
    heads = {k: rng.uniform(0, 1, s).astype(np.float32) for k, s in lpips.LINEAR_SHAPES.items()}
    in0, in1 = rng.uniform(-1, 1, (2, 2, 40, 45, 3)).astype(np.float32)
    np.testing.assert_allclose(LPIPS(trunk, heads)(in0, in1).numpy(),
                               numpy_lpips({**trunk, **heads}, in0, in1).sum(axis=1),
                               rtol=1e-4)
    with pytest.raises(ValueError, match=r"features\.3\.weight.*\(192, 64, 3, 3\).*"
                                         r"\(192, 64, 5, 5\)"):
        LPIPS({**trunk, "features.3.weight": np.zeros((192, 64, 3, 3))}, heads)


def test_identical_images_give_zero_and_order_does_not_matter(metric, reference):
    in0, in1 = reference["in0"], reference["in1"]
    assert np.all(metric(in0, in0).numpy() == 0)
    np.testing.assert_array_equal(metric(in0, in1).numpy(), metric(in1, in0).numpy())


def test_any_batch_size(metric, reference):
    in0, in1, expected = reference["in0"], reference["in1"], reference["distance"]
    assert relative_error(metric(in0[1:2], in1[1:2]), expected[1:2]) <= 1e-3
    five = metric(np.concatenate([in0, in0[:2]]), np.concatenate([in1, in1[:2]])).numpy()
    assert five.shape == (5,)
    assert relative_error(five, np.concatenate([expected, expected[:2]])) <= 1e-3


def test_under_tf_function(metric, reference, rng):
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    traced = tf.function(metric.__call__, input_signature=[spec, spec])
    assert relative_error(traced(reference["in0"], reference["in1"]),
                          reference["distance"]) <= 1e-3
    in0, in1 = rng.uniform(-1, 1, (2, 1, 33, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(traced(in0, in1).numpy(), metric(in0, in1).numpy(), rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 31x31"):
        traced(in0[:, :30], in1[:, :30])
    with pytest.raises(tf.errors.InvalidArgumentError, match="one shape"):
        traced(in0, in1[:, :, :39])


def test_bad_inputs_are_value_errors(metric, reference):
    in0, in1 = reference["in0"], reference["in1"]
    assert lpips.MIN_SIZE == 31
    metric(in0[:, :31, :31], in1[:, :31, :31])  # the smallest size works
    with pytest.raises(ValueError, match=r"at least 31x31 pixels, got 30x64"):
        metric(in0[:, :30, :64], in1[:, :30, :64])
    with pytest.raises(ValueError, match="one shape"):
        metric(in0, in1[:2])
    with pytest.raises(ValueError, match="one shape"):
        metric(in0, in1[:, :, :90])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        metric(in0[0], in1[0])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        metric(in0[..., :1], in1[..., :1])
    with pytest.raises(ValueError, match="float images in \\[-1, 1\\], got uint8"):
        metric(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.uint8))


# ---------------------------------------------------------------------------
# PyTorch files written byte by byte (torch is not installed, and not needed).

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


@pytest.mark.parametrize("fmt,kwargs", [
    ("zip", {}), ("zip", {"byteorder": "big"}), ("zip", {"byteorder": None}),
    ("legacy", {}), ("legacy", {"location": "cuda:0"})],
    ids=["zip", "zip-big-endian", "zip-no-byteorder", "legacy", "legacy-cuda"])
def test_both_formats_round_trip(tmp_path, fmt, kwargs):
    read = read_torch_state_dict(save(tmp_path / "small.pth", SMALL, fmt, **kwargs))
    assert list(read) == list(SMALL)
    for name, array in SMALL.items():
        assert read[name].dtype == array.dtype and read[name].dtype.isnative
        np.testing.assert_array_equal(read[name], array)
    subset = read_torch_state_dict(tmp_path / "small.pth", names=["b.weight", "absent"])
    assert list(subset) == ["b.weight"]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_strided_tensors_sharing_a_storage(tmp_path, legacy):
    """A transposed view at an offset and a slice, over one storage, as torch saves views."""
    base = np.arange(30, dtype=np.float32)
    entries = {"t": tensor_ops("FloatStorage", "s", 30, 6, (4, 3), (1, 4), legacy=legacy),
               "row": tensor_ops("FloatStorage", "s", 30, 2, (5,), (5,), legacy=legacy)}
    path = tmp_path / "views.pth"
    (write_legacy if legacy else write_zip)(path, state_dict_pickle(entries), {"s": base})
    read = read_torch_state_dict(path)
    np.testing.assert_array_equal(read["t"], base[6:18].reshape(3, 4).T)
    np.testing.assert_array_equal(read["row"], base[2:27:5])


def test_legacy_storage_views(tmp_path):
    """Old torch.save wrote a storage view as (view_key, offset, size) in the id."""
    base = np.arange(10, dtype=np.float64)
    entries = {"v": tensor_ops("DoubleStorage", "root", 10, 1, (3,), (1,), legacy=True,
                               view=("view", 4, 5))}
    path = write_legacy(tmp_path / "view.pth", state_dict_pickle(entries), {"root": base})
    np.testing.assert_array_equal(read_torch_state_dict(path)["v"], [5, 6, 7])


def test_lpips_from_each_file_in_the_other_format(tmp_path, weights, metric, reference):
    """The trunk rewritten as a legacy file and the heads as a zip file give the same
    distances: each reader reads each role."""
    trunk = {k: weights[k] for k in lpips.TRUNK_SHAPES}
    heads = {k: weights[k] for k in lpips.LINEAR_SHAPES}
    other = LPIPS.from_files(alexnet=save(tmp_path / "trunk.pth", trunk, "legacy"),
                             linear=save(tmp_path / "heads.pth", heads, "zip"))
    np.testing.assert_array_equal(other(reference["in0"], reference["in1"]).numpy(),
                                  metric(reference["in0"], reference["in1"]).numpy())


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_storages_not_asked_for_are_never_read(tmp_path, monkeypatch, weights, fmt):
    """Like AlexNet's 151 MB classifier: only `features.*` storages are read."""
    tensors = {**{k: weights[k] for k in lpips.TRUNK_SHAPES},
               "classifier.1.weight": np.ones((1000, 1000), np.float32)}  # 4 MB
    path = save(tmp_path / "alexnet.pth", tensors, fmt)
    monkeypatch.setattr(pytorch, "MAX_STORAGE_BYTES", 4 * 884736)  # features.6, the largest
    trunk = read_torch_state_dict(path, names=lpips.TRUNK_SHAPES)
    assert set(trunk) == set(lpips.TRUNK_SHAPES)
    monkeypatch.setattr(pytorch, "MAX_STORAGE_BYTES", 4 * 884736 - 1)
    with pytest.raises(CheckpointError, match=r"storage '\d+' declares 3,538,944 bytes"):
        read_torch_state_dict(path, names=lpips.TRUNK_SHAPES)


# ---------------------------------------------------------------------------
# Hostile and broken files.


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


@pytest.mark.parametrize("make,payload,match", [
    (lambda p, t: write_zip(t / "hostile.pth", p, {}), RunsShell, r"(posix|os)\.system"),
    (lambda p, t: write_zip(t / "hostile.pth", p, {}), Evaluates, r"(__builtin__|builtins)\.eval"),
    (lambda p, t: legacy_with(3, p, t), RunsShell, r"(posix|os)\.system"),
    (lambda p, t: legacy_with(3, p, t), Evaluates, r"(__builtin__|builtins)\.eval"),
    (lambda p, t: legacy_with(0, p, t), Evaluates, r"(__builtin__|builtins)\.eval"),
    (lambda p, t: legacy_with(2, p, t), RunsShell, r"(posix|os)\.system"),
], ids=["zip-system", "zip-eval", "legacy-system", "legacy-eval", "legacy-magic-eval",
        "legacy-sysinfo-system"])
def test_hostile_pickle_is_refused_without_running(tmp_path, make, payload, match):
    # The payload is live: plain pickle would run it.
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(payload(live), protocol=2))
    assert live.exists()
    marker = tmp_path / "pwned"
    path = make(pickle.dumps(payload(marker), protocol=2), tmp_path)
    with pytest.raises(CheckpointError, match=rf"hostile\.pth: refused, the file may be "
                                              rf"hostile: refusing to load '{match}'"):
        read_torch_state_dict(path)
    with pytest.raises(CheckpointError, match=r"hostile\.pth: refused"):
        LPIPS.from_files(alexnet=path, linear=path)
    assert not marker.exists()


def test_hostile_global_inside_a_storage_id_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    call = pickle.dumps(RunsShell(marker), protocol=2)[2:-1]
    ops = tensor_ops("FloatStorage", "0", 3, 0, (3,), (1,)).replace(
        global_("torch", "FloatStorage"), call)
    path = write_zip(tmp_path / "hostile.pth", state_dict_pickle({"x": ops}),
                     {"0": np.ones(3, np.float32)})
    with pytest.raises(CheckpointError, match=r"refused.*(posix|os)\.system"):
        read_torch_state_dict(path)
    assert not marker.exists()


def one_tensor_zip(path, numel=3, offset=0, shape=(3,), stride=(1,), raw=None):
    raw = np.ones(3, np.float32) if raw is None else raw
    ops = tensor_ops("FloatStorage", "0", numel, offset, shape, stride)
    return write_zip(path, state_dict_pickle({"x": ops}), {"0": raw})


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_text("not a checkpoint"), "not a PyTorch checkpoint"),
    (lambda p: np.savez(p.open("wb"), x=np.zeros(3)),
     r"not a PyTorch checkpoint \(expected one '<name>/data.pkl'"),
    (lambda p: p.write_bytes(pickle.dumps({"x": 1}, protocol=2)), "without the magic number"),
    (lambda p: p.write_bytes(pickle.dumps(MAGIC, 2) + pickle.dumps(1000, 2)),
     "unknown PyTorch legacy protocol 1000"),
    (lambda p: p.write_bytes(save(p, SMALL, "legacy").read_bytes()[:-5]),
     "truncated (in|before) storage"),
    (lambda p: p.write_bytes(save(p, SMALL, "legacy").read_bytes()[:300]),
     "corrupt state dict pickle"),
    (lambda p: p.write_bytes(save(p, SMALL, "zip").read_bytes()[:-300]),
     "not a readable PyTorch zip file"),
    (lambda p: write_zip(p, pickle.dumps([1, 2], 2), {}), "holds a list, not a state dict"),
    (lambda p: write_zip(p, state_dict_pickle({"x": data(3)}), {}), "'x' is a int, not a tensor"),
    (lambda p: one_tensor_zip(p, numel=4), r"'archive/data/0' holds 12 bytes.*4 x 4"),
    (lambda p: one_tensor_zip(p, shape=(4,)), "reaches element 3 of a storage of 3"),
    (lambda p: one_tensor_zip(p, offset=1, shape=(2, 2), stride=(1, 1)),
     "reaches element 3 of a storage of 3"),
    (lambda p: one_tensor_zip(p, shape=(2**20, 2**20), stride=(0, 0)),
     r"tensor 'x' of shape \(1048576, 1048576\) declares 4,398,046,511,104 bytes, over"),
    (lambda p: one_tensor_zip(p, numel=2**40),
     r"storage '0' declares 4,398,046,511,104 bytes, over the 536,870,912-byte limit"),
    (lambda p: write_legacy(p, contiguous({"x": np.ones(3, np.float32)}, True)[0],
                            {"0": np.ones(3, np.float32)}, counts={"0": 2**40}),
     "storage '0' holds 1099511627776 elements, its tensors declare 3"),
    (lambda p: write_legacy(p, state_dict_pickle({"x": tensor_ops(
        "FloatStorage", "0", 2**40, 0, (3,), (1,), legacy=True)}), {"0": np.ones(3, np.float32)},
        counts={"0": 2**40}), "storage '0' declares 4,398,046,511,104 bytes, over"),
    (lambda p: write_legacy(p, contiguous({"x": np.ones(3, np.float32)}, True)[0],
                            {"0": np.ones(3, np.float32), "1": np.ones(1, np.float32)}),
     "storage key list .* does not match"),
    (lambda p: write_zip(p, state_dict_pickle(
        {"x": global_("torch", "FloatStorage") + data((10**12,)) + pickle.REDUCE}), {}),
     "corrupt.*not callable"),
    (lambda p: write_zip(p, state_dict_pickle({"x": tensor_ops(
        "FloatStorage", "0", 3, 0, (3,), (1,), legacy=True)}), {"0": np.ones(3, np.float32)}),
     r"expected a persistent id \('storage', type, key, location, numel\)"),
], ids=["text", "npz", "plain-pickle", "legacy-protocol", "legacy-truncated",
        "legacy-cut-in-pickle", "zip-truncated", "not-a-dict", "not-a-tensor",
        "zip-storage-size", "past-storage-end", "past-storage-end-2d", "huge-tensor",
        "huge-zip-storage", "legacy-count-mismatch", "huge-legacy-storage",
        "legacy-extra-key", "storage-type-called", "legacy-id-in-zip"])
def test_broken_files_are_refused_clearly(tmp_path, make, match):
    path = tmp_path / "broken.pth"
    make(path)
    with pytest.raises(CheckpointError, match=rf"broken\.pth: .*{match}"):
        read_torch_state_dict(path, names=["x"])


def test_oversized_pickles_are_refused_unread(tmp_path, monkeypatch):
    zip_path = save(tmp_path / "big.pth", SMALL, "zip")
    legacy_path = save(tmp_path / "big_legacy.pth", SMALL, "legacy")
    monkeypatch.setattr(pytorch, "MAX_PICKLE_BYTES", 100)
    opened = []
    original_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, name, *a, **kw: opened.append(getattr(name, "filename", name))
                        or original_open(self, name, *a, **kw))
    with pytest.raises(CheckpointError, match=r"big\.pth: 'archive/data\.pkl' declares "
                                              r"[\d,]+ bytes.*over the 100-byte limit"):
        read_torch_state_dict(zip_path)
    assert "archive/data.pkl" not in opened
    with pytest.raises(CheckpointError, match=r"big_legacy\.pth: its pickles run past "
                                              r"100 bytes"):
        read_torch_state_dict(legacy_path)


def test_missing_and_swapped_files_say_what_is_needed(tmp_path, files, weights):
    with pytest.raises(CheckpointError, match=r"nowhere\.pth: no such file"):
        LPIPS.from_files(alexnet=tmp_path / "nowhere.pth", linear=files["linear"])
    with pytest.raises(CheckpointError, match=rf"{LINEAR_FILE}: no tensor 'features\.0\.weight'"
                                              r"; it comes from torchvision's.*"
                                              r"alexnet-owt-7be5be79\.pth"):
        LPIPS.from_files(alexnet=files["linear"], linear=files["linear"])
    with pytest.raises(CheckpointError, match=rf"{TRUNK_FILE}: no tensor 'lin0\.model\.1\.weight'"
                                              r"; it comes from the lpips package's "
                                              r"weights/v0\.1/alex\.pth"):
        LPIPS.from_files(alexnet=files["alexnet"], linear=files["alexnet"])
    heads = {k: weights[k] for k in lpips.LINEAR_SHAPES}
    heads["lin2.model.1.weight"] = np.ones((1, 383, 1, 1), np.float32)
    with pytest.raises(CheckpointError, match=r"wrong\.pth: tensor 'lin2\.model\.1\.weight' "
                                              r"has shape \(1, 383, 1, 1\), expected "
                                              r"\(1, 384, 1, 1\)"):
        LPIPS.from_files(alexnet=files["alexnet"], linear=save(tmp_path / "wrong.pth", heads,
                                                               "legacy"))
    del heads["lin4.model.1.weight"]
    heads["lin2.model.1.weight"] = weights["lin2.model.1.weight"]
    with pytest.raises(CheckpointError, match=r"no tensor 'lin4\.model\.1\.weight'"):
        LPIPS.from_files(alexnet=files["alexnet"], linear=save(tmp_path / "four.pth", heads,
                                                               "zip"))


def test_state_dict_metadata_is_inert(tmp_path):
    """torch's state dicts carry `_metadata`, set by BUILD on the OrderedDict (as in
    lpips' alex.pth); BUILD on a tensor record is refused as corrupt."""
    pickled, storages = contiguous({"x": np.ones(3, np.float32)})
    metadata = data({"_metadata": {"": {"version": 1}}}) + pickle.BUILD
    path = write_zip(tmp_path / "meta.pth", pickled[:-1] + metadata + pickle.STOP, storages)
    np.testing.assert_array_equal(read_torch_state_dict(path)["x"], np.ones(3))
    ops = tensor_ops("FloatStorage", "0", 3, 0, (3,), (1,)) + data({"shape": (9,)}) + pickle.BUILD
    write_zip(path, state_dict_pickle({"x": ops}), storages)
    with pytest.raises(CheckpointError, match=r"meta\.pth: corrupt"):
        read_torch_state_dict(path)
