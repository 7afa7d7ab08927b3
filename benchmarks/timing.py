"""Timing shared by the benchmarks."""

import time

import numpy as np

MATMUL_SIZE = 4096
MATMUL_FLOP = 2 * MATMUL_SIZE ** 3


def matmul_fn(dtype="float32"):
    """A zero-argument callable: one MATMUL_SIZE^2 matmul in `dtype` ("float32" or
    "bfloat16"), so that its rate, MATMUL_FLOP / seconds, is the arithmetic rate this
    machine attains at that precision now (a yardstick for the networks' rates)."""
    import tensorflow as tf

    a, b = (tf.cast(tf.random.normal((MATMUL_SIZE, MATMUL_SIZE)), dtype) for _ in range(2))
    matmul = tf.function(lambda: tf.linalg.matmul(a, b))
    return lambda: matmul().numpy()


def timings(fns, runs):
    """{name: (median, best) seconds} of zero-argument callables, timed in turns so
    that a change in the machine's speed (other load, clock) affects all alike."""
    for fn in fns.values():
        fn()  # warm-up: tracing and oneDNN kernel selection
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (float(np.median(t)), float(np.min(t))) for name, t in times.items()}
