r"""The paper's Table 5: parameters, FLOPs and running time at 1280x720.

python -m experiments.complexity --output=outputs/complexity

FLOPs are counted by TF's profiler on the traced graph; MACs by formula. The paper's
358 / 197 GFLOPs equal our profiler count minus the transposed convolutions (the
TF 1.x profiler had no FLOP count for Conv2DBackpropInput, so those layers added 0
there); `gflops_without_transposed_convs` shows it.
"""

import os

from absl import flags

from kpac_tf.paper import complexity
from kpac_tf.utils.files import write_json

from .common_flags import LOGGING, OUTPUT as _OUTPUT, run_app, value_or

_RUNS = flags.DEFINE_integer("runs", 3, "Timed runs per network (median).")

_DEFAULT_OUTPUT = "outputs/complexity"


def main(argv):
    del argv  # run_app refuses extra arguments
    height, width = complexity.TABLE5_SIZE
    results = {name: complexity.measure(name, _RUNS.value, height, width)
               for name in ("single_2level", "single_3level", "dual")}
    output = value_or(_OUTPUT, _DEFAULT_OUTPUT)
    os.makedirs(output, exist_ok=True)
    write_json(os.path.join(output, "results.json"),
               dict(results, paper=complexity.PAPER_TABLE5, size=f"{width}x{height}",
                    machine=f"{os.cpu_count()} CPU cores"), indent=2)
    print(f"{'model':<14} {'params (M)':>10} {'GFLOPs':>8} {'w/o deconv':>10} {'GMACs':>7} "
          f"{'time (s)':>9}   paper: GFLOPs, time (Titan Xp)")
    for name, r in results.items():
        paper = complexity.PAPER_TABLE5.get(name)
        ref = f"{paper['gflops']}, {paper['seconds']}" if paper else "-"
        print(f"{name:<14} {r['params'] / 1e6:10.2f} {r['gflops']:8.1f} "
              f"{r['gflops_without_transposed_convs']:10.1f} {r['gmacs']:7.1f} "
              f"{r['seconds']:9.3f}   {ref}")


FLAG_GROUPS = {"Measurement and output": [_RUNS, _OUTPUT], "Logging": LOGGING}
FLAG_DEFAULTS = {_OUTPUT.name: _DEFAULT_OUTPUT}

if __name__ == "__main__":
    run_app(main)
