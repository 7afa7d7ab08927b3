"""What more than one test file uses: harnesses that put a layer or a whole network
through its paces (keras-hub's `run_layer_test` / `run_backbone_test` /
`run_precision_test`), the repository's paths, the TF1 reference vectors, a tiny
training configuration."""

import contextlib
import os
import pathlib
import struct
import subprocess
import sys
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.training import run_folder, settings

REPO = pathlib.Path(__file__).resolve().parents[1]
# The apps of experiments/, by module name.
APPS = sorted(p.stem for p in (REPO / "experiments").glob("*.py")
              if p.stem not in ("__init__", "common_flags"))
# The DPDD builder's dummy archive (its layout and naming, a few small scenes).
DPDD_DUMMY = REPO / "kpac_tf" / "datasets" / "dpdd" / "dummy_data"
LEVEL_NAMES = {"2": "single_2level", "3": "single_3level"}


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape,
                   tmp_path, expected_num_trainable_weights=None):
    """Build, eager and traced call, config round trip, .keras save/load, a train step.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_shape: tuple, concrete input shape (batch first).
        expected_output_shape: tuple, the output's concrete shape.
        tmp_path: pathlib.Path for the saved model.
        expected_num_trainable_weights: int or None.

    Returns:
        the built layer.
    """
    x = np.random.RandomState(0).uniform(-1, 1, input_shape).astype("float32")
    layer = layer_cls(**init_kwargs)
    eager = layer(x)
    assert tuple(eager.shape) == tuple(expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    traced = tf.function(layer)(x)
    np.testing.assert_allclose(traced.numpy(), eager.numpy(), atol=1e-5)

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), eager.numpy(), atol=1e-6)

    inputs = keras.Input(input_shape[1:])
    model = keras.Model(inputs, layer(inputs))
    path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(x, np.zeros(expected_output_shape, "float32"))
    changed = [not np.array_equal(b, w.numpy())
               for b, w in zip(before, model.trainable_weights)]
    assert all(changed), "every trainable weight should receive a gradient"
    return layer


def _network_inputs(model, shape, seed=0):
    rng = np.random.RandomState(seed)
    inputs = [rng.uniform(-1, 1, shape).astype("float32") for _ in model.inputs]
    return inputs if len(inputs) > 1 else inputs[0]


def run_model_test(build, sizes, tmp_path):
    """A whole network through its paces (keras-hub's `run_backbone_test`): calls at
    several sizes and batches, eager and traced once for any size, `.keras` save/load
    with equal outputs, and a loss whose gradient reaches every trainable weight.

    Args:
        build: callable () -> keras.Model (e.g. `lambda: build_model(name, channels=4)`).
        sizes: list of (batch, height, width) the network accepts.
        tmp_path: pathlib.Path for the saved model.

    Returns:
        the built model.
    """
    model = build()
    traced = tf.function(model, input_signature=[
        [tf.TensorSpec((None, None, None, 3))] * len(model.inputs)
        if len(model.inputs) > 1 else tf.TensorSpec((None, None, None, 3))])
    for batch, height, width in sizes:
        x = _network_inputs(model, (batch, height, width, 3))
        eager = model(x).numpy()
        assert eager.shape == (batch, height, width, 3)
        np.testing.assert_allclose(traced(x).numpy(), eager, atol=1e-5)
    assert traced.experimental_get_tracing_count() == 1  # one trace served every size

    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    assert restored.count_params() == model.count_params()

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(model(x, training=True)))
    gradients = tape.gradient(loss, model.trainable_weights)
    unreached = [w.path for g, w in zip(gradients, model.trainable_weights)
                 if g is None or not np.any(g.numpy())]
    assert not unreached, f"weights the loss does not reach: {unreached}"
    return model


def run_precision_test(build, size, tolerance):
    """A network built with dtype "mixed_bfloat16" (keras-hub's `run_precision_test`):
    float32 weights, bfloat16 compute in every layer, Keras' global policy untouched,
    and, given the float32 network's weights, an output within `tolerance` (max abs,
    network range) of the float32 output.

    Args:
        build: callable (dtype) -> keras.Model, every layer in that dtype policy.
        size: (batch, height, width).
        tolerance: float.
    """
    reference = build("float32")
    mixed = build("mixed_bfloat16")
    assert keras.mixed_precision.dtype_policy().name == "float32"
    assert all(w.dtype == "float32" for w in mixed.weights)
    assert {layer.dtype_policy.name for layer in mixed._flatten_layers(include_self=False)
            if not isinstance(layer, keras.layers.InputLayer)} == {"mixed_bfloat16"}
    mixed.set_weights(reference.get_weights())
    x = _network_inputs(reference, (*size, 3))
    difference = np.abs(tf.cast(mixed(x), tf.float32).numpy() - reference(x).numpy())
    assert difference.max() < tolerance, difference.max()


def tf1_reference(reference_dir, level):
    """(weights path, input, output) the authors' TF1 code computed for `level` "2"/"3"."""
    io_ = np.load(reference_dir / f"tf1_{level}level_io.npz")
    return reference_dir / f"tf1_{level}level_weights.npz", io_["input"], io_["output"]


