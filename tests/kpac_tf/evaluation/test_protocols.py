"""kpac_tf.evaluation.protocols: what each scoring protocol feeds the network and the
metrics."""

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.evaluation import protocols
from kpac_tf.evaluation.protocols import Protocol


def test_every_protocol_once_the_papers_first():
    assert protocols.ALL[0] == protocols.PAPER == Protocol(8, "round", "uniform")
    assert len(set(protocols.ALL)) == len(protocols.ALL) == 6
    assert [p.label for p in protocols.ALL] == [
        "8-bit (round), SSIM uniform", "8-bit (round), SSIM gaussian",
        "8-bit (high_byte), SSIM uniform", "8-bit (high_byte), SSIM gaussian",
        "16-bit, SSIM uniform", "16-bit, SSIM gaussian"]
    assert Protocol(16, "high_byte").to_8bit is None  # nothing becomes 8-bit at 16
    assert Protocol(16).as_dict() == {"bit_depth": 16, "to_8bit": None, "ssim": "uniform"}
    for bad, match in ((dict(bit_depth=12), "bit depth"), (dict(ssim="box"), "SSIM"),
                       (dict(to_8bit="truncate"), "to_8bit")):
        with pytest.raises(ValueError, match=match):
            Protocol(**bad)


def test_what_the_network_and_the_metrics_see():
    stored = tf.constant([[[[0, 0x12FF, 0xFF00]]]], tf.uint16)
    round_8, high_8, deep = Protocol(8, "round"), Protocol(8, "high_byte"), Protocol(16)
    np.testing.assert_allclose(round_8.network_input(stored),
                               np.array([[[[0, 19, 254]]]]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(high_8.network_input(stored),
                               np.array([[[[0, 18, 255]]]]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(deep.network_input(stored),
                               np.array([[[[0, 0x12FF, 0xFF00]]]]) / 32767.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(deep.unit(stored), stored.numpy() / 65535)
    assert deep.unit(stored).dtype == tf.float64
    # The dual triple, and inputs already in [-1, 1], pass through alike.
    triple = deep.network_input((stored, stored, stored))
    assert isinstance(triple, tuple) and len(triple) == 3
    given = np.full((1, 2, 2, 3), 0.25, np.float32)
    np.testing.assert_array_equal(round_8.network_input(given), given)
    # Equal conversions: one network run serves them.
    assert round_8.conversion(stored) != high_8.conversion(stored) != deep.conversion(stored)
    assert Protocol(8, "round", "gaussian").conversion(stored) == round_8.conversion(stored)
    eight = tf.zeros((1, 2, 2, 3), tf.uint8)
    assert len({p.conversion(eight) for p in protocols.ALL}) == 1  # an 8-bit source


def test_16_bit_scores_equal_the_float_output_to_1e_5_db(rng):
    """The module's claim: quantising the output to 16 bits (rather than scoring the
    float output) moves PSNR by about 1e-5 dB (here 64x48; less on larger images)."""
    from kpac_tf.data import pixels
    from kpac_tf.evaluation import metrics

    sharp = rng.randint(0, 65536, (1, 64, 48, 3)).astype(np.uint16)
    output = (pixels.to_network(sharp) + rng.normal(0, 0.05, sharp.shape)).astype(np.float32)
    target = Protocol(16).unit(sharp)
    quantised = float(metrics.psnr(Protocol(16).unit(output), target)[0])
    unquantised = float(metrics.psnr(np.clip((output.astype(np.float64) + 1) / 2, 0, 1),
                                     target)[0])
    assert abs(quantised - unquantised) < 3e-5


def test_what_the_flags_request():
    assert protocols.requested("8", "high_byte", "gaussian") == (
        Protocol(8, "high_byte", "gaussian"),)
    every = protocols.requested("16", "round", "uniform", every=True)
    assert every[0] == Protocol(16) and set(every) == set(protocols.ALL)
    with pytest.raises(ValueError, match="--to_8bit=high_byte has no effect with "
                                         "--bit_depth=16"):
        protocols.requested("16", "high_byte", "uniform")
