"""A second defocus renderer, sharing nothing with the training renderer
(`defocus.render_defocus`), for held-out checks: a continuous depth surface instead
of layered shapes, a cat's-eye aperture with a bright rim instead of a flat disc or
polygon, per-pixel gathering from a ladder of blurred copies (no occlusion model) in
the sRGB transfer curve instead of gamma 2.2, and Poisson-Gaussian noise with its own
levels.

Images are float in [0, 1], (h, w, 3); radii in pixels.
"""

import numpy as np

from kpac_tf.rendering.defocus import rasterize_aperture


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def cat_eye_aperture(radius, angle=0.0, offset=0.35, supersample=4):
    """Normalised kernel of a cat's-eye aperture: the lens-shaped overlap of two discs
    of radius R whose centres sit `offset * R` either side of the middle along
    `angle` (the vignetted bokeh of an off-axis point), brighter towards its rim
    (weight 0.5 + (r / R)^2, spherical aberration's look). Neither a disc nor a
    regular polygon, the training apertures.

    Returns:
        float64 (2K + 1, 2K + 1), K = ceil(radius), summing to 1; the identity for
        radius < 0.5.
    """
    shift_y, shift_x = offset * radius * np.sin(angle), offset * radius * np.cos(angle)

    def weight(y, x):
        inside = (np.hypot(y - shift_y, x - shift_x) <= radius) & (
            np.hypot(y + shift_y, x + shift_x) <= radius)
        return inside * (0.5 + np.minimum(np.hypot(y, x) / radius, 1) ** 2)

    return rasterize_aperture(weight, radius, supersample)


def depth_surface(rng, shape):
    """A continuous inverse-depth surface in [0, 1]: a tilted plane plus smooth relief
    (cubic-spline upsampling of a coarse 4 x 6 random grid), (h, w) float64."""
    from scipy.ndimage import zoom

    height, width = shape
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    plane = x * np.cos(angle) + y * np.sin(angle)
    coarse = rng.uniform(-1, 1, (4, 6))
    relief = zoom(coarse, (height / 4, width / 6), order=3, mode="nearest")[:height, :width]
    surface = plane + rng.uniform(0.2, 0.5) * relief
    return (surface - surface.min()) / np.ptp(surface)


def render_gather(sharp, radius, angle=0.0, radius_step=0.5):
    """Spatially varying blur by gathering: the image is blurred with
    `cat_eye_aperture` (at `angle`) at radii 0, radius_step, ... and each pixel
    interpolates linearly between the two copies nearest its own radius, in linear
    light (sRGB curve). No occlusion: unlike the training renderer's layers.

    Args:
        sharp: float (h, w, 3) in [0, 1], sRGB.
        radius: float (h, w), blur radius per pixel.
        angle: float, the cat's eye's orientation (radians).

    Returns:
        float64 (h, w, 3) in [0, 1], sRGB.
    """
    from scipy.signal import fftconvolve

    linear = _srgb_to_linear(np.clip(sharp, 0, 1))
    levels = np.arange(0, radius.max() + radius_step, radius_step)
    position = radius / radius_step
    out = np.zeros_like(linear)
    for index, level in enumerate(levels):
        weight = np.clip(1 - np.abs(position - index), 0, 1)[..., None]
        if not weight.any():
            continue
        kernel = cat_eye_aperture(level, angle)
        pad = kernel.shape[0] // 2
        padded = np.pad(linear, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        blurred = fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1))
        out += weight * blurred
    return _linear_to_srgb(out)


def poisson_gaussian_noise(image, rng, photons=800.0, read_noise=0.003):
    """Shot noise (Poisson, `photons` at full scale, in linear light) plus Gaussian
    read noise; float (h, w, 3) sRGB in [0, 1] in and out."""
    linear = _srgb_to_linear(np.clip(image, 0, 1))
    noisy = rng.poisson(linear * photons) / photons + rng.normal(0, read_noise, image.shape)
    return _linear_to_srgb(noisy)
