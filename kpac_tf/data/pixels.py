"""Pixel-value conversions, the one place that knows the ranges.

- Integer images: uint8 in [0, 255] or uint16 in [0, 65535].
- Network range: float32 in [-1, 1], `x / (peak / 2) - 1` of an integer image at its
  own bit depth (peak 255 or 65535).
- Unit range: float in [0, 1], `x / peak`.
- 16-bit to 8-bit: the paper says it trains and evaluates on 8-bit images, not how
  it reduces DPDD's 16-bit PNGs. Ours is `to_8bit="round"`, `round(x / 257)` (the
  nearest 8-bit value, = `round(x * 255 / 65535)`). `"high_byte"`, `x >> 8`, is
  what Pillow (and so `scipy.misc.imread`, which the authors' evaluation code reads
  images with) gives for a 16-bit RGB PNG (16-bit grey stays 16-bit in Pillow).
  `x >> 8` is `floor(x / 256)`: 257/256 times the contrast of `x / 257`, so every
  difference between two images grows by that factor and PSNR drops by
  20 log10(257/256) = 0.034 dB whenever errors exceed a quantisation step
  (`benchmarks/bit_depth.py` measures it).

Every function takes a tf.Tensor or a numpy array (any shape) and returns the same
kind: a tensor for a tensor (also inside tf.function), numpy for anything else.
`to_network` and `unit_to_network` give float32, `to_unit` its `dtype` argument;
`network_to_unit` and `from_unit` compute in the input's float precision (float16 /
bfloat16 as float32). Rounding is half to even (tf.round, like np.round).
"""

import functools

import tensorflow as tf

TO_8BIT = ("round", "high_byte")
INTEGER_DTYPES = (tf.uint8, tf.uint16)


def _same_kind(convert):
    """Runs a TF conversion on a tensor; numpy (or list) input gives numpy output."""
    @functools.wraps(convert)
    def wrapper(image, *args, **kwargs):
        out = convert(tf.convert_to_tensor(image), *args, **kwargs)
        return out if tf.is_tensor(image) else out.numpy()
    return wrapper


def _peak(dtype, argument):
    """255.0 for uint8, 65535.0 for uint16; ValueError naming `argument` otherwise."""
    dtype = tf.as_dtype(dtype)
    if dtype not in INTEGER_DTYPES:
        raise ValueError(f"{argument} must be uint8 or uint16, got {dtype.name}")
    return float(dtype.max)


def _float(image, argument):
    if not image.dtype.is_floating:
        raise ValueError(f"{argument} must be a float image, got {image.dtype.name}; "
                         "integer images go through to_network / to_unit")
    if image.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(image, tf.float32)
    return image


@_same_kind
def to_network(image):
    """uint8/uint16 image -> float32 in [-1, 1] at its own bit depth
    (`x / 127.5 - 1` for uint8, `x / 32767.5 - 1` for uint16)."""
    peak = _peak(image.dtype, "image")
    return tf.cast(image, tf.float32) / (peak / 2.0) - 1.0


@_same_kind
def from_network(output, dtype):
    """Float network output (nominally [-1, 1]) -> integer image of `dtype` (uint8
    or uint16): `clip(round((y + 1) * peak / 2), 0, peak)`, as the authors save
    results."""
    peak = _peak(dtype, "dtype")
    output = _float(output, "output")
    out = tf.clip_by_value(tf.round((output + 1.0) * (peak / 2.0)), 0.0, peak)
    return tf.cast(out, dtype)


@_same_kind
def to_unit(image, dtype=tf.float32):
    """uint8/uint16 image -> float in [0, 1] (`x / peak`) of float `dtype`
    (float32; float64 for numpy signal processing)."""
    return tf.cast(image, dtype) / _peak(image.dtype, "image")


