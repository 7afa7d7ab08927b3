r"""Latency of the three networks at 1280x720 and training speed, on this machine.

python benchmarks/latency.py [--runs=5] [--json=benchmarks/latency.json]

Reports seconds per image through `kpac_tf.fast_predict_fn` (the path
`kpac_tf.deblur` uses), achieved GFLOP/s (TF-profiler FLOPs / time) and that rate
divided by a 4096x4096 float32 matmul's rate measured in the same run (the stable
figure on a noisy machine); the bfloat16 option's speed-up and its PSNR to the
float32 output on a real photo (scikit-image's rocket at 1280x720; --checkpoint
weights, else the authors' architecture with random weights, whose large residual is
a harsh case); then training steps/s at batch 4, crop 256.
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from kpac_tf import build_model, checkpoints, fast_predict_fn  # noqa: E402
from kpac_tf.complexity import count_flops  # noqa: E402

_RUNS = flags.DEFINE_integer("runs", 5, "Timed runs per network (median reported).")
_JSON = flags.DEFINE_string("json", None, "Also write the results here.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "single_2level weights for the "
                                  "bfloat16 PSNR (default: random).")
_HEIGHT, _WIDTH = 720, 1280


def median_seconds(fn, runs):
    fn()  # warm-up: tracing and oneDNN kernel selection
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_gflops(runs):
    a = tf.random.normal((4096, 4096))
    b = tf.random.normal((4096, 4096))
    matmul = tf.function(lambda: tf.linalg.matmul(a, b))
    seconds = median_seconds(lambda: matmul().numpy(), runs)
    return 2 * 4096 ** 3 / seconds / 1e9


def inference(model, runs, precision="float32"):
    predict = fast_predict_fn(model, precision)
    views = [np.random.RandomState(i).uniform(-1, 1, (1, _HEIGHT, _WIDTH, 3))
             .astype(np.float32) for i in range(len(model.inputs))]
    inputs = tuple(views) if len(views) == 3 else views[0]
    return median_seconds(lambda: np.asarray(predict(inputs)), runs)


def bfloat16_psnr(model):
    """PSNR (dB) between bfloat16 and float32 outputs, as [0, 1] images, on a photo."""
    from skimage import data, transform

    photo = transform.resize(data.rocket(), (_HEIGHT, _WIDTH), anti_aliasing=True)
    x = (photo[None] * 2 - 1).astype(np.float32)
    ref = np.clip((np.asarray(fast_predict_fn(model)(x)) + 1) / 2, 0, 1)
    low = np.clip((np.asarray(fast_predict_fn(model, "bfloat16")(x)) + 1) / 2, 0, 1)
    return float(10 * np.log10(1.0 / np.mean((ref - low) ** 2)))


def training_steps_per_second(runs, batch=4, crop=256):
    from kpac_tf import training

    config = training.make_config(None, model_dir="/tmp/unused", batch_size=batch)
    trainer = training._Trainer(config, tf.distribute.get_strategy())
    x = tf.random.uniform((batch, crop, crop, 3), -1, 1)
    data = iter(tf.data.Dataset.from_tensors((x, x)).repeat())
    step = trainer.make_train_step()
    seconds = median_seconds(lambda: [float(v) for v in step(data)], runs * 2)
    return 1 / seconds


def main(argv):
    del argv
    results = {"machine": f"{os.cpu_count()} CPU cores", "tensorflow": tf.__version__}
    results["matmul_gflops"] = matmul_gflops(_RUNS.value)
    print(f"matmul 4096^2 float32: {results['matmul_gflops']:.0f} GFLOP/s")
    for name in ("single_2level", "single_3level", "dual"):
        model = build_model(name)
        seconds, flops = inference(model, _RUNS.value), count_flops(model, _HEIGHT, _WIDTH)
        bf16 = inference(model, _RUNS.value, "bfloat16")
        rate = flops / seconds / 1e9
        results[name] = dict(seconds=seconds, gflop=flops / 1e9, gflops=rate,
                             fraction_of_matmul=rate / results["matmul_gflops"],
                             bfloat16_seconds=bf16, bfloat16_speedup=seconds / bf16)
        print(f"{name:<14} 1280x720: {seconds:.3f} s  {flops / 1e9:.0f} GFLOP  "
              f"{rate:.0f} GFLOP/s = {rate / results['matmul_gflops']:.0%} of matmul;  "
              f"bfloat16 {bf16:.3f} s ({seconds / bf16:.1f}x)")
    model = (checkpoints.load_model(_CHECKPOINT.value, "single_2level") if _CHECKPOINT.value
             else build_model("single_2level"))
    results["bfloat16_psnr_to_float32"] = bfloat16_psnr(model)
    print(f"bfloat16 vs float32 output on a 1280x720 photo: "
          f"PSNR {results['bfloat16_psnr_to_float32']:.1f} dB")
    results["train_steps_per_second"] = training_steps_per_second(_RUNS.value)
    print(f"training single_2level batch 4 crop 256: "
          f"{results['train_steps_per_second']:.2f} steps/s")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
