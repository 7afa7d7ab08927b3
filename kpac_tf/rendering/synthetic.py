"""Synthetic defocus scenes: sharp content that ships with scikit-image, plus
procedural textures, arranged in depth and blurred with `kpac_tf.rendering.defocus`.

No download: every photograph comes from `skimage.data`'s bundled files (the
`photos` config adds the training photographs of `kpac_tf.rendering.package_photos` and rendered
pages of handwriting-like text). Train,
validation and test use disjoint photographs (`SOURCES`); procedural content is
drawn from split-specific seeds. The photographs that ship with matplotlib and
scikit-learn are never used here: `kpac_tf.evaluation.held_out` keeps them for held-out checks.

Validation and test examples are drawn as in version 1.2.0 of the builder (blur radius
up to `MAX_RADIUS`, fixed noise, photographs shrunk). Training examples (`TRAIN`) also
include whole in-focus images (scenes composed at the photographs' native scale, then
enlarged as a whole by 1-4x: as soft as photographed or softer, object edges and all),
some large blur and noise from none to strong, and their defocused examples' targets
keep the blur of near-focus layers (`TRAIN['keep_blur_below']`), so that a trained model
learns to leave in-focus and near-focus content alone, crisp or soft, and meets the
blur sizes of real photos.
"""

import os
import zlib

import numpy as np

from kpac_tf.data import pixels
from kpac_tf.rendering import package_photos
from kpac_tf.rendering.defocus import add_sensor_noise, render_defocus

# Bundled scikit-image photographs per split; no photograph is in two splits.
# Validation mirrors test's mix (a portrait, text, a texture) for model selection.
SOURCES = {
    "train": ("rocket", "hubble_deep_field", "immunohistochemistry", "retina", "coins",
              "moon", "grass", "colorwheel", "cell", "motorcycle", "clock", "logo",
              "horse", "checkerboard", "shepp_logan_phantom"),
    "validation": ("astronaut", "page", "brick"),
    "test": ("chelsea", "coffee", "camera", "gravel", "text"),
}
MAX_RADIUS = 10.0
# The training split's recipe: share of whole in-focus images (noise-free, target =
# input; a scene composed with photographs at native scale, then enlarged as a whole by a
# factor drawn from `in_focus_zoom`); of the defocused examples (photographs shrunk, as
# in validation and test), the share of large blur (radius up to `large_radius` instead
# of MAX_RADIUS) and of noise-free examples, and the range of the noise strength (times
# `add_sensor_noise`'s defaults) of the others; and the blur radius (pixels, of a
# rendered depth layer) below which a defocused example's target keeps the blur
# (`keep_blur_below`: near-focus softness is left alone, as in-focus softness is).
TRAIN = dict(in_focus=0.2, in_focus_zoom=(1.0, 4.0), large_blur=0.1, large_radius=20.0,
             noise_free=0.2, noise_scale=(0.5, 1.5), keep_blur_below=1.0)


