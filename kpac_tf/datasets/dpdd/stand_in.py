"""A stand-in for the DPDD archive, NOT DPDD: synthetic scenes written in the exact
layout, file naming, size (1680x1120) and bit depth (16-bit PNG) of
`dd_dp_dataset_canon.zip`, so the full-size path (build, train on 512 crops, evaluate
at 1680x1120) runs without the 35 GB download. Scores on it are no DPDD numbers.

Layout and naming, as in the official archive (its file lists: `DPDNet/file_names/`
of GitHub Abdullah-Abuolaim/defocus-deblurring-dual-pixel):

    dd_dp_dataset_canon/<split>_c/source/1P0A0917.png    defocused (combined) image
    dd_dp_dataset_canon/<split>_c/target/1P0A0916.png    all-in-focus target
    dd_dp_dataset_canon/<split>_l/source/1P0A0917_L.png  left dual-pixel view
    dd_dp_dataset_canon/<split>_r/source/1P0A0917_R.png  right dual-pixel view

for split in train, val, test. A target is its own capture, numbered one below or
one or two above its source; the splits' scenes are interleaved in capture order.
Only the sorted file lists, paired by position, say which files form a scene.

Content: a `kpac_tf.rendering.synthetic` scene (sharp image and inverse depth) is the target;
`render_dual_pixel` gives the two dual-pixel views, each seeing one half of the
aperture, so defocused content shifts in opposite directions in the two views (and
the other way round in front of the focal plane); `defocus.add_sensor_noise` is
added to each view, and the centre image is their mean in linear light, as a
dual-pixel sensor sums its two photodiodes.
"""

import concurrent.futures
import pathlib

import numpy as np
import tensorflow as tf

from kpac_tf.data import images, pixels
from kpac_tf.datasets.dpdd.dpdd_dataset_builder import STAND_IN_MARKER
from kpac_tf.rendering import synthetic
from kpac_tf.rendering.defocus import GAMMA, add_sensor_noise, aperture_kernel, coc_radius
from kpac_tf.utils.files import atomic_output

SPLITS = ("train", "val", "test")
HEIGHT, WIDTH = 1120, 1680
FIRST_NUMBER = 890                # the archive's first capture: 1P0A0890
LARGEST_RADIUS = (4.0, 16.0)      # a scene's largest blur radius, px at 1120 high
MAX_LAYERS = 10                   # blur layers of a scene at most
PNG_COMPRESSION = 0               # zlib level: 0, stored, the fastest to write
_BANKS = {"train": "train", "val": "validation", "test": "test"}  # synthetic photos per split


def capture_names(counts, seed=0):
    """File stems of a stand-in archive, numbered like the real one.

    Each scene takes a capture number for its source and one for its target (one
    below, one above or two above); scenes of the three splits come in a shuffled
    order, numbers rising from 0890 with small gaps.

    Args:
        counts: dict split -> number of scenes (splits: train, val, test).
        seed: int.

    Returns:
        {split: [(source stem, target stem)]}, in capture order, so that sorted
        file lists pair by position.

    Raises:
        ValueError: an unknown split, a negative count, or more scenes than Canon's
            four-digit file numbers hold (about 2500).
    """
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown or any(n < 0 for n in counts.values()):
        raise ValueError(f"scene counts must be >= 0 for splits {SPLITS}, got {counts}")
    rng = np.random.default_rng([seed, 13])
    order = rng.permutation(np.repeat(SPLITS, [counts.get(s, 0) for s in SPLITS]))
    names = {split: [] for split in SPLITS}
    number = FIRST_NUMBER
    for split in order:
        offset = int(rng.choice([1, -1, 2], p=[0.64, 0.35, 0.01]))  # as in DPDD
        source = number + (offset == -1)
        names[split].append((f"1P0A{source:04d}", f"1P0A{source + offset:04d}"))
        number = max(source, source + offset) + 1 + int(rng.integers(0, 3))
    if number > 10000:
        raise ValueError(f"{len(order)} scenes need capture numbers past 1P0A9999; "
                         "ask for fewer (at most about 2500)")
    return names


