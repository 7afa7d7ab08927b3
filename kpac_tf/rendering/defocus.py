"""Physically motivated defocus rendering: thin-lens blur sizes, aperture kernels,
and layered, occlusion-aware spatially varying blur.

Images here are float numpy arrays in [0, 1], (height, width, 3). Depth is given
as inverse depth (disparity-like: larger is nearer), because the thin-lens circle
of confusion is linear in it.
"""

import numpy as np

GAMMA = 2.2


def coc_radius(inverse_depth, focus_inverse_depth, pixels_per_unit):
    """Thin-lens circle-of-confusion radius in pixels.

    For a lens focused at distance d_f, a point at distance d images to a disc of
    diameter A * f / (d_f - f) * |1 - d_f / d|, i.e. proportional to
    |1/d - 1/d_f|. `pixels_per_unit` folds aperture, focal length and pixel pitch.

    Args:
        inverse_depth: array of 1/d (any shape), >= 0.
        focus_inverse_depth: float, 1/d_f of the focal plane.
        pixels_per_unit: float, radius in pixels per unit of inverse depth.

    Returns:
        float32 array of radii (pixels) with the shape of `inverse_depth`.
    """
    return (pixels_per_unit * np.abs(np.asarray(inverse_depth) - focus_inverse_depth)
            ).astype(np.float32)


def rasterize_aperture(weight, radius, supersample):
    """A normalised (2R + 1, 2R + 1) kernel, R = ceil(radius), from an aperture's
    weight at sub-pixel positions: `weight(y, x)` (arrays of offsets from the centre,
    in pixels) is sampled `supersample`^2 times per pixel and averaged; a radius below
    0.5 gives the identity kernel.

    Returns:
        float64 array summing to 1.
    """
    if radius < 0.5:
        return np.ones((1, 1))
    half = int(np.ceil(radius))
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    axis = (np.arange(-half, half + 1)[:, None] + offsets[None, :]).ravel()
    y, x = np.meshgrid(axis, axis, indexing="ij")
    size = 2 * half + 1
    kernel = weight(y, x).reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return kernel / kernel.sum()


def aperture_kernel(radius, blades=0, rotation=0.0, supersample=8):
    """Normalised blur kernel of a disc (blades=0) or regular-polygon aperture.

    Anti-aliased by `supersample`^2 sub-pixel sampling of the aperture's
    indicator; a radius below 0.5 gives the identity kernel.

    Args:
        radius: float, circumradius in pixels.
        blades: int, 0 for a disc, else the number of polygon sides (>= 3).
        rotation: float, polygon rotation in radians.
        supersample: int, sub-samples per pixel along each axis.

    Returns:
        float64 array (2R + 1, 2R + 1), R = ceil(radius), summing to 1.
    """
    if blades and blades < 3:
        raise ValueError(f"blades must be 0 (disc) or >= 3, got {blades}")

    def inside(y, x):
        if not blades:
            return x ** 2 + y ** 2 <= radius ** 2
        # Inside a regular polygon: the projection on every edge normal is below
        # the apothem.
        angles = rotation + 2 * np.pi * (np.arange(blades) + 0.5) / blades
        apothem = radius * np.cos(np.pi / blades)
        return np.all(x[..., None] * np.cos(angles) + y[..., None] * np.sin(angles)
                      <= apothem, axis=-1)

    return rasterize_aperture(inside, radius, supersample)