def load_photo(name):
    """(image float32 (h, w, 3) in [0, 1], inverse depth (h, w) or None)."""
    from skimage import data

    if name == "motorcycle":  # Middlebury stereo pair with real disparity
        left, _, disparity = data.stereo_motorcycle()
        disparity = disparity.astype(np.float32)
        valid = np.isfinite(disparity)
        disparity[~valid] = disparity[valid].min()
        return pixels.to_unit(left), disparity
    image = getattr(data, name)()
    if image.dtype == bool or image.dtype == np.float64:  # horse; shepp_logan_phantom
        image = np.round(np.clip(image.astype(np.float64), 0, 1) * 255).astype(np.uint8)
    image = pixels.grey_to_rgb(image)
    if image.shape[-1] == 4:  # logo: composite over white
        alpha = image[..., 3:] / 255.0
        image = np.round(image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return pixels.to_unit(image), None


# Rendered handwriting-like pages (`text_pages`): count, size, fonts matplotlib ships.
TEXT_PAGES = dict(count=12, shape=(512, 768), seed=1900,
                  fonts=("DejaVuSerif-Italic.ttf", "DejaVuSans-Oblique.ttf",
                         "STIXGeneralItalic.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"))
_TEXT_SYMBOLS = "abcdefghijklmnopqrstuvwxyz0123456789()=+-/\u222b\u2211\u03b1\u03b2\u03c0\u221a"


def text_pages():
    """{name: (image float32 (h, w, 3) in [0, 1], None)}: pages of formulas and words
    written in dark ink on ruled, unevenly lit paper, slightly rotated and softened as
    photographed (Gaussian sigma 0-1.2 px), with the fonts that ship with matplotlib.
    Deterministic for given Pillow and matplotlib versions."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font_dir = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    height, width = TEXT_PAGES["shape"]
    pages = {}
    for index in range(TEXT_PAGES["count"]):
        rng = np.random.default_rng([TEXT_PAGES["seed"], index])
        # Drawn at twice the size, then shrunk: anti-aliased strokes.
        paper = rng.uniform(0.55, 0.9)
        y, x = np.mgrid[0:2 * height, 0:2 * width] / (2.0 * max(height, width))
        light = 1 + rng.uniform(-0.25, 0.25) * x + rng.uniform(-0.25, 0.25) * y
        page = Image.fromarray(np.uint8(np.clip(paper * light, 0, 1) * 255))
        draw = ImageDraw.Draw(page)
        ink = int(rng.uniform(0.0, 0.25) * 255)
        spacing = int(rng.integers(60, 140))
        for top in range(spacing, 2 * height, spacing):
            if rng.uniform() < 0.6:  # a ruled line
                draw.line([(0, top + spacing // 4), (2 * width, top + spacing // 4)],
                          fill=int(paper * 200), width=2)
            font = ImageFont.truetype(os.path.join(
                font_dir, TEXT_PAGES["fonts"][rng.integers(len(TEXT_PAGES["fonts"]))]),
                int(spacing * rng.uniform(0.45, 0.8)))
            left = int(rng.integers(0, 80))
            while left < 2 * width:
                word = "".join(rng.choice(list(_TEXT_SYMBOLS), rng.integers(1, 7)))
                draw.text((left, top - spacing // 2), word, fill=ink, font=font)
                left += int(draw.textlength(word, font=font) + rng.integers(20, 120))
        page = page.rotate(rng.uniform(-8, 8), resample=Image.BICUBIC, expand=False,
                           fillcolor=int(paper * 255))
        page = page.resize((width, height), Image.LANCZOS)
        sigma = rng.uniform(0.0, 1.2)
        if sigma > 0.1:
            page = page.filter(ImageFilter.GaussianBlur(sigma))
        pages[f"text_page_{index:02d}"] = (
            pixels.to_unit(pixels.grey_to_rgb(np.asarray(page))), None)
    return pages


class SourceBank:
    """The photographs of one split, loaded once.

    Args:
        split: "train", "validation" or "test".
        photos_dir: str or None, a folder of `kpac_tf.rendering.package_photos` (fetched with
            `experiments.fetch_photos`): its photographs and the rendered
            `text_pages` join the training split's.
    """

    def __init__(self, split, photos_dir=None):
        if split not in SOURCES:
            raise ValueError(f"split must be one of {sorted(SOURCES)}, got {split!r}")
        self.split = split
        self.photos = {name: load_photo(name) for name in SOURCES[split]}
        if photos_dir is not None and split == "train":
            self.photos.update((name, (package_photos.load(photos_dir, name), None))
                               for name in package_photos.PHOTOS)
            self.photos.update(text_pages())
        self.with_depth = [n for n, (_, depth) in self.photos.items() if depth is not None]


def _resize(image, size):
    from skimage.transform import resize

    return resize(image, size, order=1, anti_aliasing=True, preserve_range=True
                  ).astype(np.float32)


def _random_crop(rng, image, size, depth=None, native=False):
    """A random square of `image` (and `depth`) brought to `size` x `size`.

    By shrinking only: an enlarged crop is soft, a defocus example's 'sharp' target with
    a blur of its own that the network could not tell from defocus. With `native`, cut
    at the photograph's own scale, pixel for pixel, for in-focus content as soft as
    photographed. A photograph smaller than `size` is mirrored out first."""
    pad = [(0, max(size - n, 0)) for n in image.shape[:2]]
    image = np.pad(image, pad + [(0, 0)], mode="symmetric")
    depth = None if depth is None else np.pad(depth, pad, mode="symmetric")
    height, width = image.shape[:2]
    short = min(height, width)
    if native:
        side = size
    else:
        side = int(rng.uniform(max(size, short // 2), short + 1)) if short > size else size
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    window = (slice(top, top + side), slice(left, left + side))
    crop = image[window] if side == size else _resize(image[window], (size, size))
    if depth is None:
        return crop
    return crop, (depth[window] if side == size else _resize(depth[window], (size, size)))


def _procedural_texture(rng, size):
    """A random texture: smooth colour noise, stripes, checks or strokes, in [0, 1]."""
    kind = rng.integers(4)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    colors = rng.uniform(0, 1, (2, 3)).astype(np.float32)
    if kind == 0:  # multi-octave colour noise
        out = np.zeros((size, size, 3), np.float32)
        for octave in range(1, 5):
            cells = 2 ** (octave + 1)
            coarse = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
            out += _resize(coarse, (size, size)) / octave
        return np.clip(0.5 + 0.35 * out, 0, 1)
    if kind == 1:  # stripes
        angle, freq = rng.uniform(0, np.pi), rng.uniform(4, 40)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)))
    elif kind == 2:  # checks
        freq = rng.integers(3, 24)
        t = ((np.floor(x * freq) + np.floor(y * freq)) % 2).astype(np.float32)
    else:  # random strokes, like text or twigs
        t = np.zeros((size, size), np.float32)
        for _ in range(rng.integers(20, 80)):
            r0, c0 = rng.integers(0, size, 2)
            length, width = rng.integers(4, max(size // 3, 5)), rng.integers(1, 4)
            if rng.uniform() < 0.5:
                t[r0:r0 + width, c0:c0 + length] = 1
            else:
                t[r0:r0 + length, c0:c0 + width] = 1
    return colors[0] + (colors[1] - colors[0]) * t[..., None]


def _texture(rng, bank, size, native):
    if rng.uniform() < 0.7:
        name = sorted(bank.photos)[rng.integers(len(bank.photos))]
        return _random_crop(rng, bank.photos[name][0], size, native=native)
    return _procedural_texture(rng, size)


def _shape_mask(rng, size):
    """A random ellipse, rectangle or polygon, boolean (size, size)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0, size, 2)
    ry, rx = rng.uniform(size / 10, size / 2.5, 2)
    kind = rng.integers(3)
    if kind == 0:
        angle = rng.uniform(0, np.pi)
        u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        return (u / rx) ** 2 + (v / ry) ** 2 <= 1
    if kind == 1:
        return (np.abs(y - cy) <= ry) & (np.abs(x - cx) <= rx)
    sides = rng.integers(3, 8)
    angles = np.sort(rng.uniform(0, 2 * np.pi, sides))
    radii = rng.uniform(0.5, 1.0, sides) * max(ry, rx)
    px, py = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    inside = np.zeros((size, size), bool)
    for i in range(sides):  # even-odd rule
        x0, y0, x1, y1 = px[i], py[i], px[i - 1], py[i - 1]
        crosses = (y0 > y) != (y1 > y)
        x_at = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-9, y1 - y0)
        inside ^= crosses & (x < x_at)
    return inside


