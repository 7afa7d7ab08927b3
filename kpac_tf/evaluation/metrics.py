"""Image quality metrics as the DPDD authors compute them (their `metrics.py`).

Every function takes float images in [0, 1], (height, width, channels) or batched
(batch, height, width, channels), and returns one value per image: float64 if
either image is float64, else float32.

- PSNR: `10 log10(1 / MSE)`, MSE over all pixels and channels; identical images
  give `inf` (the DPDD code returns 100 there).
- SSIM (Wang et al. 2004; K1 = 0.01, K2 = 0.03, per channel, averaged), with either
  window the field uses (`SSIM_WINDOWS`), each equal to scikit-image's
  `structural_similarity(a, b, data_range=1, channel_axis=-1, ...)`:
  - "uniform": scikit-image's defaults, which the DPDD code (and IFAN, Restormer
    after it) uses: a 7x7 uniform window, sample covariance (N / (N - 1));
  - "gaussian": Wang et al.'s own, as BasicSR, MMagic and MATLAB's `ssim` compute it
    (`gaussian_weights=True, sigma=1.5, use_sample_covariance=False`): an 11x11
    Gaussian window (sigma 1.5, truncated at 3.5 sigma), population covariance.
  The map's mean is taken away from the window's half-width at the border (3 or 5
  pixels), i.e. over windows lying fully inside the image.
- MAE: mean absolute error over pixels and channels.
"""

import numpy as np
import tensorflow as tf

from kpac_tf.data import pixels

SSIM_WINDOWS = ("uniform", "gaussian")
_GAUSSIAN_SIGMA, _GAUSSIAN_RADIUS = 1.5, 5  # scikit-image: int(3.5 * sigma + 0.5)


def _pair(a, b):
    a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
    dtype = tf.float64 if tf.float64 in (a.dtype, b.dtype) else tf.float32
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.shape.rank not in (3, 4):
        raise ValueError(f"expected (h, w, c) or (batch, h, w, c) images, got {a.shape}")
    return a, b


def psnr(a, b):
    """Peak signal-to-noise ratio (dB) for images in [0, 1]; `inf` when identical."""
    a, b = _pair(a, b)
    mse = tf.reduce_mean(tf.square(a - b), axis=[-3, -2, -1])
    return 10.0 * tf.math.log(1.0 / mse) / tf.math.log(tf.constant(10.0, mse.dtype))


def mae(a, b):
    """Mean absolute error for images in [0, 1]."""
    a, b = _pair(a, b)
    return tf.reduce_mean(tf.abs(a - b), axis=[-3, -2, -1])


def _valid_filter(x, taps):
    """Separable 'valid' filtering of (n, h, w, 1) images by the 1-D `taps` along the
    height, then the width, as sums of shifted slices: exact in float64 and far faster
    there than TensorFlow's float64 pooling and convolution kernels."""
    size = len(taps)
    for axis in (1, 2):
        length = x.shape[axis] - size + 1
        x = tf.add_n([taps[k] * (x[:, k:k + length] if axis == 1 else x[:, :, k:k + length])
                      for k in range(size)])
    return x


def check_ssim_window(window):
    """Raises ValueError unless `window` is one of `SSIM_WINDOWS`."""
    if window not in SSIM_WINDOWS:
        raise ValueError(f"SSIM window must be one of {SSIM_WINDOWS}, got {window!r}")


def _window(window):
    """(1-D taps, covariance normalisation) of an SSIM window (see the module)."""
    check_ssim_window(window)
    if window == "uniform":
        size = 7
        return [1.0 / size] * size, size ** 2 / (size ** 2 - 1)
    offsets = np.arange(-_GAUSSIAN_RADIUS, _GAUSSIAN_RADIUS + 1)
    weights = np.exp(-0.5 * np.square(offsets / _GAUSSIAN_SIGMA))
    return list(weights / weights.sum()), 1.0  # as scipy.ndimage.gaussian_filter


def ssim(a, b, window="uniform"):
    """Structural similarity for images in [0, 1]; `window` "uniform" (scikit-image's
    defaults, DPDD's) or "gaussian" (Wang et al.'s; see the module docstring)."""
    a, b = _pair(a, b)
    taps, cov_norm = _window(window)
    size = len(taps)
    if min(a.shape[-3], a.shape[-2]) < size:
        raise ValueError(f"SSIM ({window} window) needs images of at least {size}x{size}, "
                         f"got {a.shape}")

    def local_mean(x):
        return _valid_filter(x, taps)

    single = a.shape.rank == 3
    if single:
        a, b = a[None], b[None]
    channels = a.shape[-1]
    # Channels become batch entries so one 2-D filter serves them all.
    a = tf.reshape(tf.transpose(a, [0, 3, 1, 2]), [-1, a.shape[1], a.shape[2], 1])
    b = tf.reshape(tf.transpose(b, [0, 3, 1, 2]), [-1, b.shape[1], b.shape[2], 1])
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = cov_norm * (local_mean(a * a) - mu_a * mu_a)
    var_b = cov_norm * (local_mean(b * b) - mu_b * mu_b)
    cov = cov_norm * (local_mean(a * b) - mu_a * mu_b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    per_channel = tf.reshape(tf.reduce_mean(ssim_map, axis=[1, 2, 3]), [-1, channels])
    values = tf.reduce_mean(per_channel, axis=-1)
    return values[0] if single else values


def quantised_unit(image, bit_depth=8, to_8bit="round", dtype=tf.float32):
    """An image as the metrics see it: `dtype` tensor in [0, 1] at `bit_depth` (8 or 16).

    Float network outputs in [-1, 1] are first quantised, like the authors' saved
    results, `clip(round((y + 1) * 127.5), 0, 255)` at 8 bits (`pixels.from_network`;
    `* 32767.5` and 65535 at 16). Integer images (uint8, uint16) are reduced to 8 bits
    by `to_8bit` when `bit_depth` is 8 (`pixels.to_uint8`) and kept as they are at 16.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype.is_floating:
        image = pixels.from_network(image, tf.uint16 if bit_depth == 16 else tf.uint8)
    elif bit_depth == 8:
        image = pixels.to_uint8(image, to_8bit)
    return pixels.to_unit(image, dtype)
