"""Progress of long loops: a Keras progress bar on a terminal, log lines elsewhere.

Keras' `Progbar` redraws itself (carriage returns, backspaces, colour codes) in every
process on Linux, since it takes any POSIX system for a terminal; in a job whose output
goes to a file or a cluster's log collector that is a wall of control characters.
`progress_bar` keeps the bar for terminals and notebooks and otherwise writes an absl
log line at a steady rate.
"""

import sys
import time

import keras
from absl import logging


class LogProgress:
    """`Progbar.add` and `Progbar.update(current, finalize=True)` as absl log lines: one
    at most every `interval` seconds, and one when the total is reached or the caller
    finalizes (an unknown total), with the running mean of each named value."""

    def __init__(self, total, unit_name, interval=30.0):
        self.total, self.unit_name, self.interval = total, unit_name, interval
        self.seen, self.sums, self.counts = 0, {}, {}
        self.start = self.last = time.monotonic()

    def add(self, count, values=None):
        """Counts `count` more items; `values`: [(name, value)] for the running means."""
        self.update(self.seen + count, values)

    def update(self, current, values=None, finalize=None):
        """Sets the count to `current`; `finalize=True` writes the closing line (the
        total, when known, finalizes by itself)."""
        count, self.seen = current - self.seen, current
        for name, value in values or ():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * max(count, 1)
            self.counts[name] = self.counts.get(name, 0) + max(count, 1)
        now = time.monotonic()
        finished = finalize or (self.total is not None and self.seen >= self.total)
        if now - self.last < self.interval and not finished:
            return
        self.last = now
        means = "".join(f", mean {name} {self.sums[name] / self.counts[name]:.4g}"
                        for name in self.sums)
        total = "" if self.total is None else f"/{self.total}"
        each = (now - self.start) / max(self.seen, 1)
        logging.info("%d%s %ss, %.2f s per %s%s", self.seen, total, self.unit_name, each,
                     self.unit_name, means)


def progress_bar(total, unit_name):
    """An object with `add(count, values=None)` and `update(current, finalize=True)`
    (the closing line of an unknown total): a `keras.utils.Progbar` when standard
    output is a terminal or a notebook, else a `LogProgress` (its INFO lines show in
    absl apps; elsewhere, with absl's logging verbosity at INFO).

    Args:
        total: int or None (unknown), how many items there are.
        unit_name: str, what an item is ("image").
    """
    if getattr(sys.stdout, "isatty", lambda: False)() or "ipykernel" in sys.modules:
        return keras.utils.Progbar(total, unit_name=unit_name)
    return LogProgress(total, unit_name)