def make_scene(rng, bank, size, native=False):
    """A sharp image and its inverse depth (larger is nearer, in [0, 1]).

    Kinds: layered planes (textured shapes at constant depths over a background),
    a slanted background plane (a depth ramp) with shapes, or a photograph with its
    real disparity (when the split has one). Photographs are shrunk into the scene,
    or cut at their native scale (`_random_crop`).

    Returns:
        (sharp float32 (size, size, 3) in [0, 1], inverse_depth float32 (size, size)).
    """
    weights = {"layers": 0.45, "ramp": 0.4, "disparity": 0.15 if bank.with_depth else 0}
    kinds, p = list(weights), np.array(list(weights.values()))
    kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
    if kind == "disparity":
        name = bank.with_depth[rng.integers(len(bank.with_depth))]
        image, disparity = bank.photos[name]
        sharp, depth = _random_crop(rng, image, size, disparity, native)
        depth = (depth - depth.min()) / max(float(np.ptp(depth)), 1e-6)
        return sharp, depth.astype(np.float32)
    sharp = _texture(rng, bank, size, native)
    if kind == "ramp":
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
        t = x * np.cos(angle) + y * np.sin(angle)
        t = (t - t.min()) / np.ptp(t)
        depth = rng.uniform(0, 0.3) + t * rng.uniform(0.3, 0.7)
    else:
        depth = np.full((size, size), rng.uniform(0, 0.3))
    for object_depth in np.sort(rng.uniform(0.2, 1.0, rng.integers(1, 5))):
        mask = _shape_mask(rng, size)
        sharp = np.where(mask[..., None], _texture(rng, bank, size, native), sharp)
        depth = np.where(mask, object_depth, depth)
    return sharp.astype(np.float32), depth.astype(np.float32)


