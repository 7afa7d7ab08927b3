r"""Size, CPU latency at 1280x720 and quality of every export format, beside TensorFlow.

python benchmarks/export_runtimes.py [--checkpoint=RUN] [--runs=5] [--json=FILE]

Exports the model (default: the bundled one) as LiteRT files with float32, float16 and
int8 (dynamic-range) weights and as ONNX, then runs each in its own runtime
(ai-edge-litert's Interpreter, onnxruntime's CPU provider; both with as many threads as
cores) on a 1280x720 photo (scikit-image's coffee, defocused by `graded_defocus`),
timed in turns with TensorFlow's fast path (`kpac_tf.Deblurrer`, float32) and reports
median / best seconds, file size and the PSNR of each output to TensorFlow's float32
output (a variant is worth keeping at >= 40 dB).
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from timing import timings  # noqa: E402  (benchmarks/ is the script's folder)

from kpac_tf import load_deblurrer
from kpac_tf.data import pixels
from kpac_tf.deploy import export
from kpac_tf.evaluation import metrics
from kpac_tf.rendering.defocus import graded_defocus
from kpac_tf.utils.files import write_json

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Model (default: the bundled one).")
_MODEL = flags.DEFINE_string("model", None, "Network name, for an authors' .npz.")
_RUNS = flags.DEFINE_integer("runs", 5, "Timed runs per runtime.")
_JSON = flags.DEFINE_string("json", None, "Also write the results here.")
_HEIGHT, _WIDTH = 720, 1280


def test_photo():
    """(1, 720, 1280, 3) float32 in [0, 1]: coffee, defocus growing to 6 px."""
    import tensorflow as tf
    from skimage import data

    sharp = tf.image.resize(pixels.to_unit(data.coffee()), (_HEIGHT, _WIDTH),
                            antialias=True).numpy().clip(0, 1)
    blurry = graded_defocus(sharp, 6.0, np.random.default_rng(0))
    return blurry[None].astype(np.float32)


def litert_fn(path, photo):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], photo.shape)
    interpreter.allocate_tensors()

    def run():
        interpreter.set_tensor(inp["index"], photo)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run


def onnx_fn(path, photo):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda: session.run(["deblurred"], {"images": photo})[0]


def main(argv):
    del argv
    deblurrer = load_deblurrer(_CHECKPOINT.value, _MODEL.value)
    model = deblurrer.keras_model
    photo = test_photo()
    folder = tempfile.mkdtemp(prefix="kpac_export_bench_")
    files = {}
    for weights in export.LITERT_WEIGHTS:
        files[f"litert_{weights}"] = export.export_litert(
            model, os.path.join(folder, f"{weights}.tflite"), weights)
    files["onnx"] = export.export_onnx(model, os.path.join(folder, "kpac.onnx"))
    fns = {"tensorflow": lambda: np.clip((deblurrer(photo * 2 - 1) + 1) / 2, 0, 1)}
    for name, path in files.items():
        fns[name] = (onnx_fn if name == "onnx" else litert_fn)(path, photo)
    reference = fns["tensorflow"]()
    times = timings(fns, _RUNS.value)
    results = {}
    print(f"{'runtime':<18} {'size MB':>8} {'median s':>9} {'best s':>7} {'PSNR to TF':>11}")
    for name, fn in fns.items():
        size = os.path.getsize(files[name]) / 1e6 if name in files else None
        quality = (float(metrics.psnr(fn(), reference)[0]) if name != "tensorflow"
                   else None)
        results[name] = dict(size_mb=size, median_s=times[name][0], best_s=times[name][1],
                             psnr_to_tensorflow=quality)
        print(f"{name:<18} {size or 0:8.2f} {times[name][0]:9.3f} {times[name][1]:7.3f} "
              f"{quality if quality is not None else float('nan'):11.1f}")
    if _JSON.value:
        write_json(_JSON.value, dict(height=_HEIGHT, width=_WIDTH, model=deblurrer.name,
                                     results=results), indent=2)


if __name__ == "__main__":
    app.run(main)
