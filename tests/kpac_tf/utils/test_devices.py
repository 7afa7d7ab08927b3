"""kpac_tf.utils.devices: the devices a strategy trains on, and TensorFlow's own reason
when it sees no GPU."""

import subprocess

import pytest
import tensorflow as tf

from kpac_tf.utils import devices

no_gpu = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                            reason="this machine has a GPU")

PROBE_STDERR = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796516472.721280    4375 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796516472.721721    4375 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
W0000 00:00:1796516472.721721    4375 dso_loader.cc:64] Could not load dynamic library 'libcudnn.so.9'; dlerror: libcudnn.so.9: cannot open shared object file
E0000 00:00:1796516494.101444    4526 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E0000 00:00:1796516494.101444    4526 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""


def test_tensorflows_own_words_are_the_reason(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices.tf.test, "is_built_with_cuda", lambda: True)
    monkeypatch.setattr(devices.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "", PROBE_STDERR))
    assert devices.no_gpu_reason() == (
        "Could not find cuda drivers on your machine, GPU will not be used; Could not load "
        "dynamic library 'libcudnn.so.9'; dlerror: libcudnn.so.9: cannot open shared object "
        "file; failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN "
        "ERROR (303)")


def test_settings_that_hide_every_gpu_are_named(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert devices.no_gpu_reason() == "CUDA_VISIBLE_DEVICES='-1' hides every GPU"


@no_gpu
def test_this_machine_says_why_it_has_no_gpu():
    reason = devices.no_gpu_reason()
    assert reason and reason != "TensorFlow logged no reason"
    with pytest.raises(devices.NoGpu, match=r"no GPU visible to TensorFlow \(.+\)"):
        devices.require_gpu()
    assert devices.replicas_line(tf.distribute.get_strategy()) == (
        "no GPU visible to TensorFlow: training on the CPU (1 replica on CPU:0)")
