r"""Latency of the three networks at 1280x720 and training speed, on this machine.

python benchmarks/latency.py [--runs=9] [--json=benchmarks/latency.json]

Reports median seconds per image through `kpac_tf.fast_predict_fn` (the path
`kpac_tf.deblur` uses), achieved GFLOP/s (TF-profiler FLOPs / best time) and that
rate divided by a 4096x4096 float32 matmul's best rate (the stable figure on a noisy
machine), and the bfloat16 path's rate over a bfloat16 matmul's;
the same for the authors' graph as we re-express it in TF2 (`kpac_tf.checkpoints.tf1_graph`: their
ops at a fixed input size, as their code builds it; their TF1 code itself is not run). Our paths, the authors' graph and the matmul are timed in turns,
run after run, so all see the same machine. Then the bfloat16 option's PSNR to the
float32 output on a real photo (scikit-image's rocket at 1280x720; --checkpoint
weights, else the authors' architecture with random weights, whose large residual is
a harsh case); then training steps/s at batch 4, crop 256.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from timing import MATMUL_FLOP, matmul_fn, timings  # noqa: E402  (benchmarks/ is the script's folder)

from kpac_tf import build_model, fast_predict_fn, load_deblurrer
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.checkpoints.tf1_graph import tf1_graph
from kpac_tf.data import pixels
from kpac_tf.evaluation import metrics
from kpac_tf.paper.complexity import count_flops
from kpac_tf.utils.files import write_json

_RUNS = flags.DEFINE_integer("runs", 9, "Timed runs per network.")
_JSON = flags.DEFINE_string("json", None, "Also write the results here.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "single_2level weights for the "
                                  "bfloat16 PSNR (default: random).")
_HEIGHT, _WIDTH = 720, 1280


def random_views(model):
    views = [np.random.RandomState(i).uniform(-1, 1, (1, _HEIGHT, _WIDTH, 3))
             .astype(np.float32) for i in range(len(model.inputs))]
    return tuple(views) if len(views) == 3 else views[0]


def authors_graph_fn(name, model):
    """Our re-expression of the authors' graph (`kpac_tf.checkpoints.tf1_graph`: their ops, fixed
    input size, weights as constants) with `model`'s weights, traced once."""
    weights = [tf.constant(v.numpy()) for _, v in tf1_npz.tf1_variables(model)]
    spec = tf.TensorSpec((1, _HEIGHT, _WIDTH, 3), tf.float32)
    if name == "dual":
        return tf.function(lambda c, l, r: tf1_graph(name, weights, c, l, r),
                           input_signature=[spec] * 3)
    return tf.function(lambda x: tf1_graph(name, weights, x), input_signature=[spec])


def network_latency(name, runs):
    """Seconds at 1280x720 of our float32 and bfloat16 paths, the authors' graph and
    a 4096^2 matmul at each precision, timed in turns."""
    model = build_model(name)
    inputs = random_views(model)
    ours, bf16 = fast_predict_fn(model), fast_predict_fn(model, "bfloat16")
    theirs = authors_graph_fn(name, model)
    args = inputs if name == "dual" else (inputs,)
    return timings({
        "float32": lambda: ours(inputs).numpy(),
        "bfloat16": lambda: bf16(inputs).numpy(),
        "authors_graph": lambda: theirs(*args).numpy(),
        "matmul": matmul_fn(),
        "bfloat16_matmul": matmul_fn("bfloat16"),
    }, runs)


def bfloat16_psnr(model):
    """PSNR (dB) between bfloat16 and float32 outputs, as [0, 1] images, on a photo."""
    from skimage import data, transform

    photo = transform.resize(data.rocket(), (_HEIGHT, _WIDTH), anti_aliasing=True)
    x = pixels.unit_to_network(photo[None])
    ref = pixels.network_to_unit(fast_predict_fn(model)(x))
    low = pixels.network_to_unit(fast_predict_fn(model, "bfloat16")(x))
    return float(metrics.psnr(ref, low)[0])


