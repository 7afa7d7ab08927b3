"""kpac_tf.data.pixels: ranges, rounding, the two 16-to-8-bit choices, numpy in/out."""

import io

import numpy as np
import pytest
import tensorflow as tf

from kpac_tf.data import pixels


def test_sixteen_bit_to_eight_bit_round_by_default_or_high_byte():
    values = tf.constant([0, 257, 257 * 128, 65535, 300, 0x12FF], tf.uint16)
    np.testing.assert_allclose(pixels.to_8bit_network(values).numpy(),
                               np.array([0, 1, 128, 255, 1, 19]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(pixels.to_8bit_network(values, "high_byte").numpy(),
                               np.array([0, 1, 128, 255, 1, 18]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(pixels.to_8bit_network(tf.constant([0, 255], tf.uint8)), [-1, 1])


ALL_16BIT = np.arange(65536, dtype=np.uint16)


def test_sixteen_to_eight_bit_on_known_values():
    values = np.array([0, 127, 128, 129, 255, 256, 257, 0x12FF, 0x1280, 0xFF00, 65534,
                       65535], np.uint16)
    np.testing.assert_array_equal(pixels.to_uint8(values),  # round(x / 257)
                                  [0, 0, 0, 1, 1, 1, 1, 19, 18, 254, 255, 255])
    np.testing.assert_array_equal(pixels.to_uint8(values, "high_byte"),  # x >> 8
                                  [0, 0, 0, 0, 0, 1, 1, 18, 18, 255, 255, 255])
    exact = (257 * np.arange(256)).astype(np.uint16)  # both agree on k * 257 -> k
    for to_8bit in pixels.TO_8BIT:
        np.testing.assert_array_equal(pixels.to_uint8(exact, to_8bit), np.arange(256))


def test_round_is_the_nearest_8bit_value_and_high_byte_one_level_off_at_most():
    rounded = pixels.to_uint8(ALL_16BIT).astype(np.int64)
    high = pixels.to_uint8(ALL_16BIT, "high_byte").astype(np.int64)
    assert np.abs(rounded * 257 - ALL_16BIT).max() == 128
    np.testing.assert_array_equal(high, ALL_16BIT >> 8)
    assert set(np.unique(rounded - high)) == {-1, 0, 1}  # e.g. 0xFF00: 254 vs 255


def test_high_byte_is_what_pillow_reads_from_a_16bit_rgb_png():
    from PIL import Image

    image = ALL_16BIT.reshape(256, 256)
    image = np.stack([image, image[::-1], image.T], axis=-1)
    with Image.open(io.BytesIO(tf.io.encode_png(image).numpy())) as read:
        assert read.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(read), pixels.to_uint8(image, "high_byte"))


def test_uint8_passes_through_and_bad_arguments_are_named():
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(pixels.to_uint8(values, "high_byte"), values)
    with pytest.raises(ValueError, match="to_8bit must be one of .*'truncate'"):
        pixels.to_uint8(values, "truncate")
    with pytest.raises(ValueError, match="image must be uint8 or uint16, got float32"):
        pixels.to_network(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="dtype must be uint8 or uint16, got int32"):
        pixels.from_network(np.zeros(3, np.float32), np.int32)
    with pytest.raises(ValueError, match="output must be a float image"):
        pixels.from_network(values, np.uint8)


@pytest.mark.parametrize("dtype, peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_network_range_round_trip(dtype, peak):
    values = np.arange(0, peak + 1, dtype=dtype)
    net = pixels.to_network(values)
    assert net.dtype == np.float32 and net.min() == -1 and net.max() == 1
    np.testing.assert_array_equal(pixels.from_network(net, dtype), values)
    np.testing.assert_array_equal(pixels.from_network(np.float32([-1.5, 2.0]), dtype),
                                  [0, peak])  # clipped
    np.testing.assert_allclose(pixels.to_unit(values), values / peak, rtol=1e-6)
    np.testing.assert_array_equal(pixels.from_unit(values / peak, dtype), values)


def test_unit_range():
    np.testing.assert_array_equal(
        pixels.from_unit(np.array([-0.2, 0.0, 0.5, 1.0, 1.3]), np.uint8),
        [0, 0, 128, 255, 255])
    assert pixels.to_unit(np.uint8([51]), np.float64).dtype == np.float64
    np.testing.assert_array_equal(pixels.unit_to_network(np.float32([0, 0.5, 1])),
                                  [-1, 0, 1])
    np.testing.assert_array_equal(pixels.network_to_unit(np.float32([-2, 0, 1, 3])),
                                  [0, 0.5, 1, 1])


def test_tensors_stay_tensors_and_numpy_stays_numpy():
    image = np.uint16([[0, 4863, 65535]])
    assert isinstance(pixels.to_uint8(image), np.ndarray)
    assert tf.is_tensor(pixels.to_uint8(tf.constant(image)))
    traced = tf.function(lambda x: pixels.from_network(pixels.to_network(
        pixels.to_uint8(x, "high_byte")), tf.uint8))
    np.testing.assert_array_equal(traced(tf.constant(image)), [[0, 18, 255]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_photo_layout_to_rgb_and_back(dtype):
    """Grey repeated and alpha left out, then put back: grey as the mean of the
    deblurred channels (in the network range, rounded), alpha bit for bit."""
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    rgba = rng.integers(0, top + 1, (2, 5, 7, 4)).astype(dtype)
    for photo in (rgba[..., :1], rgba[..., 1:3], rgba[..., :3], rgba):
        for kind in (np.asarray, tf.constant):
            rgb = pixels.photo_to_rgb(kind(photo))
            assert tf.is_tensor(rgb) == (kind is tf.constant) and rgb.dtype == dtype
            expected = photo[..., :3] if photo.shape[-1] >= 3 else np.repeat(photo[..., :1], 3, -1)
            np.testing.assert_array_equal(np.asarray(rgb), expected)
            np.testing.assert_array_equal(np.asarray(pixels.rgb_to_photo(rgb, photo)), photo)
    deblurred = rgba[..., :3]  # three different channels, as a network gives for grey
    grey = pixels.rgb_to_photo(deblurred, rgba[..., 1:3])
    mean = deblurred.astype(np.float64).mean(-1)
    assert grey.shape == (2, 5, 7, 2) and np.abs(grey[..., 0] - mean).max() <= 0.5 + 1e-6
    np.testing.assert_array_equal(grey[..., 1], rgba[..., 2])