def tiny_config(model_dir, data_dir, **overrides):
    """A TrainConfig of a few steps on the synthetic `tiny` config, 4-channel networks."""
    values = dict(model_dir=str(model_dir), dataset="synthetic", dataset_config="tiny",
                  data_dir=data_dir, steps=4, batch_size=2, crop_size=32,
                  model_overrides={"channels": 4}, log_every=2, eval_every=2,
                  save_every=2, eval_images=2, learning_rate=1e-3)
    values.update(overrides)
    return settings.make_config(None, **values)


def weights_of(model_dir):
    """The weights (numpy) of a run folder's final model.keras."""
    return [w.numpy() for w in keras.models.load_model(
        run_folder.path(model_dir, run_folder.FINAL_MODEL)).weights]


def count_examples_read(builder, monkeypatch):
    """Names of the examples the builder's datasets yield, as they are read."""
    read = []
    real_as_dataset = type(builder).as_dataset

    def counting_as_dataset(self, *args, **kwargs):
        def count(example):
            name = tf.py_function(lambda n: read.append(n.numpy()) or n,
                                  [example["name"]], tf.string)
            return {**example, "name": tf.ensure_shape(name, [])}
        return real_as_dataset(self, *args, **kwargs).map(count)

    monkeypatch.setattr(type(builder), "as_dataset", counting_as_dataset)
    return read


@contextlib.contextmanager
def run_folder_held(folder):
    """Another process holding `folder`'s trainer lock (`run_folder.lock`) while the
    context lasts; yields the process (SIGKILLed at the end, leaving its lock file)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom kpac_tf.training import run_folder\n"
         "with run_folder.lock(sys.argv[1]):\n    print('held', flush=True)\n"
         "    time.sleep(120)\n", str(folder)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@contextlib.contextmanager
def small_disk(folder, size):
    """A tmpfs of `size` ("64m") mounted on `folder` while the context lasts; the
    test is skipped where mounting is not permitted (it needs root)."""
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def remount(folder, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def streamed_png(path, width, height, channels=3):
    """Writes a valid black 8-bit PNG of width x height (1, 3 or 4 channels) row block
    by row block, never holding the image: 400 MP take a few MB on disk."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    colour = {1: 0, 3: 2, 4: 6}[channels]
    compressor = zlib.compressobj(1)
    rows = 100
    block = bytes(1 + width * channels) * rows  # each row: filter byte 0, then zeros
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
            ">IIBBBBB", width, height, 8, colour, 0, 0, 0)))
        data = [compressor.compress(block) for _ in range(height // rows)]
        data.append(compressor.compress(block[:(height % rows) * (1 + width * channels)]))
        f.write(chunk(b"IDAT", b"".join(data) + compressor.flush()) + chunk(b"IEND", b""))


@contextlib.contextmanager
def no_os_calls_on(prefix):
    """Fails the test when Python's own file calls (`open`, `os`, `shutil`,
    `tempfile`) touch a path starting with `prefix` ("ram://", standing in for
    "gs://"), or holding it as `os.path` mangles it ("/cwd/ram:/..."): such paths
    must go through `tf.io.gfile`."""
    import builtins
    import shutil
    import tempfile

    patched = [(builtins, "open"), (os, "makedirs"), (os, "mkdir"), (os, "rename"),
               (os, "replace"), (os, "unlink"), (os, "remove"), (os, "listdir"),
               (os, "stat"), (os, "lstat"), (os, "link"), (os, "chmod"), (os, "scandir"),
               (os.path, "exists"), (os.path, "isdir"), (os.path, "isfile"),
               (os.path, "lexists"), (shutil, "rmtree"), (shutil, "copyfile"),
               (tempfile, "mkstemp"), (tempfile, "mkdtemp")]
    originals = [getattr(owner, name) for owner, name in patched]

    # "ram://x" mangled by os.path ("/cwd/ram:/x") counts too.
    mangled = prefix.rstrip("/") + "/"

    ours = tuple(str(REPO / part) for part in ("kpac_tf", "experiments", "datasets"))

    def called_by_us():
        """True if the nearest caller outside Python's own library is kpac-tf's code
        (TensorFlow's own `glob` of a checkpoint's size, say, is not ours to fix)."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(
                os.path.dirname(os.__file__)) and "-packages" not in frame.f_code.co_filename:
            frame = frame.f_back
        return frame is not None and frame.f_code.co_filename.startswith(ours)

    def guarded(function, name):
        def call(*args, **kwargs):
            for value in (*args, *kwargs.values()):
                if isinstance(value, (str, os.PathLike)) and mangled in os.fspath(
                        value) and called_by_us():
                    raise AssertionError(f"{name}({os.fspath(value)!r}): a {prefix} path "
                                         "must go through tf.io.gfile")
            return function(*args, **kwargs)
        return call

    for (owner, name), original in zip(patched, originals):
        setattr(owner, name, guarded(original, name))
    try:
        yield
    finally:
        for (owner, name), original in zip(patched, originals):
            setattr(owner, name, original)
