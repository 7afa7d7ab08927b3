"""kpac_tf.deploy.export: a SavedModel for TF Serving, loaded in a fresh process; LiteRT
and ONNX files run in their own runtimes (ai-edge-litert, onnxruntime) and match the
Keras model at sizes that are not multiples of 8; files get umask permissions."""

import json
import os
import pathlib
import pickle
import re
import stat
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf
# The [test] extra installs both runtimes: a missing one fails here, never skips.
from ai_edge_litert import interpreter as litert

from kpac_tf import build_model, deblur, load_deblurrer
from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.deploy.tiling import predict_tiled
from kpac_tf.deploy.export import export_litert, export_onnx, export_saved_model, input_names
from kpac_tf.evaluation import metrics
from tests.test_case import REPO, no_os_calls_on


@pytest.mark.parametrize("name", ["single_2level", "dual"])
def test_export_serves_any_size_in_a_fresh_process(tmp_path, name, rng):
    model = build_model(name, channels=4)
    path = export_saved_model(model, str(tmp_path / "serving"))
    assert path.endswith(os.path.join("serving", "1"))
    keys = ["center", "left", "right"] if name == "dual" else ["images"]
    views = [rng.randint(0, 256, (2, 101, 157, 3)).astype(np.uint8) for _ in keys]
    np.savez(tmp_path / "views.npz", *views)
    views16 = [rng.randint(0, 65536, (2, 101, 157, 3)).astype(np.uint16) for _ in keys]
    np.savez(tmp_path / "views16.npz", *views16)
    script = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        views = list(np.load({str(tmp_path / 'views.npz')!r}).values())
        keys = {keys!r}
        out8 = loaded.signatures["serving_default"](
            **{{k: tf.constant(v) for k, v in zip(keys, views)}})["deblurred"]
        outf = loaded.signatures["float"](
            **{{k: tf.constant(v / 255.0, tf.float32) for k, v in zip(keys, views)}})["deblurred"]
        views16 = list(np.load({str(tmp_path / 'views16.npz')!r}).values())
        out16 = loaded.signatures["serving_uint16"](
            **{{k: tf.constant(v) for k, v in zip(keys, views16)}})["deblurred"]
        np.savez({str(tmp_path / 'out.npz')!r}, u8=out8.numpy(), f=outf.numpy(), u16=out16.numpy())
        print(json.dumps(sorted(loaded.signatures)))
    """)
    result = _run_in_fresh_process(script)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "float", "serving_default", "serving_encoded", "serving_uint16"]
    served = np.load(tmp_path / "out.npz")
    expected = deblur(model, tuple(views) if name == "dual" else views[0])
    assert served["u8"].dtype == np.uint8 and served["u8"].shape == (2, 101, 157, 3)
    # Same values up to rounding at an 8-bit boundary (graph vs eager float order).
    difference = np.abs(served["u8"].astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999
    np.testing.assert_allclose(served["f"] * 2 - 1, _keras_any_size(model, views),
                               atol=2e-5)
    assert served["u16"].dtype == np.uint16 and served["u16"].shape == (2, 101, 157, 3)
    expected16 = deblur(model, tuple(views16) if name == "dual" else views16[0])
    assert np.abs(served["u16"].astype(int) - expected16.astype(int)).max() <= 2


def _run_in_fresh_process(script):
    """Runs Python `script` in a new interpreter (a fresh TensorFlow, as a server
    loading the export has); fails the test with its stderr unless it succeeds."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _serve_encoded(path, requests, tmp_path):
    """Calls `serving_encoded` of the SavedModel at `path` in one fresh process, once
    per request ({input name: [file bytes]}), in order; returns a list of ([PNG bytes]
    or None, the error's text). A refused request leaves the process serving."""
    with open(tmp_path / "requests.pkl", "wb") as f:
        pickle.dump(requests, f)
    script = textwrap.dedent(f"""
        import os, pickle
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        with open({str(tmp_path / 'requests.pkl')!r}, "rb") as f:
            requests = pickle.load(f)
        results = []
        for files in requests:
            try:
                out = loaded.signatures["serving_encoded"](
                    **{{k: tf.constant(v) for k, v in files.items()}})
                results.append((list(out["deblurred_bytes"].numpy()), ""))
            except tf.errors.InvalidArgumentError as e:
                results.append((None, str(e)))
        with open({str(tmp_path / 'served.pkl')!r}, "wb") as f:
            pickle.dump(results, f)
    """)
    _run_in_fresh_process(script)
    with open(tmp_path / "served.pkl", "rb") as f:
        return pickle.load(f)


