"""kpac_tf.checkpoints.tf1_npz: the authors' TF1 checkpoints read into our networks
(their output reproduced), written back byte-exact, and refused safely when hostile or
broken."""

import io
import os
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

from kpac_tf import (CheckpointError, build_model, load_tf1_npz, read_tf1_npz, save_tf1_npz,
                     tf1_variables, write_tf1_npz)
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.checkpoints.tf1_npz import MAX_PARAMS_BYTES
from tests.test_case import LEVEL_NAMES, tf1_reference


def authors_order(levels):
    """The checkpoint order from the facts sheet, as (layer, kind) pairs."""
    encoder = ["c0", "c0_2", "c2", "c2_2", "c3", "c3_2"] + (["c4", "c4_2"] if levels == 3 else [])
    names = [f"deblur/{n}/{k}" for n in encoder for k in "Wb"]
    for i in range(2):
        names.append(f"dc1/{i}/W")
        for layer in ["sca_dc1", "sca_dc2", "sca_dc3", "sca_dc4", "sca_c2",
                      "sha_c1", "sha_c2", "cf"]:
            names += [f"{layer}/{i}/W", f"{layer}/{i}/b"]
    decoder = ["cm_1", "cm_2"] + (["d0", "d0_2"] if levels == 3 else []) + [
        "d1", "d1_2", "d2", "d2_2"]
    return names + [f"deblur/{n}/{k}" for n in decoder for k in "Wb"]


@pytest.mark.parametrize("name,levels,count", [
    ("single_2level", 2, 58), ("single_3level", 3, 66), ("dual", 3, 66)])
def test_checkpoint_order_is_the_authors(name, levels, count):
    names = [n for n, _ in tf1_variables(build_model(name))]
    assert names == authors_order(levels)
    assert len(names) == count


def npy_payload(path):
    with zipfile.ZipFile(path) as archive:
        return archive.read("params.npy")


@pytest.mark.parametrize("level", ["2", "3"])
def test_round_trip_is_byte_exact(reference_dir, tmp_path, level):
    weights, _, _ = tf1_reference(reference_dir, level)
    model = load_tf1_npz(build_model(LEVEL_NAMES[level]), weights)
    out = tmp_path / "resaved.npz"
    save_tf1_npz(model, out)
    # Same pickle stream, byte for byte, as the authors' Python-2 file.
    assert npy_payload(out) == npy_payload(weights)
    # And numpy's own (unsafe) reader agrees on every tensor.
    theirs = np.load(out, allow_pickle=True, encoding="latin1")["params"]
    for ours, tensor in zip(read_tf1_npz(weights), theirs):
        np.testing.assert_array_equal(ours, tensor)


def write_npz_member(path, payload, member="params.npy"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)


