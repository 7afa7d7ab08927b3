"""Image quality metrics as the DPDD authors compute them (their `metrics.py`).

Every function takes float images in [0, 1], (height, width, channels) or batched
(batch, height, width, channels), and returns one value per image: float64 if
either image is float64, else float32.

- PSNR: `10 log10(1 / MSE)`, MSE over all pixels and channels; identical images
  give `inf` (the DPDD code returns 100 there).
- SSIM: Wang et al. 2004 with scikit-image's `structural_similarity` defaults that
  the DPDD code uses (`data_range=1`, per-channel, averaged): a 7x7 uniform window,
  sample covariance (N / (N - 1)), K1 = 0.01, K2 = 0.03, and the map's mean taken
  away from a 3-pixel border, i.e. over windows lying fully inside the image.
- MAE: mean absolute error over pixels and channels.
"""

import tensorflow as tf

from kpac_tf.data import pixels

SSIM_WINDOW = 7


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


def ssim(a, b):
    """Structural similarity for images in [0, 1] (scikit-image defaults, see module)."""
    a, b = _pair(a, b)
    if min(a.shape[-3], a.shape[-2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, "
                         f"got {a.shape}")
    single = a.shape.rank == 3
    if single:
        a, b = a[None], b[None]
    channels = a.shape[-1]
    # Channels become batch entries so one 2-D box filter serves them all.
    a = tf.reshape(tf.transpose(a, [0, 3, 1, 2]), [-1, a.shape[1], a.shape[2], 1])
    b = tf.reshape(tf.transpose(b, [0, 3, 1, 2]), [-1, b.shape[1], b.shape[2], 1])

    def box(x):
        return tf.nn.avg_pool2d(x, SSIM_WINDOW, 1, "VALID")

    n = SSIM_WINDOW ** 2
    cov_norm = n / (n - 1)
    mu_a, mu_b = box(a), box(b)
    var_a = cov_norm * (box(a * a) - mu_a * mu_a)
    var_b = cov_norm * (box(b * b) - mu_b * mu_b)
    cov = cov_norm * (box(a * b) - mu_a * mu_b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    per_channel = tf.reshape(tf.reduce_mean(ssim_map, axis=[1, 2, 3]), [-1, channels])
    values = tf.reduce_mean(per_channel, axis=-1)
    return values[0] if single else values


def quantised_unit(image):
    """uint8 image (or [-1, 1] float network output) -> float32 tensor in [0, 1].

    Network outputs are first quantised to 8 bits like the authors' saved results,
    `clip(round((y + 1) * 127.5), 0, 255)` (`pixels.from_network`).
    """
    image = tf.convert_to_tensor(image)
    if image.dtype.is_floating:
        image = pixels.from_network(image, tf.uint8)
    return pixels.to_unit(image)