def test_encoded_signature_serves_png_and_jpeg_files_as_load_deblurrer(tmp_path, rng):
    """PNG (8 and 16-bit; grey, grey + alpha, RGB, RGBA) and JPEG (colour, grey) bytes
    in, a PNG at the input's bit depth and layout out, equal to `load_deblurrer()` on
    the same photo within one level; text is refused with InvalidArgument naming the
    input, and the server process goes on."""
    from skimage import data

    deblurrer = load_deblurrer()
    path = export_saved_model(deblurrer.keras_model, str(tmp_path / "serving"))
    photo = data.astronaut()[100:161, 180:277]  # 61 x 97, not a multiple of 8
    photo16 = photo.astype(np.uint16) * 257 + 100
    alpha = rng.randint(0, 256, photo.shape[:2] + (1,)).astype(np.uint8)
    rgba = np.concatenate([photo, alpha], -1)
    rgba16 = np.concatenate([photo16, alpha.astype(np.uint16) * 257 + 1], -1)
    # grey, grey + alpha, RGB, RGBA at 8 then 16 bits; JPEG in colour and grey
    sent = [rgba[..., 1:2], rgba[..., 2:], photo, rgba, rgba16[..., 1:2], rgba16[..., 2:],
            photo16, rgba16, photo, photo[..., :1]]
    files = [tf.io.encode_png(p).numpy() for p in sent[:8]] + [
        tf.io.encode_jpeg(p, quality=90).numpy() for p in sent[8:]]
    bad_files = ((b"not a photo", "110 111 116 32 97 32 112 104"),
                 (b"BM\xf6\x00\xff\xfe", "66 77 246 0 255 254 0 0"),
                 (b"\x89PNG\r\n\x1a\n", None))  # a PNG's signature, then nothing
    requests = [{"images_bytes": files}] + [{"images_bytes": [files[0], bad]}
                                            for bad, _ in bad_files]
    results = _serve_encoded(path, requests + requests[:1], tmp_path)
    (served, error), again = results[0], results[-1]
    assert error == "" and len(served) == len(files) and again == results[0]
    for file, png, original in zip(files, served, sent):
        dtype = tf.as_dtype(original.dtype)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[24] == 8 * dtype.size
        out = tf.io.decode_png(png, 0, dtype).numpy()
        decoded = tf.io.decode_image(file, 0, dtype).numpy()
        expected = deblurrer(decoded)
        assert out.shape == expected.shape == original.shape
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
        if original.shape[-1] in (2, 4):  # alpha passed through, bit for bit
            np.testing.assert_array_equal(out[..., -1], original[..., -1])
    for (bad, first), (served, error) in zip(bad_files, results[1:-1]):
        assert served is None
        if first:
            assert ("images_bytes: not a PNG or JPEG file; its first bytes are] "
                    f"[{first}]") in error