def npy_header(count):
    """The `.npy` header numpy writes for a 1-D object array of `count` items."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (count,)})
    return header.getvalue()


def npy_with_pickle(obj, protocol):
    return npy_header(len(obj)) + pickle.dumps(obj, protocol=protocol)


def object_array(tensors):
    holder = np.empty(len(tensors), dtype=object)
    for i, tensor in enumerate(tensors):
        holder[i] = tensor
    return holder


def numpy1_npy(tensors, protocol):
    """`params.npy` byte for byte as numpy 1.x's `np.savez` wrote an object array of
    `tensors` under Python 3: protocol 2 up to numpy 1.16 (bytes as `_codecs.encode`),
    3 in 1.17-1.26. Checked against numpy 1.16.6 and 1.26.4 when written."""
    stream = pickle.dumps(object_array(tensors), protocol=protocol).replace(
        b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    if protocol == 2:
        # numpy 1.16 pickled dtype("f4", False, True) with int flags. Protocol 2 writes
        # array bytes as UTF-8 text, where these three bytes never occur in a row.
        stream = stream.replace(b"\x89\x88\x87", b"K\x00K\x01\x87")
    return npy_header(len(tensors)) + stream


# What writes real checkpoints; the authors' Python 2 files are byte for byte ours.
PRODUCERS = {
    "ours": lambda path, tensors: write_tf1_npz(tensors, path),
    "numpy<=1.16": lambda path, tensors: write_npz_member(path, numpy1_npy(tensors, 2)),
    "numpy1.17-1.26": lambda path, tensors: write_npz_member(path, numpy1_npy(tensors, 3)),
    "numpy-installed": lambda path, tensors: np.savez(path, params=object_array(tensors)),
}


@pytest.mark.parametrize("producer", PRODUCERS)
def test_reads_every_real_producer(tmp_path, producer):
    tensors = [np.linspace(-2, 2, 24, dtype="float32").reshape(2, 1, 3, 4),
               np.full(300, 0.1, "float32")]
    path = tmp_path / "made.npz"
    PRODUCERS[producer](path, tensors)
    for ours, expected in zip(read_tf1_npz(path), tensors, strict=True):
        np.testing.assert_array_equal(ours, expected)


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0",
                    reason="numpy 2's own np.savez is one of the producers")
def test_allow_list_is_exactly_what_real_producers_name(tmp_path, monkeypatch):
    """Every allowed global is needed by a real file, and nothing else is allowed."""
    named = set()

    class Recording(tf1_npz._ArrayOnlyUnpickler):
        def find_class(self, module, name):
            named.add((module, name))
            return super().find_class(module, name)

    monkeypatch.setattr(tf1_npz, "_ArrayOnlyUnpickler", Recording)
    for i, produce in enumerate(PRODUCERS.values()):
        produce(tmp_path / f"{i}.npz", [np.ones((2, 3), "float32"), np.ones(5, "float32")])
        read_tf1_npz(tmp_path / f"{i}.npz")
    assert named == set(tf1_npz._ALLOWED_GLOBALS)


@pytest.mark.parametrize("payload", [
    lambda: npy_with_pickle(object_array([np.ones(3, "float32")]), protocol=5),
    lambda: npy_header(1) + b"\x80\x02cnumpy.core.numeric\n_frombuffer\n)R.",
    lambda: npy_header(1) + b"\x80\x02cnumpy._core.numeric\n_frombuffer\n)R.",
], ids=["pickle.dumps", "numpy1", "numpy2"])
def test_protocol_5_buffers_are_refused(tmp_path, payload):
    """No real producer pickles with protocol 5, so its `_frombuffer` is not allowed."""
    path = tmp_path / "protocol5.npz"
    write_npz_member(path, payload())
    with pytest.raises(CheckpointError, match=r"protocol5\.npz: refused.*numeric\._frombuffer"):
        read_tf1_npz(path)


def test_reads_numpy_savez(tmp_path):
    model = build_model("single_2level", channels=4)
    tensors = [v.numpy() for _, v in tf1_variables(model)]
    path = tmp_path / "savez.npz"
    np.savez(path, params=object_array(tensors))
    clone = load_tf1_npz(build_model("single_2level", channels=4), path)
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.npz"
    write_npz_member(path, npy_with_pickle(
        object_array([np.zeros(3, "float32"), _RunsCode(marker)]), protocol=2))
    model = build_model("single_2level", channels=4)
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(CheckpointError, match=r"hostile\.npz.*refus.*(posix|os)\.system"):
        load_tf1_npz(model, path)
    assert not marker.exists()
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_codecs_encode_only_decodes_latin1(tmp_path):
    stream = (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    path = tmp_path / "codec.npz"
    write_npz_member(path, npy_with_pickle([0], 2)[:128] + stream)
    with pytest.raises(CheckpointError, match="codec.npz: refused.*latin1"):
        read_tf1_npz(path)


def zip_declaring(path, payload, file_size, compression=zipfile.ZIP_STORED):
    """A zip whose `params.npy` holds `payload` but whose central directory, which
    zipfile goes by, declares `file_size` uncompressed bytes (zip64 past 4 GiB)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("params.npy", payload)
        archive.getinfo("params.npy").file_size = file_size


@pytest.mark.parametrize("declared", [MAX_PARAMS_BYTES + 1, 10 * 2**30])
def test_huge_declared_size_is_refused_unread(tmp_path, monkeypatch, declared):
    path = tmp_path / "bomb.npz"
    # A valid checkpoint but for the declared size: it loads if the limit is gone.
    zip_declaring(path, npy_with_pickle(object_array([np.ones(3, "float32")]), 2), declared)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("params.npy").file_size == declared
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *args, **kw: opened.append(args))
    with pytest.raises(CheckpointError, match=(rf"bomb\.npz: 'params\.npy' declares "
                                               rf"{declared:,} bytes.*{MAX_PARAMS_BYTES:,}")):
        read_tf1_npz(path)
    assert not opened


