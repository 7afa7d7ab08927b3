"""kpac_tf.models.networks: the three networks, exact parameter counts, dynamic sizes,
serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpac_tf import build_model, size_multiple
from kpac_tf.models.networks import build_args
from tests.test_case import run_model_test, run_precision_test


TINY = dict(channels=4)


@pytest.mark.parametrize("name,params", [
    ("single_2level", 1_578_277), ("single_3level", 2_057_893), ("dual", 2_061_493)])
def test_published_parameter_counts(name, params):
    assert build_model(name).count_params() == params


@pytest.mark.parametrize("overrides,params,paper_millions", [
    (dict(share_weights=False), 2_499_877, 2.50),                               # Table 1
    (dict(block_type="residual", num_blocks=7), 2_259_267, 2.26),               # Table 2
    (dict(scale_attention=False, shape_attention=False), 1_327_299, 1.33),
    (dict(scale_attention=False), 1_330_875, 1.33),
    # The paper lists 1.58M for this row too; shape attention adds only 3,576.
    (dict(shape_attention=False), 1_574_701, 1.58),
    (dict(num_blocks=1), 1_047_188, 1.05),                                      # Table 3
    (dict(num_blocks=3), 2_109_366, 2.11),
    (dict(num_blocks=4), 2_640_455, 2.64),
])
def test_ablation_sizes_match_the_paper(overrides, params, paper_millions):
    count = build_model("single_2level", **overrides).count_params()
    assert count == params
    assert abs(count / 1e6 - paper_millions) < 0.006


def test_design_axes_change_the_blocks():
    model = build_model("single_2level", kernel_size=3, num_dilations=3, num_blocks=1)
    block = model.get_layer("kpac_0")
    assert block.dilation_rates == (1, 2, 3)
    assert tuple(block.atrous_kernels[0].shape) == (3, 3, 96, 48)
    assert [layer.name for layer in model.layers if layer.name.startswith("kpac")] == ["kpac_0"]


@pytest.mark.parametrize("name,overrides", [
    ("single_2level", {}), ("single_3level", {}), ("dual", {}),
    ("single_3level", dict(share_weights=False, scale_attention=False)),
    ("single_2level", dict(block_type="residual", num_blocks=3)),
])
def test_network(name, overrides, tmp_path):
    m = size_multiple(name)
    run_model_test(lambda: build_model(name, **TINY, **overrides),
                   [(1, 2 * m, 3 * m), (3, 5 * m, m)], tmp_path)


@pytest.mark.parametrize("name", ["single_2level", "single_3level", "dual"])
def test_network_in_mixed_bfloat16(name):
    run_precision_test(lambda dtype: build_model(name, dtype=dtype, **TINY), (1, 16, 24),
                       tolerance=0.1)


def test_dual_takes_center_left_right():
    model = build_model("dual", **TINY)
    assert [t.name for t in model.inputs] == ["center", "left", "right"]
    x = [np.full((2, 16, 24, 3), v, "float32") for v in (0.1, 0.2, 0.3)]
    assert model(x).shape == (2, 16, 24, 3)
    # The residual is added to the centre view; left/right only feed the encoder.
    assert model.get_layer("c0").kernel.shape[2] == 6


@pytest.mark.parametrize("name,bad", [("single_2level", (1, 18, 16, 3)),
                                      ("single_3level", (1, 16, 20, 3)),
                                      ("dual", (1, 12, 16, 3))])
def test_bad_size_raises_value_error(name, bad):
    model = build_model(name, **TINY)
    x = np.zeros(bad, "float32")
    with pytest.raises(ValueError, match=f"multiples of {size_multiple(name)}"):
        model([x, x, x] if name == "dual" else x)


def test_bad_size_in_a_traced_graph_fails_clearly():
    model = build_model("single_2level", **TINY)
    fn = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, 3))])
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 4"):
        fn(np.zeros((1, 10, 8, 3), "float32"))


def test_rejects_unknown_names_and_bad_overrides():
    with pytest.raises(ValueError, match="Unknown model name"):
        build_model("single_4level")
    with pytest.raises(ValueError, match="num_blocks"):
        build_model("single_2level", num_blocks=0)
    with pytest.raises(ValueError, match="block_type"):
        build_model("single_2level", block_type="dense")
    with pytest.raises(TypeError):
        build_model("single_2level", blocks=3)


def test_authors_initialisation():
    model = build_model("single_2level")
    kernel = model.get_layer("kpac_0").atrous_kernels[0].numpy()
    assert abs(kernel.std() - 0.04) < 0.002 and abs(kernel.mean()) < 0.002
    assert not model.get_layer("cm_1").bias.numpy().any()


@pytest.mark.parametrize("overrides", [{}, dict(share_weights=False),
                                       dict(block_type="residual", num_blocks=2)])
def test_tensorflow_checkpoints_track_every_weight(tmp_path, overrides):
    """tf.train checkpoints (training runs) must reach weights inside the blocks."""
    model = build_model("single_2level", **TINY, **overrides)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    clone = build_model("single_2level", **TINY, **overrides)
    tf.train.Checkpoint(model=clone).restore(path).assert_consumed()
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name,overrides", [
    ("single_2level", {}), ("dual", dict(channels=8)),
    ("single_3level", dict(channels=8, num_blocks=1, kernel_size=3, num_dilations=2,
                           share_weights=False, scale_attention=False)),
    ("single_2level", dict(channels=8, block_type="residual", num_blocks=3))])
def test_build_args_build_the_same_network_again(name, overrides):
    """Read back from the layers (of a model loaded from a file, say), the arguments
    build the same network, in any dtype; anything else is refused."""
    model = build_model(name, **overrides)
    read_name, read = build_args(model)
    again = build_model(read_name, dtype="mixed_bfloat16", **read)
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    assert {k: v for k, v in read.items() if k in overrides} == overrides
    other = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3)],
                             name="single_2level")
    with pytest.raises(ValueError, match="is not one build_model builds"):
        build_args(other)
