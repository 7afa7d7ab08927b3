"""kpac_tf.evaluation.lpips: LPIPS v0.1 (AlexNet), parity with the reference
implementation and an independent NumPy check; weights from either PyTorch format."""

import pickle

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import CheckpointError
from kpac_tf.checkpoints import pytorch
from kpac_tf.checkpoints.pytorch import read_torch_state_dict
from kpac_tf.evaluation import lpips
from kpac_tf.evaluation.lpips import LPIPS
from tests.kpac_tf.checkpoints.torch_files import (Evaluates, RunsShell, legacy_with, save,
                                                   write_zip)


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