def half_disc_kernels(radius):
    """The left and right dual-pixel kernels of a layer at signed blur `radius`.

    `aperture_kernel(|radius|)` (a disc) cut along its vertical axis, the centre
    column shared half and half, each half normalised: their mean is the disc.
    Behind the focal plane (radius < 0) the left view takes the left half, which
    moves defocused content left; in front (radius > 0) the halves swap.

    Returns:
        (left, right): float64 (2R + 1, 2R + 1), R = ceil(|radius|), each summing
        to 1; the right kernel is the left one rotated by 180 degrees.
    """
    disc = aperture_kernel(abs(radius))
    column = np.arange(disc.shape[1]) - disc.shape[1] // 2
    left = disc * ((column < 0) + 0.5 * (column == 0))
    left, right = left / left.sum(), (disc - left) / (disc - left).sum()
    return (left, right) if radius <= 0 else (right, left)


def _fast_length(n):
    """The smallest m >= n whose prime factors are 2, 3 and 5 (quick FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _blur_views(layers, radii):
    """Blurs each layer with its left and right half-disc kernel by FFT.

    Args:
        layers: float32 tensor (k, h, w, c).
        radii: k signed blur radii (pixels).

    Returns:
        (left, right): float32 tensors (k, h, w, c); borders mirrored.
    """
    kernels = [half_disc_kernels(r)[0] for r in radii]
    pad = max(k.shape[0] for k in kernels) // 2
    _, height, width, _ = layers.shape
    size = (_fast_length(height + 2 * pad), _fast_length(width + 2 * pad))
    padded = tf.pad(layers, [[0, 0], [pad, pad], [pad, pad], [0, 0]], "SYMMETRIC")
    padded = tf.pad(padded, [[0, 0], [0, size[0] - height - 2 * pad],
                             [0, size[1] - width - 2 * pad], [0, 0]])
    spectrum = tf.signal.rfft2d(tf.transpose(padded, [0, 3, 1, 2]))
    placed = np.zeros((len(kernels),) + size, np.float32)
    for i, kernel in enumerate(kernels):  # kernel centre at (0, 0), wrapped around
        half = kernel.shape[0] // 2
        placed[i, :kernel.shape[0], :kernel.shape[1]] = kernel
        placed[i] = np.roll(placed[i], (-half, -half), axis=(0, 1))
    left = tf.signal.rfft2d(placed)[:, None]
    views = []
    for kernel in (left, tf.math.conj(left)):  # conj: the kernel rotated by 180 degrees
        blurred = tf.signal.irfft2d(spectrum * kernel, size)
        views.append(tf.transpose(blurred, [0, 2, 3, 1])[:, pad:pad + height,
                                                         pad:pad + width])
    return views


def _over(back, front):
    """`front` over `back`, both premultiplied (colour, coverage) or None."""
    if back is None or front is None:
        return front if back is None else back
    alpha = front[1]
    return back[0] * (1 - alpha) + front[0], back[1] * (1 - alpha) + alpha


def _blurred_group(linear, layer, indices, step):
    """Layers `indices` (far to near) blurred at half resolution and composited.

    Returns:
        per view (left, right): premultiplied (colour (h, w, 3), coverage (h, w, 1))
        at full resolution; (None, None) if `indices` is empty.
    """
    if not indices:
        return None, None
    height, width = layer.shape
    halves = []
    for index in indices:
        mask = tf.constant((layer == index)[..., None], tf.float32)
        halves.append(tf.nn.avg_pool2d(tf.concat([mask, mask * linear], -1)[None], 2, 2,
                                       "SAME")[0])
    out = []
    for blurred in _blur_views(tf.stack(halves), [i * step / 2 for i in indices]):
        group = None
        for layer_blurred in blurred:
            alpha = tf.clip_by_value(layer_blurred[..., :1], 0.0, 1.0)
            group = _over(group, (layer_blurred[..., 1:], alpha))
        full = tf.image.resize(tf.concat([group[0], group[1]], -1), (height, width))
        out.append((full[..., :3], full[..., 3:]))
    return out


def render_dual_pixel(sharp, inverse_depth, focus_inverse_depth, pixels_per_unit,
                      max_layers=MAX_LAYERS):
    """The left and right dual-pixel views of a scene with depth.

    Layered as in `defocus.render_defocus` (blur in linear light, layers composited
    back to front with "over", colour normalised by coverage), each view with its
    half of the aperture (`half_disc_kernels`). Made for 1680x1120 in about half a
    second: the signed blur radius is quantised in steps of at least 1 px into at
    most about `max_layers` layers; the in-focus layer (|radius| < step / 2) stays
    at full resolution, the others are blurred at half resolution (2x2 mean, FFT,
    bilinear back up), those behind and those in front of the focal plane each
    composited as one group.

    Args:
        sharp: float array (h, w, 3) in [0, 1], gamma 2.2.
        inverse_depth: float array (h, w), larger is nearer.
        focus_inverse_depth: float, the in-focus inverse depth.
        pixels_per_unit: float, blur radius (pixels) per unit of inverse depth.
        max_layers: int, blur layers at most (plus the in-focus one).

    Returns:
        (left, right): float32 numpy (h, w, 3) in [0, 1], gamma 2.2.
    """
    sharp = np.clip(np.asarray(sharp, np.float32), 0, 1)
    inverse_depth = np.asarray(inverse_depth, np.float32)
    radius = (np.sign(inverse_depth - focus_inverse_depth)  # > 0 in front of focus
              * coc_radius(inverse_depth, focus_inverse_depth, pixels_per_unit))
    step = max(1.0, float(np.ptp(radius)) / max_layers)
    layer = np.round(radius / step).astype(np.int32)
    present = np.flatnonzero(np.bincount((layer - layer.min()).ravel())) + layer.min()
    linear = tf.constant(sharp ** GAMMA)
    in_focus = tf.constant((layer == 0)[..., None], tf.float32)
    focused = (in_focus * linear, in_focus) if (layer == 0).any() else None
    behind = _blurred_group(linear, layer, [int(i) for i in present if i < 0], step)
    front = _blurred_group(linear, layer, [int(i) for i in present if i > 0], step)
    views = []
    for view in (0, 1):
        colour, coverage = _over(_over(behind[view], focused), front[view])
        image = tf.clip_by_value(colour / tf.maximum(coverage, 1e-6), 0.0, 1.0)
        views.append((image ** (1 / GAMMA)).numpy())
    return tuple(views)


def combine_views(left, right):
    """The centre (combined) image: the mean of the two views in linear light.

    Args:
        left, right: float arrays (h, w, 3) in [0, 1], gamma 2.2.

    Returns:
        float32 (h, w, 3) in [0, 1], gamma 2.2.
    """
    linear = (np.power(left, GAMMA, dtype=np.float32)
              + np.power(right, GAMMA, dtype=np.float32)) / 2
    return np.power(linear, 1 / GAMMA, dtype=np.float32)


def render_scene(seed, split, index, bank, height=HEIGHT, width=WIDTH):
    """One stand-in scene: stable in (seed, split, index).

    Args:
        seed: int; split: "train", "val" or "test"; index: int, scene of the split.
        bank: `synthetic.SourceBank` of the split's photographs (`_BANKS`).
        height, width: int, image size; blur radii scale with the shorter side
            (at most 16 px at DPDD's 1120).

    Returns:
        dict with uint16 (height, width, 3) images: "target" (sharp), "source"
        (centre), "left", "right".
    """
    rng = synthetic.example_rng(seed, f"dpdd_stand_in/{split}", index)
    side = max(height, width)
    sharp, depth = synthetic.make_scene(rng, bank, side)
    top, left = rng.integers(0, side - height + 1), rng.integers(0, side - width + 1)
    sharp = sharp[top:top + height, left:left + width]
    depth = depth[top:top + height, left:left + width]
    focus = float(depth[rng.integers(height), rng.integers(width)])  # a point in focus
    spread = max(float(np.abs(depth - focus).max()), 1e-3)
    largest = rng.uniform(*LARGEST_RADIUS) * min(height, width) / HEIGHT
    views = render_dual_pixel(sharp, depth, focus, largest / spread)
    left_view, right_view = (add_sensor_noise(view, rng) for view in views)
    center = combine_views(left_view, right_view)
    return {name: pixels.from_unit(image, np.uint16) for name, image in
            (("target", sharp), ("source", center), ("left", left_view),
             ("right", right_view))}


def scene_paths(root, split, source, target):
    """{view: path} of one scene in the archive's layout under `root`."""
    root = pathlib.Path(root)
    return {"source": root / f"{split}_c" / "source" / f"{source}.png",
            "target": root / f"{split}_c" / "target" / f"{target}.png",
            "left": root / f"{split}_l" / "source" / f"{source}_L.png",
            "right": root / f"{split}_r" / "source" / f"{source}_R.png"}


def write_archive(output, counts, seed=0, height=HEIGHT, width=WIDTH, progress=None):
    """Writes a stand-in archive to `output`/dd_dp_dataset_canon/.

    Every PNG is written atomically (an interrupted run leaves no partial file);
    running the same command again rewrites the same files.

    Args:
        output: folder (created if missing); give it as --manual_dir to the builder.
        counts: dict split -> number of scenes.
        seed: int.
        height, width: int, image size (at least 32 each).
        progress: optional callable(done, total, split, source stem).

    Returns:
        pathlib.Path of dd_dp_dataset_canon/.

    Raises:
        ValueError: a bad size or count, or `output` holds PNGs this run would not
            write (another stand-in or anything else), before anything is written.
    """
    if min(height, width) < 32:
        raise ValueError(f"height and width must be at least 32, got {height}x{width}")
    names = capture_names(counts, seed)
    root = pathlib.Path(output) / "dd_dp_dataset_canon"
    planned = {path for split, pairs in names.items() for pair in pairs
               for path in scene_paths(root, split, *pair).values()}
    stale = sorted(set(root.glob("*/*/*.png")) - planned)
    if stale:
        raise ValueError(f"{root} holds {len(stale)} PNG files this run would not write "
                         f"(e.g. {stale[0]}): another archive? Choose an empty --output "
                         "or delete that folder.")
    for folder in {path.parent for path in planned}:
        folder.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_output(root / STAND_IN_MARKER) as tmp:
        pathlib.Path(tmp).write_text(
            "Written by experiments.dpdd_stand_in: synthetic scenes (kpac_tf.rendering.synthetic, "
            "kpac_tf.datasets.dpdd.stand_in) in the layout and naming of DPDD's "
            "dd_dp_dataset_canon.zip.\nNOT DPDD: scores on it are no DPDD numbers.\n"
            f"seed {seed}, {height}x{width}, scenes {dict(counts)}\n")
    jobs = [(split, index, source, target) for split, pairs in names.items()
            for index, (source, target) in enumerate(pairs)]
    banks = {bank: synthetic.SourceBank(bank) for bank in {_BANKS[job[0]] for job in jobs}}

    def render(job):
        split, index = job[:2]
        return render_scene(seed, split, index, banks[_BANKS[split]], height, width)

    pool = concurrent.futures.ThreadPoolExecutor(2)  # numpy and TF release the GIL
    try:
        for done, (job, scene) in enumerate(zip(jobs, pool.map(render, jobs)), 1):
            split, _, source, target = job
            paths = scene_paths(root, split, source, target)
            for view, image in scene.items():
                images.write_png(paths[view], image, PNG_COMPRESSION)
            if progress:
                progress(done, len(jobs), split, source)
    finally:
        pool.shutdown(cancel_futures=True)
    return root
