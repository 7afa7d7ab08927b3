"""kpac-tf: KPAC single-image defocus deblurring (Son et al., ICCV 2021) in TF2/Keras 3.

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

from kpac_tf.checkpoints import (CheckpointError, load_tf1_npz, read_tf1_npz,  # noqa: E402
                                 save_tf1_npz, tf1_variables, write_tf1_npz)
from kpac_tf.inference import (Deblurrer, deblur, fast_predict_fn,  # noqa: E402
                               load_deblurrer)
from kpac_tf.layers import KPACBlock, ResidualBlock, SizeCheck  # noqa: E402
from kpac_tf.models import MODEL_NAMES, build_model, size_multiple  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "Deblurrer", "KPACBlock", "MODEL_NAMES", "ResidualBlock", "SizeCheck",
    "build_model", "deblur", "fast_predict_fn", "load_deblurrer", "load_tf1_npz", "read_tf1_npz", "save_tf1_npz", "size_multiple",
    "tf1_variables", "write_tf1_npz",
]
