"""kpac-tf: KPAC single-image defocus deblurring (Son et al., ICCV 2021) in TF2/Keras 3.

The package, one subpackage per concern, dependencies pointing down the list:
`utils`, `data`, `models`, `checkpoints` (core); `rendering`, `datasets`, `evaluation`,
`training`; `deploy`, `paper`. Each subpackage's docstring says what belongs there.
This module re-exports the public API.

Example:
>>> import kpac_tf
>>> model = kpac_tf.build_model("single_2level")
>>> kpac_tf.load_tf1_npz(model, "single_2level.npz")  # the authors' weights
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"kpac_tf needs Keras' TensorFlow backend, but KERAS_BACKEND is "
        f"{keras.backend.backend()!r}; unset it or set KERAS_BACKEND=tensorflow")

from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.checkpoints.tf1_npz import (load_tf1_npz, read_tf1_npz, save_tf1_npz,
                                         tf1_variables, write_tf1_npz)
from kpac_tf.deploy.deblurring import Deblurrer, deblur
from kpac_tf.deploy.loading import load_deblurrer
from kpac_tf.evaluation import lpips
from kpac_tf.models.forward import fast_predict_fn
from kpac_tf.models.layers import KPACBlock, ResidualBlock, SizeCheck
from kpac_tf.models.networks import MODEL_NAMES, build_model, size_multiple

__version__ = "0.6.1"

__all__ = [
    "CheckpointError", "Deblurrer", "KPACBlock", "MODEL_NAMES", "ResidualBlock", "SizeCheck",
    "build_model", "deblur", "fast_predict_fn", "load_deblurrer", "load_tf1_npz", "lpips",
    "read_tf1_npz", "save_tf1_npz", "size_multiple", "tf1_variables", "write_tf1_npz",
]
