r"""The paper's Table 5: parameters, FLOPs and running time at 1280x720.

python -m experiments.complexity --output=outputs/complexity

FLOPs are counted by TF's profiler on the traced graph; MACs by formula. The paper's
358 / 197 GFLOPs equal our profiler count minus the transposed convolutions (the
TF 1.x profiler had no FLOP count for Conv2DBackpropInput, so those layers added 0
there); `gflops_without_transposed_convs` shows it.
"""

import os
import time

import numpy as np
from absl import flags

from kpac_tf import build_model
from kpac_tf.deploy.deblurring import Deblurrer
from kpac_tf.paper.complexity import count_flops, mac_breakdown
from kpac_tf.utils.files import write_json

from .common_flags import LOGGING, OUTPUT as _OUTPUT, run_app, value_or

_RUNS = flags.DEFINE_integer("runs", 3, "Timed runs per network (median).")
HEIGHT, WIDTH = 720, 1280
PAPER = {"single_2level": dict(gflops=358, seconds=0.09, params_m=1.58),
         "single_3level": dict(gflops=197, seconds=0.07, params_m=2.06)}


def measure(name, runs):
    model = build_model(name)
    deblurrer = Deblurrer.from_keras(model)
    views = [np.zeros((1, HEIGHT, WIDTH, 3), np.float32) for _ in model.inputs]
    inputs = tuple(views) if len(views) == 3 else views[0]
    np.asarray(deblurrer(inputs))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(deblurrer(inputs))
        times.append(time.perf_counter() - start)
    flops = count_flops(model, HEIGHT, WIDTH)
    macs = mac_breakdown(model, HEIGHT, WIDTH)
    return dict(params=model.count_params(), gflops=flops / 1e9,
                gmacs=sum(macs.values()) / 1e9,
                gflops_without_transposed_convs=(flops - 2 * macs["transposed_conv"]) / 1e9,
                seconds=float(np.median(times)))


def main(argv):
    del argv  # run_app refuses extra arguments
    results = {name: measure(name, _RUNS.value)
               for name in ("single_2level", "single_3level", "dual")}
    output = value_or(_OUTPUT, "outputs/complexity")
    os.makedirs(output, exist_ok=True)
    write_json(os.path.join(output, "results.json"),
               dict(results, paper=PAPER, size=f"{WIDTH}x{HEIGHT}",
                    machine=f"{os.cpu_count()} CPU cores"), indent=2)
    print(f"{'model':<14} {'params (M)':>10} {'GFLOPs':>8} {'w/o deconv':>10} {'GMACs':>7} "
          f"{'time (s)':>9}   paper: GFLOPs, time (Titan Xp)")
    for name, r in results.items():
        paper = PAPER.get(name)
        ref = f"{paper['gflops']}, {paper['seconds']}" if paper else "-"
        print(f"{name:<14} {r['params'] / 1e6:10.2f} {r['gflops']:8.1f} "
              f"{r['gflops_without_transposed_convs']:10.1f} {r['gmacs']:7.1f} "
              f"{r['seconds']:9.3f}   {ref}")


FLAG_GROUPS = {"Measurement and output": [_RUNS, _OUTPUT], "Logging": LOGGING}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS)
