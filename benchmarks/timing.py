"""Timing shared by the benchmarks."""

import time

import numpy as np


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
