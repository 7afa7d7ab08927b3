"""kpac_tf.models.layers: serialization, the one shared kernel, and Eq. 7 computed by
hand."""

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.models.layers import KPACBlock, ResidualBlock, SizeCheck
from tests.test_case import run_layer_test


TINY = dict(filters=4, output_filters=8, kernel_size=3, dilation_rates=(1, 2, 3),
            scale_attention_filters=(4, 4, 4, 4))


def test_kpac_block_layer(tmp_path):
    # 1 shared kernel + 5 scale-attention convs + 2 shape-attention convs + fusion.
    run_layer_test(KPACBlock, TINY, (2, 16, 16, 8), (2, 16, 16, 8), tmp_path,
                   expected_num_trainable_weights=1 + 10 + 4 + 2)


@pytest.mark.parametrize("overrides,num_weights", [
    (dict(share_weights=False), 3 + 10 + 4 + 2),
    (dict(scale_attention=False, shape_attention=False), 1 + 2),
])
def test_kpac_block_variants(tmp_path, overrides, num_weights):
    run_layer_test(KPACBlock, {**TINY, **overrides}, (1, 12, 12, 8), (1, 12, 12, 8),
                   tmp_path, expected_num_trainable_weights=num_weights)


def test_shared_kernel_is_one_variable():
    block = KPACBlock(**TINY)
    block.build((None, None, None, 8))
    assert len(block.atrous_kernels) == 1
    assert block.atrous_kernels[0].path.endswith("shared_kernel")
    assert tuple(block.atrous_kernels[0].shape) == (3, 3, 8, 4)
    unshared = KPACBlock(**TINY, share_weights=False)
    unshared.build((None, None, None, 8))
    assert len(unshared.atrous_kernels) == 3


def dilate_kernel(kernel, rate):
    """Inserts rate - 1 zeros between taps: (k, k, i, o) -> (r(k-1)+1, ..., i, o)."""
    k = kernel.shape[0]
    size = rate * (k - 1) + 1
    out = np.zeros((size, size) + kernel.shape[2:], kernel.dtype)
    out[::rate, ::rate] = kernel
    return out


def lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_kpac_block_is_equation_7(rng):
    """h2 = K^f * ||_i alpha_i . beta . lrelu(K_{/s_i} * h1), with one K for all i."""
    block = KPACBlock(**TINY)
    h1 = rng.uniform(-1, 1, (2, 14, 10, 8)).astype("float32")
    alpha = rng.uniform(0, 1, (2, 14, 10, 3)).astype("float32")
    out = block(h1, scale_attention_maps=alpha).numpy()

    shared = block.atrous_kernels[0].numpy()
    (w1, b1), (w2, b2) = [(c.kernel.numpy(), c.bias.numpy()) for c in block.shape_convs]
    beta = sigmoid(lrelu(h1.mean(axis=(1, 2)) @ w1[0, 0] + b1) @ w2[0, 0] + b2)
    branches = []
    for i, rate in enumerate((1, 2, 3)):
        y = tf.nn.conv2d(h1, dilate_kernel(shared, rate), 1, "SAME").numpy()
        branches.append(alpha[..., i:i + 1] * beta[:, None, None, :] * lrelu(y))
    fused = tf.nn.conv2d(np.concatenate(branches, -1), block.fuse_conv.kernel, 1, "SAME")
    expected = lrelu(fused.numpy() + block.fuse_conv.bias.numpy())
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_scale_attention_maps(rng):
    block = KPACBlock(**TINY)
    h1 = rng.uniform(-1, 1, (1, 16, 16, 8)).astype("float32")
    maps = block.scale_attention_maps(h1).numpy()
    assert maps.shape == (1, 16, 16, 3)
    assert (maps > 0).all() and (maps < 1).all()
    np.testing.assert_allclose(block(h1).numpy(),
                               block(h1, scale_attention_maps=maps).numpy(), atol=1e-6)
    # Zeroing every map but rate 1 changes the output: the maps really gate branches.
    only_first = np.concatenate([maps[..., :1], np.zeros_like(maps[..., 1:])], -1)
    assert not np.allclose(block(h1).numpy(),
                           block(h1, scale_attention_maps=only_first).numpy())


def test_attention_accessors_refuse_disabled_branches():
    block = KPACBlock(**TINY, scale_attention=False, shape_attention=False)
    x = np.zeros((1, 8, 8, 8), "float32")
    block(x)
    with pytest.raises(ValueError, match="scale_attention=False"):
        block.scale_attention_maps(x)
    with pytest.raises(ValueError, match="shape_attention=False"):
        block.shape_attention_vector(x)


@pytest.mark.parametrize("kwargs", [dict(dilation_rates=()), dict(dilation_rates=(0, 1)),
                                    dict(kernel_size=0), dict(filters=0)])
def test_kpac_block_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        KPACBlock(**{**TINY, **kwargs})


def test_residual_block_layer(tmp_path):
    run_layer_test(ResidualBlock, dict(filters=8), (2, 8, 8, 8), (2, 8, 8, 8), tmp_path,
                   expected_num_trainable_weights=4)


def test_residual_block_is_x_plus_two_convs(rng):
    block = ResidualBlock(filters=4)
    x = rng.uniform(-1, 1, (1, 6, 6, 4)).astype("float32")
    out = block(x).numpy()
    y = lrelu(tf.nn.conv2d(x, block.conv1.kernel, 1, "SAME").numpy() + block.conv1.bias.numpy())
    y = tf.nn.conv2d(y, block.conv2.kernel, 1, "SAME").numpy() + block.conv2.bias.numpy()
    np.testing.assert_allclose(out, x + y, atol=1e-5)


def test_residual_block_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="needs 8 input channels"):
        ResidualBlock(filters=8)(np.zeros((1, 4, 4, 3), "float32"))


def test_size_check():
    check = SizeCheck(8)
    ok = np.zeros((1, 16, 24, 3), "float32")
    np.testing.assert_array_equal(check(ok), ok)
    with pytest.raises(ValueError, match="multiples of 8.*got 16x20"):
        check(np.zeros((1, 16, 20, 3), "float32"))
    traced = tf.function(check, input_signature=[tf.TensorSpec((None, None, None, 3))])
    assert traced(ok).shape == ok.shape
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 8"):
        traced(np.zeros((1, 12, 16, 3), "float32"))
    assert SizeCheck.from_config(check.get_config()).multiple == 8