def test_serving_page_rest_example_against_a_stand_in_for_tf_serving(tmp_path, rng):
    """docs/serving.md's curl command, run as written against a stand-in that answers
    as TF Serving's REST API documents (`_bytes` values base64 in {"b64": ...} both
    ways), with the exported `serving_encoded` signature behind it."""
    import base64
    import http.server
    import threading

    model = build_model("single_2level", channels=4)
    served = tf.saved_model.load(export_saved_model(model, str(tmp_path / "serving")))

    class StandIn(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            assert self.path == "/v1/models/kpac:predict"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            files = [base64.b64decode(item["b64"]) for item in body["instances"]]
            out = served.signatures[body["signature_name"]](
                images_bytes=tf.constant(files))["deblurred_bytes"].numpy()
            reply = json.dumps({"predictions": [
                {"b64": base64.b64encode(png).decode()} for png in out]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = http.server.HTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    section = (REPO / "docs" / "serving.md").read_text().split("## TF Serving", 1)[1]
    command = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], re.S)[1]
    photo = rng.randint(0, 256, (45, 70, 3)).astype(np.uint8)
    (tmp_path / "photo.png").write_bytes(tf.io.encode_png(photo).numpy())
    try:
        subprocess.run(["bash", "-euo", "pipefail", "-c", command.replace(
            "localhost:8501", f"127.0.0.1:{server.server_port}")], cwd=tmp_path, check=True,
            timeout=120)
    finally:
        server.shutdown()
    sharp = tf.io.decode_png((tmp_path / "sharp.png").read_bytes()).numpy()
    assert np.abs(sharp.astype(int) - deblur(model, photo).astype(int)).max() <= 1


def test_serving_page_grpc_example_against_a_stand_in_for_tf_serving(tmp_path, rng):
    """docs/serving.md's gRPC snippet, run as written in its own process against a
    stand-in PredictionService (tensorflow-serving-api's own stubs) that calls the
    exported `serving_encoded` signature as TF Serving would."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    model = build_model("single_2level", channels=4)
    served = tf.saved_model.load(export_saved_model(model, str(tmp_path / "serving")))

    class StandIn(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            assert request.model_spec.name == "kpac"
            signature = served.signatures[request.model_spec.signature_name]
            out = signature(**{name: tf.constant(tf.make_ndarray(proto))
                               for name, proto in request.inputs.items()})
            reply = predict_pb2.PredictResponse()
            for name, value in out.items():
                reply.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(StandIn(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    section = (REPO / "docs" / "serving.md").read_text().split("## TF Serving", 1)[1]
    snippet, = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    photo = rng.randint(0, 256, (45, 70, 3)).astype(np.uint8)
    (tmp_path / "photo.png").write_bytes(tf.io.encode_png(photo).numpy())
    try:
        subprocess.run([sys.executable, "-c", snippet.replace("localhost:8500",
                                                              f"127.0.0.1:{port}")],
                       cwd=tmp_path, check=True, timeout=300)
    finally:
        server.stop(None)
    sharp = tf.io.decode_png((tmp_path / "sharp.png").read_bytes()).numpy()
    assert np.abs(sharp.astype(int) - deblur(model, photo).astype(int)).max() <= 1


def test_encoded_signature_of_the_dual_network_takes_three_files(tmp_path, rng):
    model = build_model("dual", channels=4)
    path = export_saved_model(model, str(tmp_path / "serving"))
    views = [rng.randint(0, 256, (29, 35, 3)).astype(np.uint8) for _ in range(3)]
    files = {f"{name}_bytes": [tf.io.encode_png(view).numpy()]
             for name, view in zip(("center", "left", "right"), views)}
    smaller = dict(files, left_bytes=[tf.io.encode_png(views[1][:20]).numpy()])
    grey = dict(files, left_bytes=[tf.io.encode_png(views[1][..., :1]).numpy()])
    text = dict(files, right_bytes=[b"not a photo"])
    deeper = dict(files, right_bytes=[tf.io.encode_png(views[2].astype(np.uint16)).numpy()])
    (served, _), smaller, grey, text, deeper = _serve_encoded(
        path, [files, smaller, grey, text, deeper], tmp_path)
    out = tf.io.decode_png(served[0]).numpy()
    assert np.abs(out.astype(int) - deblur(model, tuple(views)).astype(int)).max() <= 1
    assert smaller[0] is None and "left_bytes and center_bytes differ in size" in smaller[1]
    assert grey[0] is None and "left_bytes: the dual network takes RGB files" in grey[1]
    assert text[0] is None and "right_bytes: not a PNG or JPEG file" in text[1]
    assert deeper[0] is None and "right_bytes and center_bytes differ in bit depth" in deeper[1]


def test_the_served_graph_tiles_big_images_as_the_python_path(tmp_path, rng):
    """Exported with 64-px tiles: an image with a side above 64 runs in tiles in the
    served graph (a fresh process), within 1e-5 of `predict_tiled`; a smaller one
    runs whole."""
    model = build_model("single_3level", channels=4)
    path = export_saved_model(model, str(tmp_path / "serving"), tile_size=64, overlap=16)
    big = rng.uniform(0, 1, (1, 150, 230, 3)).astype(np.float32)
    small = rng.uniform(0, 1, (1, 56, 64, 3)).astype(np.float32)
    np.savez(tmp_path / "in.npz", big=big, small=small)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        served = tf.saved_model.load({path!r}).signatures["float"]
        inputs = np.load({str(tmp_path / 'in.npz')!r})
        np.savez({str(tmp_path / 'out.npz')!r}, **{{
            name: served(images=tf.constant(inputs[name]))["deblurred"].numpy()
            for name in ("big", "small")}})
    """)
    _run_in_fresh_process(script)
    out = np.load(tmp_path / "out.npz")
    deblurrer = Deblurrer.from_keras(model)
    tiled = predict_tiled(deblurrer, big * 2 - 1, 64, 16)
    np.testing.assert_allclose(out["big"] * 2 - 1, np.clip(tiled, -1, 1), atol=1e-5, rtol=0)
    whole = np.asarray(deblurrer.network(small * 2 - 1))
    np.testing.assert_allclose(out["small"] * 2 - 1, whole, atol=2e-5, rtol=0)
    assert np.abs(np.clip(tiled, -1, 1) - np.asarray(deblurrer.network(big * 2 - 1))).max() > 1e-3


