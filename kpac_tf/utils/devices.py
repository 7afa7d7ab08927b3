"""Which devices TensorFlow computes on, and, when it sees no GPU, TensorFlow's own
reason (a CUDA driver that failed to start, a library that failed to load)."""

import os
import re
import subprocess
import sys

import tensorflow as tf

# TensorFlow says why it sees no GPU in C++ log lines at its first device listing;
# the apps hide those lines, so a fresh process lists the devices again to hear them.
_PROBE = "import tensorflow as tf; tf.config.list_physical_devices('GPU')"
_LOG_LINE = re.compile(r"^([IEWF])\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] (.*)$")
_ABOUT_GPUS = re.compile(r"cuda|cuInit|gpu|dlopen|dynamic library|driver|rocm|nvidia", re.I)


class NoGpu(RuntimeError):
    """A GPU was required and TensorFlow sees none (the message says why)."""


def gpus():
    """The GPUs TensorFlow sees (PhysicalDevice list; empty on a CPU-only machine)."""
    return tf.config.list_physical_devices("GPU")


def gpu_name(device):
    """A GPU's model name ("NVIDIA A100-SXM4-40GB"), or its device name."""
    details = tf.config.experimental.get_device_details(device)
    return details.get("device_name") or device.name


def no_gpu_reason(timeout=180):
    """TensorFlow's own words for why it sees no GPU, as one line.

    Settings that hide every GPU are named without running anything; otherwise a
    fresh Python process lists the devices with TensorFlow's C++ logging on and its
    errors and warnings about CUDA, drivers and libraries are returned (e.g.
    "failed call to cuInit: ... (303)" where no driver runs).
    """
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU"
    if not (tf.test.is_built_with_cuda() or tf.test.is_built_with_rocm()):
        return ("this TensorFlow build has no GPU support (on Linux: pip install "
                "'tensorflow[and-cuda]')")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], env=environment,
                               capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"TensorFlow's device listing could not be rerun to ask ({e})"
    said = []
    for line in probe.stderr.splitlines():
        match = _LOG_LINE.match(line.strip())
        if not match or match.group(2) in said:
            continue
        if match.group(1) in "EF" or _ABOUT_GPUS.search(match.group(2)):
            said.append(match.group(2))
    return "; ".join(line.rstrip(".") for line in said) or "TensorFlow logged no reason"


def require_gpu():
    """Raises NoGpu, with TensorFlow's reason, unless TensorFlow sees a GPU."""
    if not gpus():
        raise NoGpu(f"no GPU visible to TensorFlow ({no_gpu_reason()})")


def replicas_line(strategy):
    """One line naming the devices a tf.distribute strategy computes on (this
    process's): "2 replicas on GPU:0, GPU:1 (NVIDIA A100-SXM4-40GB)", or "no GPU
    visible to TensorFlow: training on the CPU (1 replica on CPU:0)"."""
    try:
        names = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: one replica, where ops are placed
        names = [(tf.config.list_logical_devices("GPU")
                  or tf.config.list_logical_devices("CPU"))[0].name]
    devices = [name.split("device:")[-1] for name in names]
    count = f"{len(devices)} replica{'s' if len(devices) > 1 else ''} on {', '.join(devices)}"
    total = strategy.num_replicas_in_sync
    if total != len(devices):
        count += f" ({total} in the cluster)"
    if any(name.startswith("GPU") for name in devices):
        models = sorted({gpu_name(device) for device in gpus()})
        return f"{count} ({', '.join(models)})"
    return f"no GPU visible to TensorFlow: training on the CPU ({count})"


def has_float16_dilated_gradients():
    """True when this machine's TensorFlow kernels compute the float16 gradient of a
    dilated convolution (what a KPAC block needs to train under mixed_float16): GPUs,
    and CPUs whose kernels have it (seen with AVX512-FP16); probed, not assumed."""
    x = tf.zeros((1, 8, 8, 1), tf.float16)
    kernel = tf.Variable(tf.zeros((3, 3, 1, 1), tf.float16))
    try:
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=2)
        tape.gradient(y, kernel)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
            tf.errors.NotFoundError):
        return False
    return True
