r"""Training steps per second with N steps per compiled loop against one.

python benchmarks/steps_per_loop.py --data_dir=/tmp/tfds [--crop_size=32] \
    [--loops=1,10] [--steps=60] [--runs=5]

The trainer's own pieces (`loop._Trainer`: its distributed input and its compiled
loop) on the synthetic `tiny` config, a 4-channel single_2level at a small crop, where
the host's share of a step (reading the loss, the step counter, Python's loop) is
largest. Each setting runs `--steps` steps, in loops of N, with the host reading the
loss after every loop as the trainer does; the settings are timed in turns
(`timing.timings`), and the median and best steps/s are printed with their ratio to
N = 1.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data folder (the synthetic tiny "
                                "config is built there on first use).")
_CROP = flags.DEFINE_integer("crop_size", 32, "Crop side.")
_LOOPS = flags.DEFINE_list("loops", ["1", "10"], "Steps per loop to compare.")
_STEPS = flags.DEFINE_integer("steps", 60, "Steps per timed run.")
_RUNS = flags.DEFINE_integer("runs", 5, "Timed runs of each setting.")


def main(argv):
    del argv
    import tensorflow as tf

    from timing import timings  # benchmarks/ is the script's folder
    from kpac_tf.data import pipelines
    from kpac_tf.training import loop, settings

    builder = pipelines.prepare("synthetic", _DATA_DIR.value, "tiny")
    config = settings.make_config(
        None, model_dir="unused", dataset="synthetic", dataset_config="tiny",
        batch_size=2, crop_size=_CROP.value, model_overrides={"channels": 4})
    trainer = loop._Trainer(config, tf.distribute.get_strategy())
    iterator = iter(trainer.distributed_input(builder, 0))
    train_loop = trainer.make_train_loop()

    def run(steps_per_loop):
        def steps():
            for _ in range(_STEPS.value // steps_per_loop):
                float(train_loop(iterator, tf.constant(steps_per_loop, tf.int64))["loss"])
        return steps

    loops = [int(n) for n in _LOOPS.value]
    times = timings({n: run(n) for n in loops}, _RUNS.value)
    base = _STEPS.value / times[loops[0]][0]
    for n in loops:
        median, best = (_STEPS.value / t for t in times[n])
        print(f"steps_per_loop {n:>3}: {median:6.1f} steps/s median, {best:6.1f} best "
              f"({median / base:.2f}x of {loops[0]})")


if __name__ == "__main__":
    app.run(main)
