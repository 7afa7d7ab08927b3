"""kpac-tf's command-line apps (`python -m experiments.<app>`; installed as
`kpac_tf_experiments`).

Importing the package quiets TensorFlow before anything imports it: its C++ start-up
and log lines (oneDNN, CUDA probing, grappler's "remapper failed" notes), library
deprecation warnings and the libraries' INFO lines are hidden, so an app's own
progress lines are what you see.
`--verbosity=1` (or higher) on the command line shows them all again.
"""

import logging
import os
import re
import sys
import warnings


def _verbosity(argv):
    """The --verbosity / -v value given on the command line (absl's flag), else 0."""
    for index, arg in enumerate(argv):
        match = re.fullmatch(r"--?(?:verbosity|v)(?:=(-?\d+))?", arg)
        if match:
            value = match.group(1)
            if value is None and index + 1 < len(argv):
                value = argv[index + 1]
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0
    return 0


def _quiet_tensorflow():
    """Hides TensorFlow's C++ logging and libraries' deprecation warnings."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    if "tensorflow" in sys.modules:
        return
    # TensorFlow's C++ start-up lines are written before its log level is read,
    # straight to file descriptor 2: hold it on /dev/null while TensorFlow loads.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")


_LIBRARY_FOLDERS = tuple(f"{os.sep}{name}{os.sep}" for name in (
    "tensorflow", "keras", "tensorflow_datasets", "tf2onnx"))


class _OwnInfoOnly(logging.Filter):
    """Passes every line from outside the libraries; from the libraries (TensorFlow's
    savers, TFDS's readers and tf2onnx's passes print through absl's handler) only
    warnings and errors, and of those no deprecation notices (TFDS logs its own
    `FeatureConnector.dtype is deprecated` as a warning)."""

    def filter(self, record):
        if not any(folder in record.pathname for folder in _LIBRARY_FOLDERS):
            return True
        return (record.levelno >= logging.WARNING
                and "deprecated" not in record.getMessage().lower())


if _verbosity(sys.argv[1:]) < 1:
    _quiet_tensorflow()
    from absl import logging as absl_logging

    absl_logging.get_absl_handler().addFilter(_OwnInfoOnly())
