"""experiments/convert_tf1: an authors' npz in, a validated .keras file out."""

import keras
import numpy as np
import pytest
from absl.testing import flagsaver

from experiments import convert_tf1
from kpac_tf import build_model, load_tf1_npz
from kpac_tf.checkpoints.conversion import validation_inputs


def test_converts_the_authors_3level_checkpoint(reference_dir, tmp_path, capsys):
    npz = reference_dir / "tf1_3level_weights.npz"
    out = tmp_path / "single_3level.keras"
    with flagsaver.flagsaver(npz=str(npz), model="single_3level", output=str(out)):
        convert_tf1.main(["convert_tf1"])
    printed = capsys.readouterr().out
    assert "parameters: 2,057,893" in printed
    x = validation_inputs("single_3level")
    expected = load_tf1_npz(build_model("single_3level"), npz)(x).numpy()
    np.testing.assert_array_equal(keras.models.load_model(out)(x).numpy(), expected)
    assert f"{np.abs(expected).sum(dtype=np.float64):.6f}" in printed


def test_wrong_model_exits_with_a_message_and_writes_nothing(reference_dir, tmp_path):
    out = tmp_path / "x.keras"
    with flagsaver.flagsaver(npz=str(reference_dir / "tf1_2level_weights.npz"),
                             model="dual", output=str(out)):
        with pytest.raises(SystemExit, match="convert_tf1: .*tf1_2level_weights.npz"):
            convert_tf1.main(["convert_tf1"])
    assert not out.exists()