def training_steps_per_second(runs, batch=4, crop=256):
    from kpac_tf.training import loop, settings

    config = settings.make_config(None, model_dir="/tmp/unused", batch_size=batch)
    trainer = loop._Trainer(config, tf.distribute.get_strategy())
    x = tf.random.uniform((batch, crop, crop, 3), -1, 1)
    data = iter(tf.data.Dataset.from_tensors((x, x)).repeat())
    train_loop, one = trainer.make_train_loop(), tf.constant(1, tf.int64)
    median, _ = timings({"step": lambda: float(train_loop(data, one)["loss"])},
                        runs * 2)["step"]
    return 1 / median


def main(argv):
    del argv
    results = {"machine": f"{os.cpu_count()} CPU cores", "tensorflow": tf.__version__}
    for name in ("single_2level", "single_3level", "dual"):
        seconds = network_latency(name, _RUNS.value)
        flops = count_flops(build_model(name), _HEIGHT, _WIDTH)
        # Rates from each callable's best run: the least-disturbed one on a shared
        # machine (the medians move with other load by 10-20% here).
        best_rate = {k: (MATMUL_FLOP if k.endswith("matmul") else flops) / best
                     for k, (_, best) in seconds.items()}
        median = {k: m for k, (m, _) in seconds.items()}
        results[name] = dict(
            seconds=median["float32"], best_seconds=seconds["float32"][1],
            gflop=flops / 1e9, gflops=best_rate["float32"] / 1e9,
            matmul_gflops=best_rate["matmul"] / 1e9,
            fraction_of_matmul=best_rate["float32"] / best_rate["matmul"],
            authors_graph_seconds=median["authors_graph"],
            authors_graph_fraction_of_matmul=best_rate["authors_graph"] / best_rate["matmul"],
            speedup_over_authors_graph=median["authors_graph"] / median["float32"],
            bfloat16_seconds=median["bfloat16"],
            bfloat16_speedup=median["float32"] / median["bfloat16"],
            bfloat16_matmul_gflops=best_rate["bfloat16_matmul"] / 1e9,
            bfloat16_fraction_of_matmul=best_rate["bfloat16"] / best_rate["bfloat16_matmul"])
        r = results[name]
        print(f"{name:<14} 1280x720, {flops / 1e9:.0f} GFLOP, matmul "
              f"{r['matmul_gflops']:.0f} GFLOP/s: float32 {r['seconds']:.3f} s "
              f"(best {r['best_seconds']:.3f} s = {r['fraction_of_matmul']:.0%} of matmul); "
              f"authors' graph (our re-expression) {r['authors_graph_seconds']:.3f} s "
              f"({r['authors_graph_fraction_of_matmul']:.0%}; ours "
              f"{r['speedup_over_authors_graph']:.2f}x faster); bfloat16 "
              f"{r['bfloat16_seconds']:.3f} s ({r['bfloat16_speedup']:.1f}x float32; "
              f"{r['bfloat16_fraction_of_matmul']:.0%} of the bfloat16 matmul's "
              f"{r['bfloat16_matmul_gflops']:.0f} GFLOP/s)")
    model = (load_deblurrer(_CHECKPOINT.value, "single_2level").keras_model
             if _CHECKPOINT.value else build_model("single_2level"))
    results["bfloat16_psnr_to_float32"] = bfloat16_psnr(model)
    print(f"bfloat16 vs float32 output on a 1280x720 photo: "
          f"PSNR {results['bfloat16_psnr_to_float32']:.1f} dB")
    results["train_steps_per_second"] = training_steps_per_second(_RUNS.value)
    print(f"training single_2level batch 4 crop 256: "
          f"{results['train_steps_per_second']:.2f} steps/s")
    if _JSON.value:
        write_json(_JSON.value, results, indent=2)


if __name__ == "__main__":
    app.run(main)