def example_rng(seed, split, index):
    """The random generator of example `index` of `split`: stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _focus(rng, depth):
    """An in-focus inverse depth: one of the scene's surfaces (half the time) or any
    depth in its range."""
    if rng.uniform() < 0.5:
        return float(rng.choice(np.unique(np.round(depth, 3))))
    return rng.uniform(float(depth.min()), float(depth.max()))


def _blur_scale(rng, depth, focus, top_radius):
    """Pixels of blur radius per unit of inverse depth: the largest radius in the
    scene is drawn from [1.5, top_radius]."""
    spread = max(float(np.abs(depth - focus).max()), 1e-3)
    return rng.uniform(1.5, top_radius) / spread


def _blades(rng):
    """0 (a disc aperture, 70%) or a 5-8 blade polygon."""
    return 0 if rng.uniform() < 0.7 else int(rng.integers(5, 9))


def _train_defocus(rng, depth):
    """Focus, blur scale, aperture blades and noise strength of a defocused training
    example (`TRAIN`): (focus, pixels_per_unit, blades, noise_scale)."""
    focus = _focus(rng, depth)
    top = TRAIN["large_radius"] if rng.uniform() < TRAIN["large_blur"] else MAX_RADIUS
    pixels_per_unit = _blur_scale(rng, depth, focus, top)
    blades = _blades(rng)
    noise = 0.0 if rng.uniform() < TRAIN["noise_free"] else rng.uniform(*TRAIN["noise_scale"])
    return focus, pixels_per_unit, blades, noise


def make_example(seed, split, index, bank, size):
    """One synthetic defocus example.

    Returns:
        dict with `blurry`, `sharp` uint8 (size, size, 3) (the target: the scene in
        focus; in a defocused training example, with the blur of its layers under
        `TRAIN['keep_blur_below']` px kept), `blur_radius` float32 (size, size) in
        pixels (the true circle-of-confusion radius of the scene's pixels), and `name`.
    """
    rng = example_rng(seed, split, index)
    in_focus = False
    if split == "train":
        in_focus = rng.uniform() < TRAIN["in_focus"]
        if in_focus:  # composed at 1 / zoom of the size, then enlarged as a whole
            zoom = rng.uniform(*TRAIN["in_focus_zoom"])
            small, _ = make_scene(rng, bank, int(round(size / zoom)), native=True)
            sharp = small if small.shape[0] == size else _resize(small, (size, size))
        else:
            sharp, depth = make_scene(rng, bank, size)
            focus, pixels_per_unit, blades, noise = _train_defocus(rng, depth)
    else:  # exactly the draws of version 1.2.0
        sharp, depth = make_scene(rng, bank, size)
        focus = _focus(rng, depth)
        pixels_per_unit = _blur_scale(rng, depth, focus, MAX_RADIUS)
        blades, noise = _blades(rng), 1.0
    target = sharp
    if in_focus:  # the sharp image itself: no blur, no noise
        blurry, radius = sharp, np.zeros((size, size), np.float32)
    else:
        rotation = rng.uniform(0, np.pi)
        blurry, radius = render_defocus(sharp, depth, focus, pixels_per_unit,
                                        blades=blades, rotation=rotation)
        if split == "train":  # near-focus softness stays in the target
            target, _ = render_defocus(sharp, depth, focus, pixels_per_unit,
                                       blades=blades, rotation=rotation,
                                       keep_blur_below=TRAIN["keep_blur_below"])
        if noise:
            blurry = add_sensor_noise(blurry, rng, strength=noise)
    return {"blurry": pixels.from_unit(blurry, np.uint8),
            "sharp": pixels.from_unit(target, np.uint8),
            "blur_radius": radius.astype(np.float32), "name": f"{split}_{index:05d}"}