def convolve_same(images, kernel):
    """Convolves (h, w, c) with a centred odd kernel via FFT; reflect-padded borders."""
    pad = kernel.shape[0] // 2
    if pad == 0:
        return images * kernel[0, 0]
    padded = np.pad(images, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    shape = (padded.shape[0] + 2 * pad, padded.shape[1] + 2 * pad)
    spectrum = np.fft.rfft2(padded, s=shape, axes=(0, 1))
    spectrum *= np.fft.rfft2(kernel, s=shape)[..., None]
    full = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    return full[2 * pad:2 * pad + images.shape[0], 2 * pad:2 * pad + images.shape[1]]


def render_defocus(sharp, inverse_depth, focus_inverse_depth, pixels_per_unit,
                   blades=0, rotation=0.0, radius_step=0.75,
                   keep_blur_below=np.inf):
    """Renders spatially varying defocus blur of a scene with depth.

    The scene is cut into depth layers (each spanning at most `radius_step`
    pixels of blur radius); layers are blurred with their aperture kernel in linear
    light and composited back to front with the "over" operator, so a blurred
    foreground spills over the background while a sharp foreground edge stays sharp
    in front of a blurred background. Colour is normalised by accumulated coverage,
    which avoids dark halos where a layer ends.

    Args:
        sharp: float array (h, w, 3) in [0, 1], sRGB-like (gamma 2.2).
        inverse_depth: float array (h, w), larger is nearer.
        focus_inverse_depth: float, the in-focus inverse depth.
        pixels_per_unit: float, blur radius (pixels) per unit of inverse depth.
        blades: int, aperture: 0 disc, else polygon blades.
        rotation: float, aperture rotation (radians).
        radius_step: float, max blur-radius spread inside one layer (pixels).
        keep_blur_below: float, only layers whose blur radius is below this (pixels)
            are blurred; the others stay sharp (a training target that keeps
            near-focus softness and removes the rest).

    Returns:
        (blurry, radius): float32 (h, w, 3) in [0, 1] and the per-pixel blur radius
        float32 (h, w) in pixels.
    """
    radius = coc_radius(inverse_depth, focus_inverse_depth, pixels_per_unit)
    linear = np.power(np.clip(sharp, 0, 1), GAMMA)
    lo, hi = float(inverse_depth.min()), float(inverse_depth.max())
    span = max(radius_step / max(pixels_per_unit, 1e-9), 1e-6)
    edges = np.arange(lo, hi + span, span)
    layer_index = np.minimum(((inverse_depth - lo) / span).astype(int), len(edges) - 1)
    color = np.zeros_like(linear)
    coverage = np.zeros(linear.shape[:2] + (1,))
    for index in np.unique(layer_index):          # far (small 1/d) to near
        mask = (layer_index == index)[..., None].astype(np.float64)
        layer_radius = float(np.mean(radius[layer_index == index]))
        kept_radius = layer_radius if layer_radius < keep_blur_below else 0.0
        kernel = aperture_kernel(kept_radius, blades, rotation)
        blurred = convolve_same(np.concatenate([mask, mask * linear], -1), kernel)
        alpha = np.clip(blurred[..., :1], 0, 1)
        color = color * (1 - alpha) + blurred[..., 1:]
        coverage = coverage * (1 - alpha) + alpha
    blurry = color / np.maximum(coverage, 1e-6)
    return (np.power(np.clip(blurry, 0, 1), 1 / GAMMA).astype(np.float32), radius)


def add_sensor_noise(image, rng, read_noise=0.004, shot_noise=0.006, strength=1.0):
    """Heteroscedastic Gaussian noise (read + signal-dependent shot), clipped to [0, 1].

    Args:
        image: float array in [0, 1].
        rng: numpy Generator.
        read_noise: float, std of signal-independent noise.
        shot_noise: float, std scale of signal-dependent noise (std = shot * sqrt(x)).
        strength: float, multiplies both.
    """
    read, shot = read_noise * strength, shot_noise * strength
    std = np.sqrt(read ** 2 + shot ** 2 * np.clip(image, 0, 1))
    return np.clip(image + rng.normal(size=image.shape) * std, 0, 1).astype(np.float32)


def graded_defocus(sharp, max_radius, rng):
    """A photo with defocus growing linearly from none at the top row to
    `max_radius` pixels at the bottom (`render_defocus`), plus `add_sensor_noise`.

    Args:
        sharp: float array (h, w, 3) in [0, 1].
        max_radius: float, blur radius (pixels) of the bottom row.
        rng: numpy Generator (the noise).

    Returns:
        float32 (h, w, 3) in [0, 1].
    """
    height, width = sharp.shape[:2]
    inverse_depth = np.repeat(np.linspace(0, 1, height, dtype=np.float32)[:, None],
                              width, axis=1)
    blurry, _ = render_defocus(sharp, inverse_depth, 0.0, max_radius)
    return add_sensor_noise(blurry, rng)