def _keras_any_size(model, views):
    from kpac_tf.deploy.deblurring import Deblurrer

    inputs = [v.astype(np.float32) / 127.5 - 1 for v in views]
    out = Deblurrer.from_keras(model)(tuple(inputs) if len(inputs) == 3 else inputs[0])
    return np.clip(np.asarray(out), -1, 1)


def test_saved_model_cli_lists_the_signatures(tmp_path):
    path = export_saved_model(build_model("single_3level", channels=4), str(tmp_path))
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    command = [str(cli)] if cli.exists() else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(command + ["show", "--all", "--dir", path], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for expected in ("signature_def['serving_default']", "signature_def['float']",
                     "signature_def['serving_uint16']", "inputs['images']",
                     "outputs['deblurred']", "dtype: DT_UINT8", "dtype: DT_UINT16"):
        assert expected in result.stdout


def test_versions_are_never_overwritten(tmp_path):
    model = build_model("single_2level", channels=4)
    assert export_saved_model(model, str(tmp_path)).endswith("1")
    assert export_saved_model(model, str(tmp_path)).endswith("2")
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(model, str(tmp_path), version=2)
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]


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


@pytest.mark.parametrize("umask", [0o027])  # not the usual 022: the umask is applied
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


def test_serving_page_runtime_examples_run_as_written(tmp_path, monkeypatch, rng):
    import imageio.v3 as iio

    page = (REPO / "docs" / "serving.md").read_text()
    section = page.split("## Phones and other runtimes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    model = build_model("single_2level", channels=4)
    export_litert(model, "kpac.tflite")
    export_onnx(model, "kpac.onnx")
    photo = rng.randint(0, 256, (60, 90, 3)).astype(np.uint8)
    iio.imwrite("photo.jpg", photo)
    for code in blocks:
        exec(compile(code, "docs/serving.md", "exec"), {})
    expected = np.round(keras_float(model, {"images": iio.imread("photo.jpg")[None].astype(
        np.float32) / 255})[0] * 255)
    for name in ("sharp_litert.png", "sharp_onnx.png"):
        sharp = iio.imread(name)
        assert sharp.shape == (60, 90, 3) and sharp.dtype == np.uint8
        assert np.abs(sharp.astype(int) - expected).max() <= 1


def test_exports_to_cloud_storage_never_touch_the_local_disk(tmp_path, rng, monkeypatch):
    """ram:// (TensorFlow's in-memory filesystem) stands in for gs://: the SavedModel
    version folder, a LiteRT and an ONNX file are written there, load from there, and
    nothing local is created on the way."""
    model = build_model("single_2level", channels=4)
    photo = rng.randint(0, 256, (1, 21, 34, 3)).astype(np.uint8)
    before = sorted(os.listdir(tmp_path))
    monkeypatch.chdir(tmp_path)  # a mistaken local write of "ram:/..." would land here
    with no_os_calls_on("ram://"):
        first = export_saved_model(model, "ram://serving/kpac")
        second = export_saved_model(model, "ram://serving/kpac")
        with pytest.raises(FileExistsError, match="ram://serving/kpac/2 already exists"):
            export_saved_model(model, "ram://serving/kpac", version=2)
        export_litert(model, "ram://exports/kpac.tflite")
        export_onnx(model, "ram://exports/kpac.onnx")
    assert (first, second) == ("ram://serving/kpac/1", "ram://serving/kpac/2")
    served = tf.saved_model.load(second).signatures["serving_default"]
    # Up to rounding at an 8-bit boundary, as in the fresh-process test: the served
    # graph and the Deblurrer's graph (one tf.function since issue 38) sum in their
    # own orders.
    difference = np.abs(served(images=tf.constant(photo))["deblurred"].numpy().astype(int)
                        - deblur(model, photo).astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99
    assert tf.io.gfile.stat("ram://exports/kpac.tflite").length > 1000
    assert tf.io.gfile.stat("ram://exports/kpac.onnx").length > 1000
    assert sorted(os.listdir(tmp_path)) == before
