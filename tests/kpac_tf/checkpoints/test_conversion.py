"""kpac_tf.checkpoints.conversion: an authors' npz in, a validated .keras file out."""

import numpy as np
import pytest

from kpac_tf import CheckpointError
from kpac_tf.checkpoints.conversion import convert_tf1_checkpoint, validation_inputs
from tests.test_case import tf1_reference


def test_convert_validates_and_writes_a_keras_file(reference_dir, tmp_path):
    import keras

    weights = tf1_reference(reference_dir, "2")[0]
    out = tmp_path / "single_2level.keras"
    report = convert_tf1_checkpoint(weights, "single_2level", out)
    assert report["params"] == 1_578_277
    assert report["max_abs_diff"] <= 1e-4
    x = validation_inputs("single_2level")
    model = keras.models.load_model(out)
    assert report["checksum"] == pytest.approx(float(np.abs(model(x).numpy()).sum()), rel=1e-6)
    with pytest.raises(CheckpointError, match="expected shape"):
        convert_tf1_checkpoint(weights, "single_3level", tmp_path / "wrong.keras")
    assert not (tmp_path / "wrong.keras").exists()
