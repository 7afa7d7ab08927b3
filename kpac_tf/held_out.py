"""Held-out checks of a model trained on synthetic defocus (the bundled model's targets).

- Held-out defocus: photographs from other sources than the training photographs (the
  sample photos that ship with matplotlib and scikit-learn, which `kpac_tf.synthetic`
  never uses), defocused by `render_gather`, a second renderer that shares nothing with
  the training renderer (`kpac_tf.defocus.render_defocus`): a continuous depth surface
  instead of layered shapes, a soft-edged aperture with a bright rim instead of a flat
  disc or polygon, per-pixel gathering from a ladder of blurred copies (no occlusion
  model) in the sRGB transfer curve instead of gamma 2.2, and Poisson-Gaussian noise
  with its own levels.
- In-focus photographs: the same photographs and the synthetic test split's source
  photographs as they are; a model should return them unchanged.

Images are uint8 (h, w, 3) in and out; scores are the evaluation's 8-bit PSNR / SSIM.
"""

import importlib.util
import os

import numpy as np

from kpac_tf import evaluation, images, metrics, pixels, synthetic

# Held-out photographs: (package, file inside the package).
PHOTOS = {
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}
# Largest blur radius (pixels) of the held-out renders: each photograph at each.
MAX_RADII = (5.0, 10.0)
SEED = 2026


def photo_path(name):
    """Path of a held-out photograph inside its installed package.

    Raises:
        FileNotFoundError: the package (or file) is not installed, naming the fix.
    """
    package, member = PHOTOS[name]
    spec = importlib.util.find_spec(package)
    path = None if spec is None else os.path.join(os.path.dirname(spec.origin), member)
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(
            f"held-out photograph {name!r} ({member} of the {package} package) is not "
            "installed: pip install matplotlib scikit-learn (or kpac-tf's [test] extra)")
    return path


def in_focus_photos():
    """[(name, uint8 (h, w, 3))]: the held-out photographs and the synthetic test
    split's source photographs, as they are."""
    from skimage import data

    photos = [(name, images.read_image(photo_path(name))) for name in PHOTOS]
    for name in synthetic.SOURCES["test"]:
        image = getattr(data, name)()
        photos.append((name, np.repeat(image[..., None], 3, -1) if image.ndim == 2
                       else image[..., :3]))
    return photos


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def rim_aperture(radius):
    """Normalised kernel of a soft-edged disc brighter towards its rim (spherical
    aberration's look): weight 0.5 + (r / R)^2 inside, a one-pixel linear edge.

    Returns:
        float64 (2K + 1, 2K + 1), K = ceil(radius) + 1, summing to 1; the identity for
        radius < 0.5.
    """
    if radius < 0.5:
        return np.ones((1, 1))
    half = int(np.ceil(radius)) + 1
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    r = np.hypot(y, x)
    kernel = (0.5 + np.minimum(r / radius, 1) ** 2) * np.clip(radius + 0.5 - r, 0, 1)
    return kernel / kernel.sum()


def depth_surface(rng, shape):
    """A continuous inverse-depth surface in [0, 1]: a tilted plane plus smooth relief
    (bilinear upsampling of a coarse random grid), (h, w) float64."""
    import tensorflow as tf

    height, width = shape
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    plane = x * np.cos(angle) + y * np.sin(angle)
    coarse = rng.uniform(-1, 1, (1, 4, 6, 1))
    relief = tf.image.resize(coarse, shape, method="bicubic").numpy()[0, ..., 0]
    surface = plane + rng.uniform(0.2, 0.5) * relief
    return (surface - surface.min()) / np.ptp(surface)


def render_gather(sharp, radius, radius_step=0.5):
    """Spatially varying blur by gathering: the image is blurred with `rim_aperture`
    at radii 0, radius_step, ... and each pixel interpolates linearly between the two
    copies nearest its own radius, in linear light (sRGB curve).

    Args:
        sharp: float (h, w, 3) in [0, 1], sRGB.
        radius: float (h, w), blur radius per pixel.

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
        kernel = rim_aperture(level)
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


def defocused_photos(seed=SEED):
    """[(name, blurry uint8, sharp uint8, max_radius)]: every held-out photograph
    rendered at every radius of `MAX_RADII` with `render_gather` and noise; the focal
    plane is a random depth of the surface, so part of each image is in focus."""
    renders = []
    for index, name in enumerate(PHOTOS):
        sharp = images.read_image(photo_path(name))
        unit = np.asarray(pixels.to_unit(sharp, np.float64))
        for max_radius in MAX_RADII:
            rng = np.random.default_rng([seed, index, int(max_radius * 10)])
            depth = depth_surface(rng, sharp.shape[:2])
            focus = rng.uniform(0.2, 0.8)
            coc = np.abs(depth - focus) * max_radius / max(focus, 1 - focus)
            blurry = poisson_gaussian_noise(render_gather(unit, coc), rng)
            renders.append((f"{name}_r{max_radius:g}", np.asarray(
                pixels.from_unit(blurry, np.uint8)), sharp, max_radius))
    return renders


def check(deblurrer):
    """Scores a model on the held-out renders and the in-focus photographs.

    Args:
        deblurrer: `kpac_tf.Deblurrer` of a single-image network.

    Returns:
        dict: `defocus` [{name, max_radius, input_psnr, psnr, gain, input_ssim, ssim}],
        `mean_gain`, `min_gain` (dB), `in_focus` [{name, psnr}] (PSNR of output to
        input), `min_in_focus_psnr`.
    """
    defocus = []
    for name, blurry, sharp, max_radius in defocused_photos():
        score = evaluation.score_image(name, *(pixels.to_network(x)[None] for x in
                                               (blurry, deblurrer(blurry), sharp)))
        defocus.append(dict(name=name, max_radius=max_radius, input_psnr=score.input_psnr,
                            psnr=score.psnr, gain=score.psnr - score.input_psnr,
                            input_ssim=score.input_ssim, ssim=score.ssim))
    in_focus = [dict(name=name, psnr=float(metrics.psnr(metrics.to_unit(deblurrer(photo)),
                                                        metrics.to_unit(photo))))
                for name, photo in in_focus_photos()]
    gains = [row["gain"] for row in defocus]
    return dict(defocus=defocus, mean_gain=float(np.mean(gains)),
                min_gain=float(np.min(gains)), in_focus=in_focus,
                min_in_focus_psnr=min(row["psnr"] for row in in_focus))


def format_report(result):
    """Human-readable lines of `check`'s result."""
    lines = ["held-out defocus (matplotlib / scikit-learn photographs, second renderer):"]
    for row in result["defocus"]:
        lines.append(f"  {row['name']:<18} {row['input_psnr']:6.2f} -> {row['psnr']:6.2f} dB "
                     f"({row['gain']:+.2f}), SSIM {row['input_ssim']:.4f} -> {row['ssim']:.4f}")
    lines.append(f"  mean gain {result['mean_gain']:+.2f} dB, smallest {result['min_gain']:+.2f}")
    lines.append("in-focus photographs, PSNR of output to input:")
    for row in result["in_focus"]:
        lines.append(f"  {row['name']:<18} {row['psnr']:6.2f} dB")
    return "\n".join(lines)
