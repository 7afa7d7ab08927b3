"""kpac_tf.checkpoints.tf1_graph: the authors' graph in raw TF ops, validated on their
outputs, then the judge of our networks at other sizes, batches and the dual network."""

import numpy as np
import pytest

from kpac_tf import build_model, load_tf1_npz, read_tf1_npz, save_tf1_npz
from kpac_tf.checkpoints.conversion import validation_inputs
from kpac_tf.checkpoints.tf1_graph import tf1_forward
from tests.test_case import LEVEL_NAMES, tf1_reference


@pytest.mark.parametrize("level", ["2", "3"])
def test_reproduces_the_authors_tf1_output(reference_dir, level):
    weights, x, expected = tf1_reference(reference_dir, level)
    model = load_tf1_npz(build_model(LEVEL_NAMES[level]), weights)
    assert np.max(np.abs(model(x).numpy() - expected)) <= 1e-4
    assert np.max(np.abs(model.predict(x, verbose=0) - expected)) <= 1e-4


@pytest.mark.parametrize("level", ["2", "3"])
def test_raw_op_graph_reproduces_the_authors_output(reference_dir, level):
    """Validates the reference graph itself before it judges other inputs."""
    weights, x, expected = tf1_reference(reference_dir, level)
    out = tf1_forward(LEVEL_NAMES[level], read_tf1_npz(weights), x)
    assert np.max(np.abs(out - expected)) <= 1e-5


@pytest.mark.parametrize("level,shape", [
    ("2", (2, 36, 52, 3)), ("2", (1, 4, 8, 3)), ("2", (1, 100, 60, 3)),
    ("3", (2, 40, 24, 3)), ("3", (1, 8, 16, 3)), ("3", (1, 56, 104, 3)),
])
def test_matches_the_authors_graph_at_other_sizes_and_batches(reference_dir, level, shape):
    weights, _, _ = tf1_reference(reference_dir, level)
    name = LEVEL_NAMES[level]
    model = load_tf1_npz(build_model(name), weights)
    x = np.random.RandomState(sum(shape)).uniform(-1, 1, shape).astype("float32")
    expected = tf1_forward(name, read_tf1_npz(weights), x)
    assert np.max(np.abs(model(x).numpy() - expected)) <= 1e-4


def test_dual_matches_our_reexpression_of_the_authors_graph(tmp_path):
    """No TF1 output exists for dual: this compares with `tf1_forward`, our raw-op
    re-expression of the authors' graph, validated above on the single networks."""
    model = build_model("dual")
    path = tmp_path / "dual.npz"
    save_tf1_npz(model, path)
    tensors = read_tf1_npz(path)
    assert len(tensors) == 66
    for shape in [(2, 32, 48, 3), (1, 24, 16, 3)]:
        views = validation_inputs("dual", batch=shape[0], height=shape[1], width=shape[2])
        out = model(views).numpy()
        assert np.max(np.abs(out - tf1_forward("dual", tensors, *views))) <= 1e-4
        # The centre view is the residual's base: changing it shifts the output 1:1.
        shifted = model([views[0] + 0.25, views[1], views[2]]).numpy()
        np.testing.assert_allclose(shifted - out, 0.25, atol=1e-5)