@_same_kind
def from_unit(image, dtype):
    """Float image (nominally [0, 1], any float precision) -> integer image of
    `dtype` (uint8 or uint16): `round(clip(x, 0, 1) * peak)`."""
    peak = _peak(dtype, "dtype")
    image = _float(image, "image")
    return tf.cast(tf.clip_by_value(tf.round(image * peak), 0.0, peak), dtype)


@_same_kind
def photo_to_rgb(photo):
    """A photo (..., c) with c in 1-4 (grey, grey + alpha, RGB, RGBA) -> (..., 3) of
    its dtype: grey repeated, alpha left out (`rgb_to_photo` puts both back)."""
    grey = tf.shape(photo)[-1] <= 2
    return tf.gather(photo, tf.where(grey, [0, 0, 0], [0, 1, 2]), axis=-1)


@_same_kind
def rgb_to_photo(rgb, photo):
    """Undoes `photo_to_rgb` for `rgb` (..., 3), a deblurred `photo_to_rgb(photo)` of
    `photo`'s integer dtype: grey comes back as the mean of the three channels (in the
    network range, then rounded), alpha as it was in `photo`."""
    photo = tf.convert_to_tensor(photo)
    grey = tf.shape(photo)[-1] <= 2
    color = tf.cond(grey, lambda: from_network(tf.reduce_mean(
        to_network(rgb), axis=-1, keepdims=True), photo.dtype), lambda: rgb)
    return tf.concat([color, photo[..., tf.where(grey, 1, 3):]], axis=-1)


@_same_kind
def grey_to_rgb(image):
    """(h, w) grey image -> (h, w, 3), the grey repeated; an image with channels is
    returned as it is."""
    return tf.repeat(image[..., None], 3, axis=-1) if image.shape.rank == 2 else image


@_same_kind
def unit_to_network(image):
    """Float image in [0, 1] -> float32 in [-1, 1] (`x * 2 - 1`)."""
    return tf.cast(_float(image, "image"), tf.float32) * 2.0 - 1.0


@_same_kind
def network_to_unit(output):
    """Float network output -> float in [0, 1], unquantised: `clip((y + 1) / 2, 0, 1)`."""
    return tf.clip_by_value((_float(output, "output") + 1.0) / 2.0, 0.0, 1.0)


def check_to_8bit(to_8bit):
    """Raises ValueError unless `to_8bit` is one of `TO_8BIT`."""
    if to_8bit not in TO_8BIT:
        raise ValueError(f"to_8bit must be one of {TO_8BIT}, got {to_8bit!r}")


@_same_kind
def to_uint8(image, to_8bit="round"):
    """uint8 or uint16 image -> uint8 (uint8 passes through unchanged).

    Args:
        image: uint8 or uint16, any shape.
        to_8bit: how 16-bit values become 8-bit: "round" (ours, `round(x / 257)`,
            the nearest 8-bit value) or "high_byte" (`x >> 8`, what Pillow and
            `scipy.misc.imread` give, as in the authors' evaluation). They differ
            by at most one level, either way: 0x12FF -> 19 (round) vs 18
            (high_byte), 0xFF00 -> 254 vs 255.
    """
    check_to_8bit(to_8bit)
    _peak(image.dtype, "image")
    if image.dtype == tf.uint8:
        return image
    if to_8bit == "high_byte":
        return tf.cast(tf.bitwise.right_shift(image, tf.constant(8, tf.uint16)), tf.uint8)
    return tf.cast(tf.round(tf.cast(image, tf.float32) / 257.0), tf.uint8)


def to_8bit_network(image, to_8bit="round"):
    """uint8 or uint16 image -> float32 in [-1, 1], through 8-bit (the paper's
    networks see 8-bit images).

    Args:
        image: tf.Tensor (or numpy) uint8 or uint16, any shape.
        to_8bit: str, how uint16 becomes 8-bit (see `to_uint8`): "round" (ours,
            `round(x / 257)`) or "high_byte" (`x >> 8`, as Pillow reads it).
    """
    return to_network(to_uint8(image, to_8bit))