def test_member_under_declaring_its_size_is_not_inflated(tmp_path):
    """`ZipFile.read` would inflate all 64 MiB here before cutting them to the declared
    1 KiB; the reader inflates only the declared size, and the CRC then fails."""
    path = tmp_path / "liar.npz"
    zip_declaring(path, bytes(64 * 2**20), 1024, zipfile.ZIP_DEFLATED)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"liar\.npz: not a readable npz.*CRC"):
            read_tf1_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def zip_with_patched_entry(path, payload, offset, value):
    """A zip of `payload` as `params.npy`, with byte `offset` of its central-directory
    record set to `value` (8: flag bits, 10: compression method)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("params.npy", payload)
    data = bytearray(buffer.getvalue())
    data[data.find(b"PK\x01\x02") + offset] = value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make,match", [
    (lambda p, ref: p.write_bytes(ref.read_bytes()[: len(ref.read_bytes()) // 2]),
     "not a readable npz"),
    (lambda p, ref: p.write_text("definitely not a zip"), "not a readable npz"),
    (lambda p, ref: np.savez(p, arr_0=np.zeros(3)), "no 'params.npy'"),
    (lambda p, ref: np.savez(p, params=np.zeros(3)), "expected the 1-D object array"),
    (lambda p, ref: write_npz_member(p, npy_payload(ref)[:5000]), "corrupt"),
    (lambda p, ref: write_npz_member(p, npy_with_pickle(object_array(["text"]), 2)), "not a float array"),
    (lambda p, ref: zip_with_patched_entry(p, b"\xff" * 64, 10, zipfile.ZIP_DEFLATED),
     "not a readable npz.*invalid block type"),
    (lambda p, ref: zip_with_patched_entry(p, b"\xff" * 64, 10, 99),
     "not a readable npz.*compression method"),
    (lambda p, ref: zip_with_patched_entry(p, b"\xff" * 64, 8, 1),
     "not a readable npz.*encrypted"),
])
def test_broken_files_raise_checkpoint_errors(reference_dir, tmp_path, make, match):
    path = tmp_path / "broken.npz"
    make(path, tf1_reference(reference_dir, "2")[0])
    with pytest.raises(CheckpointError, match=f"broken.npz.*{match}|{match}.*broken.npz"):
        load_tf1_npz(build_model("single_2level", channels=4), path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="absent.npz: no such checkpoint"):
        read_tf1_npz(tmp_path / "absent.npz")
    assert issubclass(CheckpointError, ValueError)


def test_wrong_network_names_the_first_bad_tensor(reference_dir):
    model = build_model("single_2level")
    before = [w.numpy().copy() for w in model.weights]
    weights = tf1_reference(reference_dir, "3")[0]
    with pytest.raises(CheckpointError) as info:
        load_tf1_npz(model, weights)
    message = str(info.value)
    for part in ["tf1_3level_weights.npz", "tensor 12", "dc1/0/W", "kpac_0/shared_kernel",
                 "(5, 5, 96, 48)", "(3, 3, 96, 96)"]:
        assert part in message
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_wrong_tensor_count(tmp_path, reference_dir):
    tensors = read_tf1_npz(tf1_reference(reference_dir, "2")[0])
    path = tmp_path / "short.npz"
    write_tf1_npz(tensors[:-1], path)
    model = build_model("single_2level")
    before = model.get_layer("c0").kernel.numpy().copy()
    with pytest.raises(CheckpointError, match="short.npz: holds 57 tensors.*expects 58"):
        load_tf1_npz(model, path)
    np.testing.assert_array_equal(before, model.get_layer("c0").kernel.numpy())


def test_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"previous contents")

    def broken_writestr(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken_writestr)
    with pytest.raises(OSError, match="disk full"):
        save_tf1_npz(build_model("single_2level", channels=4), path)
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["weights.npz"]
