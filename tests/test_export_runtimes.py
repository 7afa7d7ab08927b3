"""LiteRT and ONNX exports run in their own runtimes (ai-edge-litert, onnxruntime) and
match the Keras model at sizes that are not multiples of 8; files get umask permissions."""

import os
import pathlib
import re
import stat

import numpy as np
import onnxruntime as ort  # noqa: E402
import pytest
from absl import app
from absl.testing import flagsaver
# The [test] extra installs both runtimes: a missing one fails here, never skips.
from ai_edge_litert import interpreter as litert  # noqa: E402

from experiments import export as export_app
from kpac_tf import build_model, load_deblurrer
from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.deploy.export import (export_litert, export_onnx, export_saved_model,
                                   input_names)
from kpac_tf.evaluation import metrics


def run_litert(path, feeds):
    """Runs a LiteRT file on {input name: array} through its signature, which names
    the inputs and the output `deblurred` (and resizes to the arrays given)."""
    interpreter = litert.Interpreter(model_path=str(path))
    assert interpreter.get_signature_list() == {"serving_default": {
        "inputs": sorted(feeds), "outputs": ["deblurred"]}}
    runner = interpreter.get_signature_runner("serving_default")
    return runner(**feeds)["deblurred"]


def run_onnx(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["deblurred"]
    return session.run(["deblurred"], feeds)[0]


def keras_float(model, feeds):
    """The Keras model's float output in [0, 1] (what `Deblurrer` gives, mapped back)."""
    views = [feeds[n] * 2 - 1 for n in input_names(model)]
    out = Deblurrer.from_keras(model)(tuple(views) if len(views) == 3 else views[0])
    return np.clip((np.asarray(out) + 1) / 2, 0, 1)


def _feeds(model, rng, shape=(2, 77, 131, 3)):
    return {n: rng.uniform(0, 1, shape).astype(np.float32) for n in input_names(model)}


@pytest.mark.parametrize("name", ["single_2level", "single_3level", "dual"])
def test_litert_and_onnx_match_keras_at_odd_sizes(tmp_path, name, rng):
    model = build_model(name, channels=8)
    feeds = _feeds(model, rng)
    expected = keras_float(model, feeds)
    tflite = export_litert(model, str(tmp_path / "m.tflite"))
    onnx = export_onnx(model, str(tmp_path / "m.onnx"))
    for runner, path in ((run_litert, tflite), (run_onnx, onnx)):
        out = runner(path, feeds)
        assert out.shape == (2, 77, 131, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, expected, atol=1e-4, err_msg=path)
    # One file serves other sizes too (a tiny one needs edge replication, not mirroring).
    small = _feeds(model, rng, (1, 5, 9, 3))
    np.testing.assert_allclose(run_onnx(onnx, small), keras_float(model, small), atol=1e-4)
    np.testing.assert_allclose(run_litert(tflite, small), keras_float(model, small),
                               atol=1e-4)


def test_bundled_model_exports_exactly(tmp_path, rng):
    """The trained weights (not random ones) through both runtimes, and the smaller
    LiteRT variants' distance to float32."""
    model = load_deblurrer().keras_model
    feeds = _feeds(model, rng, (2, 61, 97, 3))
    expected = keras_float(model, feeds)
    np.testing.assert_allclose(run_onnx(export_onnx(model, str(tmp_path / "m.onnx")), feeds),
                               expected, atol=1e-4)
    np.testing.assert_allclose(
        run_litert(export_litert(model, str(tmp_path / "m.tflite")), feeds), expected,
        atol=1e-4)
    full_size = os.path.getsize(tmp_path / "m.tflite")
    for weights, size_ratio in (("float16", 0.6), ("int8", 0.35)):
        path = export_litert(model, str(tmp_path / f"{weights}.tflite"), weights)
        out = run_litert(path, feeds)
        psnr = metrics.psnr(out, expected).numpy()
        assert psnr.min() > 40, (weights, psnr)
        assert os.path.getsize(path) < size_ratio * full_size, weights


def test_export_app_writes_each_format(tmp_path):
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    common = dict(checkpoint=str(tmp_path / "m.keras"), model=None)
    for fmt, output in (("litert", "k.tflite"), ("onnx", "k.onnx")):
        with flagsaver.flagsaver(format=fmt, output=str(tmp_path / output), **common):
            export_app.main(["export"])
        assert (tmp_path / output).stat().st_size > 0
    with flagsaver.flagsaver(format="onnx", **common):
        with pytest.raises(app.UsageError, match="--format=onnx needs --output"):
            export_app.main(["export"])
    with flagsaver.flagsaver(format="onnx", output=str(tmp_path / "x.onnx"),
                             litert_weights="int8", **common):
        with pytest.raises(app.UsageError, match="--litert_weights applies to --format=litert"):
            export_app.main(["export"])
    with flagsaver.flagsaver(format="saved_model", output=str(tmp_path / "x"), **common):
        with pytest.raises(app.UsageError, match="--output is not used by --format=saved_model"):
            export_app.main(["export"])
    with flagsaver.flagsaver(format="litert", output=str(tmp_path / "no" / "k.tflite"),
                             **common):
        with pytest.raises(SystemExit, match="output folder .*no does not exist"):
            export_app.main(["export"])
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exports_get_the_umask_permissions(tmp_path, umask):
    """TF Serving often runs as another user: files and folders follow the umask
    (mkstemp / mkdtemp alone would leave 0600 / 0700); a replaced file keeps its mode."""
    model = build_model("single_2level", channels=4)
    old = os.umask(umask)
    try:
        version = export_saved_model(model, str(tmp_path / "serving"))
        tflite = export_litert(model, str(tmp_path / "m.tflite"))
        os.chmod(tflite, 0o600)
        export_litert(model, tflite)
    finally:
        os.umask(old)
    folder_mode, file_mode = 0o777 & ~umask, 0o666 & ~umask
    modes = {os.path.relpath(os.path.join(root, n), version): stat.S_IMODE(
        os.stat(os.path.join(root, n)).st_mode) for root, folders, files in os.walk(version)
        for n in folders + files}
    assert stat.S_IMODE(os.stat(version).st_mode) == folder_mode
    assert modes and all(mode == (folder_mode if os.path.isdir(os.path.join(version, path))
                                  else file_mode) for path, mode in modes.items()), modes
    assert stat.S_IMODE(os.stat(tflite).st_mode) == 0o600
    onnx = export_onnx(model, str(tmp_path / "m.onnx"))
    assert stat.S_IMODE(os.stat(onnx).st_mode) == 0o666 & ~old


def test_readme_runtime_examples_run_as_written(tmp_path, monkeypatch, rng):
    import imageio.v3 as iio

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Phones and other runtimes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    model = build_model("single_2level", channels=4)
    export_litert(model, "kpac.tflite")
    export_onnx(model, "kpac.onnx")
    photo = rng.randint(0, 256, (60, 90, 3)).astype(np.uint8)
    iio.imwrite("photo.jpg", photo)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    expected = np.round(keras_float(model, {"images": iio.imread("photo.jpg")[None].astype(
        np.float32) / 255})[0] * 255)
    for name in ("sharp_litert.png", "sharp_onnx.png"):
        sharp = iio.imread(name)
        assert sharp.shape == (60, 90, 3) and sharp.dtype == np.uint8
        assert np.abs(sharp.astype(int) - expected).max() <= 1
