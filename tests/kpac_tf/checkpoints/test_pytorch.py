"""kpac_tf.checkpoints.pytorch: the PyTorch-file reader, both formats, hostile and
broken files."""

import pickle
import zipfile

import numpy as np
import pytest

from kpac_tf import CheckpointError
from kpac_tf.checkpoints import pytorch
from kpac_tf.checkpoints.pytorch import read_torch_state_dict
from tests.kpac_tf.checkpoints.torch_files import (MAGIC, RunsShell, SMALL, contiguous, data,
                                                   global_, one_tensor_zip, save,
                                                   state_dict_pickle, tensor_ops,
                                                   write_legacy, write_zip)


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
