"""The authors' TF1 checkpoints: parity with their graph, exact round trips, safety."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from kpac_tf import (CheckpointError, build_model, load_tf1_npz, read_tf1_npz,
                     save_tf1_npz, tf1_variables, write_tf1_npz)
from kpac_tf.checkpoints import convert_tf1_checkpoint, validation_inputs
from kpac_tf.tf1_graph import tf1_forward

LEVEL_NAMES = {"2": "single_2level", "3": "single_3level"}


def reference(reference_dir, level):
    io_ = np.load(reference_dir / f"tf1_{level}level_io.npz")
    return reference_dir / f"tf1_{level}level_weights.npz", io_["input"], io_["output"]


@pytest.mark.parametrize("level", ["2", "3"])
def test_reproduces_the_authors_tf1_output(reference_dir, level):
    weights, x, expected = reference(reference_dir, level)
    model = load_tf1_npz(build_model(LEVEL_NAMES[level]), weights)
    assert np.max(np.abs(model(x).numpy() - expected)) <= 1e-4
    assert np.max(np.abs(model.predict(x, verbose=0) - expected)) <= 1e-4


@pytest.mark.parametrize("level", ["2", "3"])
def test_raw_op_graph_reproduces_the_authors_output(reference_dir, level):
    """Validates the reference graph itself before it judges other inputs."""
    weights, x, expected = reference(reference_dir, level)
    out = tf1_forward(LEVEL_NAMES[level], read_tf1_npz(weights), x)
    assert np.max(np.abs(out - expected)) <= 1e-5


@pytest.mark.parametrize("level,shape", [
    ("2", (2, 36, 52, 3)), ("2", (1, 4, 8, 3)), ("2", (1, 100, 60, 3)),
    ("3", (2, 40, 24, 3)), ("3", (1, 8, 16, 3)), ("3", (1, 56, 104, 3)),
])
def test_matches_the_authors_graph_at_other_sizes_and_batches(reference_dir, level, shape):
    weights, _, _ = reference(reference_dir, level)
    name = LEVEL_NAMES[level]
    model = load_tf1_npz(build_model(name), weights)
    x = np.random.RandomState(sum(shape)).uniform(-1, 1, shape).astype("float32")
    expected = tf1_forward(name, read_tf1_npz(weights), x)
    assert np.max(np.abs(model(x).numpy() - expected)) <= 1e-4


def test_dual_matches_the_authors_graph(tmp_path):
    model = build_model("dual")
    path = tmp_path / "dual.npz"
    save_tf1_npz(model, path)
    tensors = read_tf1_npz(path)
    assert len(tensors) == 66
    for shape in [(2, 32, 48, 3), (1, 24, 16, 3)]:
        views = validation_inputs("dual", batch=shape[0], height=shape[1], width=shape[2])
        out = model(views).numpy()
        assert np.max(np.abs(out - tf1_forward("dual", tensors, *views))) <= 1e-4
        # The centre view is the residual's base: changing it shifts the output 1:1.
        shifted = model([views[0] + 0.25, views[1], views[2]]).numpy()
        np.testing.assert_allclose(shifted - out, 0.25, atol=1e-5)


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
    weights, _, _ = reference(reference_dir, level)
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


def npy_with_pickle(obj, protocol):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (len(obj),)})
    return header.getvalue() + pickle.dumps(obj, protocol=protocol)


def object_array(tensors):
    holder = np.empty(len(tensors), dtype=object)
    holder[:] = tensors
    return holder


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_python3_resaves(tmp_path, protocol):
    tensors = [np.arange(6, dtype="float32").reshape(2, 3), np.ones(4, "float32")]
    path = tmp_path / "resave.npz"
    write_npz_member(path, npy_with_pickle(object_array(tensors), protocol))
    for ours, expected in zip(read_tf1_npz(path), tensors):
        np.testing.assert_array_equal(ours, expected)


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


@pytest.mark.parametrize("make,match", [
    (lambda p, ref: p.write_bytes(ref.read_bytes()[: len(ref.read_bytes()) // 2]),
     "not a readable npz"),
    (lambda p, ref: p.write_text("definitely not a zip"), "not a readable npz"),
    (lambda p, ref: np.savez(p, arr_0=np.zeros(3)), "no 'params.npy'"),
    (lambda p, ref: np.savez(p, params=np.zeros(3)), "expected the 1-D object array"),
    (lambda p, ref: write_npz_member(p, npy_payload(ref)[:5000]), "corrupt"),
    (lambda p, ref: write_npz_member(p, npy_with_pickle(object_array(["text"]), 2)), "not a float array"),
])
def test_broken_files_raise_checkpoint_errors(reference_dir, tmp_path, make, match):
    path = tmp_path / "broken.npz"
    make(path, reference(reference_dir, "2")[0])
    with pytest.raises(CheckpointError, match=f"broken.npz.*{match}|{match}.*broken.npz"):
        load_tf1_npz(build_model("single_2level", channels=4), path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="absent.npz: no such checkpoint"):
        read_tf1_npz(tmp_path / "absent.npz")
    assert issubclass(CheckpointError, ValueError)


def test_wrong_network_names_the_first_bad_tensor(reference_dir):
    model = build_model("single_2level")
    before = [w.numpy().copy() for w in model.weights]
    weights = reference(reference_dir, "3")[0]
    with pytest.raises(CheckpointError) as info:
        load_tf1_npz(model, weights)
    message = str(info.value)
    for part in ["tf1_3level_weights.npz", "tensor 12", "dc1/0/W", "kpac_0/shared_kernel",
                 "(5, 5, 96, 48)", "(3, 3, 96, 96)"]:
        assert part in message
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_wrong_tensor_count(tmp_path, reference_dir):
    tensors = read_tf1_npz(reference(reference_dir, "2")[0])
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


def test_convert_validates_and_writes_a_keras_file(reference_dir, tmp_path):
    import keras

    weights = reference(reference_dir, "2")[0]
    out = tmp_path / "single_2level.keras"
    report = convert_tf1_checkpoint(weights, "single_2level", out)
    assert report["params"] == 1_578_277
    assert report["max_abs_diff"] <= 1e-4
    x = validation_inputs("single_2level")
    model = keras.models.load_model(out)
    assert report["checksum"] == pytest.approx(float(np.abs(model(x).numpy()).sum()), rel=1e-6)
    with pytest.raises(CheckpointError, match="expected shape"):
        convert_tf1_checkpoint(weights, "single_3level", tmp_path / "wrong.keras")
    assert not (tmp_path / "wrong.keras").exists()
