"""Input pipelines over the project's TFDS builders (`datasets/dpdd`,
`datasets/synthetic_defocus`).

Images leave the pipeline as float32 in [-1, 1] (`x / 127.5 - 1` of 8-bit values).
The paper trains and evaluates on 8-bit images but does not say how DPDD's 16-bit
PNGs become 8-bit. `to_8bit` chooses (`kpac_tf.pixels.to_uint8`): "round",
`round(x / 257)`, is OUR choice and the default; "high_byte", `x >> 8`, is what
Pillow / `scipy.misc.imread` give, as in the authors' evaluation code.
"""

import importlib
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf import pixels
from kpac_tf.files import atomic_output

# Our dataset names -> TFDS builder folders under datasets/.
DATASETS = {"synthetic": "synthetic_defocus", "dpdd": "dpdd"}
DATASETS_DIR = pathlib.Path(__file__).resolve().parents[1] / "datasets"


def get_builder(dataset, data_dir=None, config=None):
    """The TFDS builder of `dataset` ("synthetic" or "dpdd").

    The builder code lives in the repository's `datasets/<name>/` folder (as `tfds
    build datasets/<name>` expects); it is imported as `<name>.<name>_dataset_builder`,
    the module name `tfds build` gives it, so both register one class.

    Args:
        dataset: str, "synthetic" or "dpdd".
        data_dir: str or None, TFDS data folder (None: TFDS's default,
            ~/tensorflow_datasets).
        config: str or None, builder config ("default", "large", "photos" or "tiny"
            for synthetic, "single" or "dual" for dpdd); None takes the builder's
            default.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    name = DATASETS[dataset]
    if not (DATASETS_DIR / name).is_dir():
        raise FileNotFoundError(
            f"dataset builders not found at {DATASETS_DIR / name}: kpac_tf's data "
            "pipeline runs from a clone of the repository (pip install -e .)")
    if str(DATASETS_DIR) not in sys.path:
        sys.path.append(str(DATASETS_DIR))
    module = importlib.import_module(f"{name}.{name}_dataset_builder")
    return module.Builder(config=config, data_dir=data_dir)


def prepare(dataset, data_dir=None, config=None, manual_dir=None):
    """Builds `dataset` into `data_dir` if not yet there; returns the builder.

    `manual_dir` is the extracted DPDD archive, or for the synthetic `photos` config
    the folder of `experiments.fetch_photos` (other synthetic configs ignore it).
    """
    import tensorflow_datasets as tfds

    builder = get_builder(dataset, data_dir, config)
    download_config = tfds.download.DownloadConfig(
        manual_dir=str(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=download_config)
    return builder


def dataset_config(dataset, model, config=None):
    """The TFDS builder config to use: `config` if given, else "single" (or "dual"
    for the dual network) for dpdd and "default" for synthetic.

    Args:
        dataset: str, "synthetic" or "dpdd".
        model: str or None, network name ("dual" needs DPDD's dual config).
        config: str or None, an explicitly requested config (wins).
    """
    if config:
        return config
    if dataset == "dpdd":
        return "dual" if model == "dual" else "single"
    return "default"


def to_unit_range(image, to_8bit="round"):
    """uint8 or uint16 image -> float32 in [-1, 1], through 8-bit (the paper's
    networks see 8-bit images).

    Args:
        image: tf.Tensor (or numpy) uint8 or uint16, any shape.
        to_8bit: str, how uint16 becomes 8-bit (see `pixels.to_uint8`): "round"
            (ours, `round(x / 257)`) or "high_byte" (`x >> 8`, as Pillow reads it).
    """
    return pixels.to_network(pixels.to_uint8(image, to_8bit))


def _standardize(example, to_8bit):
    """A builder's example -> {center, [left, right], sharp, name} in [-1, 1]."""
    if "blurry" in example:  # synthetic
        views = {"center": example["blurry"], "sharp": example["sharp"]}
    else:  # dpdd
        views = {"center": example["image"], "sharp": example["target"]}
        if "left" in example:
            views.update(left=example["left"], right=example["right"])
    out = {key: to_unit_range(value, to_8bit) for key, value in views.items()}
    out["name"] = example["name"]
    return out


def _inputs(example):
    if "left" in example:
        return (example["center"], example["left"], example["right"])
    return example["center"]


_CACHE_FORMAT = 1
_VIEW_ORDER = ("center", "left", "right", "sharp")


class TrainingImages:
    """A split's 8-bit views, decoded once, as raw uint8 files: one per image and view.

    Written by `training_images` into `folder`: image i's view v is the file
    `path(v, i)` holding its `(height, width, 3)` bytes, row after row (views
    "center", "sharp", and "left" / "right" for DPDD's dual config). `names[i]` is
    its scene name, `shapes[i]` its (height, width), in the split's stored (TFDS)
    order.
    """

    def __init__(self, folder, manifest):
        self.folder = folder
        self.views = list(manifest["views"])
        self.names = list(manifest["names"])
        self.shapes = np.array(manifest["shapes"], np.int64).reshape(-1, 2)

    def __len__(self):
        return len(self.names)

    def path(self, view, index):
        return os.path.join(self.folder, f"{index:05d}-{view}.u8")

    def image(self, view, index):
        """Image `index` of `view`, uint8 (h, w, 3) (numpy, read from its file)."""
        return np.fromfile(self.path(view, index), np.uint8).reshape(
            *self.shapes[index], 3)


def _write_images(folder, examples, **identity):
    """Writes `examples`, an iterable of (name, {view: uint8 (h, w, 3)}), into
    `folder` as one raw file per image and view, then `manifest.json` (names,
    shapes, views and `identity`): a folder without the manifest is incomplete.
    Every file appears atomically, so concurrent writers of the same data are safe."""
    os.makedirs(folder, exist_ok=True)
    views, names, shapes = None, [], []
    for index, (name, images) in enumerate(examples):
        views = views or list(images)
        shape = images[views[0]].shape
        for view in views:
            image = images[view]
            if image.shape != shape or image.dtype != np.uint8 or len(shape) != 3 \
                    or shape[-1] != 3:
                raise ValueError(f"{name}: view {view} is {image.shape} {image.dtype}, "
                                 f"expected {shape} uint8 with 3 channels")
            with atomic_output(os.path.join(folder, f"{index:05d}-{view}.u8")) as tmp:
                np.ascontiguousarray(image).tofile(tmp)
                os.chmod(tmp, 0o644)  # readable by every user of the data
        names.append(name)
        shapes.append([int(shape[0]), int(shape[1])])
    if not names:
        raise ValueError(f"no images to cache in {folder}")
    manifest = dict(format=_CACHE_FORMAT, views=views, names=names, shapes=shapes,
                    **identity)
    with atomic_output(os.path.join(folder, "manifest.json")) as tmp, open(tmp, "w") as f:
        json.dump(manifest, f)
        os.chmod(tmp, 0o644)


def _open_images(folder, **identity):
    """The `TrainingImages` cached in `folder`, or None when missing, incomplete or
    written for other data (`identity` differs)."""
    try:
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get("format") != _CACHE_FORMAT or any(
            manifest.get(key) != value for key, value in identity.items()):
        return None
    images = TrainingImages(folder, manifest)
    for index, (height, width) in enumerate(images.shapes):
        for view in images.views:
            path = images.path(view, index)
            if not os.path.exists(path) or os.path.getsize(path) != height * width * 3:
                return None
    return images


def _decoded_split(builder, split, to_8bit):
    """Yields (name, {view: uint8 (h, w, 3)}) of every example in stored order: the
    one place the training pipeline decodes PNGs (`pixels.to_uint8` with `to_8bit`)."""
    def to_8bit_views(example):
        views = ({"center": example["blurry"], "sharp": example["sharp"]}
                 if "blurry" in example else
                 {"center": example["image"], "sharp": example["target"]})
        if "left" in example:
            views.update(left=example["left"], right=example["right"])
        return {k: pixels.to_uint8(v, to_8bit) for k, v in views.items()}, example["name"]

    ds = builder.as_dataset(split=split, shuffle_files=False)
    ds = ds.map(to_8bit_views, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
    for views, name in ds.as_numpy_iterator():
        yield name.decode(), {k: views[k] for k in _VIEW_ORDER if k in views}


def training_images(builder, split="train", to_8bit="round", cache_dir=None):
    """A split's images decoded once and converted to 8-bit (`pixels.to_uint8` with
    `to_8bit`), for `training_dataset` to crop from.

    The first call decodes every image of the split and writes it, 8-bit and raw,
    one file per image and view, with a `manifest.json`, into
    `<cache_dir>/<split>-<to_8bit>/`. `cache_dir` defaults to `training_cache/`
    inside the prepared dataset's folder (`builder.data_dir`): every run on that
    data shares it, and it goes when the dataset is deleted; where that folder
    cannot be written, `kpac_tf_training_cache/` in the system's temporary folder
    (logged). Later calls (resumes, other runs and processes) find it and decode
    nothing. DPDD's train split takes 350 x 1680 x 1120 x 3 bytes = 1.98 GB per view
    (single: 4.0 GB, dual: 7.9 GB) of disk; no process holds it in memory (the
    operating system's page cache keeps what fits).

    Args:
        builder: a prepared TFDS builder from `get_builder` / `prepare`.
        split: str, split name.
        to_8bit: str, "round" (ours) or "high_byte" (see `to_unit_range`).
        cache_dir: str or None, the cache's folder (None: see above).

    Returns:
        `TrainingImages`.
    """
    pixels.check_to_8bit(to_8bit)
    info = builder.info.splits[split]
    config = builder.builder_config.name if builder.builder_config else "default"
    # What the cache was made from: a rebuilt dataset gets a fresh cache.
    identity = dict(to_8bit=to_8bit, source=dict(
        dataset=builder.name, config=config, version=str(builder.info.version),
        split=split, num_examples=int(info.num_examples), num_bytes=int(info.num_bytes),
        shard_lengths=[int(n) for n in info.shard_lengths]))
    roots = [cache_dir] if cache_dir else [
        os.path.join(os.fspath(builder.data_dir), "training_cache"),
        os.path.join(tempfile.gettempdir(), "kpac_tf_training_cache", builder.name,
                     config, str(builder.info.version))]
    folders = [os.path.join(root, f"{split}-{to_8bit}") for root in roots]
    for folder in folders:
        cached = _open_images(folder, **identity)
        if cached is not None:
            return cached
    for folder in folders:
        start = time.time()
        try:
            _write_images(folder, _decoded_split(builder, split, to_8bit), **identity)
        except OSError as e:
            if folder == folders[-1]:
                raise
            logging.warning("Cannot write the training cache in %s (%s); using %s",
                            folder, e, folders[-1])
            continue
        cached = _open_images(folder, **identity)
        logging.info("Decoded the %s split once: %d images in %.0f s, cached (8-bit, "
                     "%.0f MB per view) in %s", split, len(cached), time.time() - start,
                     cached.shapes.prod(axis=1).sum() * 3 / 1e6, folder)
        return cached


def _fold(seed, *values):
    """A stateless RNG seed (shape [2]) from `seed` and integer `values`."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    for value in values:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(value, tf.int64))
    return key


def training_dataset(builder, split="train", crop_size=512, batch_size=4, flips=False,
                     seed=0, to_8bit="round", start=0, cache_dir=None):
    """Endless, deterministic batches of random crops for training.

    Every image is decoded once, converted to 8-bit and cached on disk
    (`training_images`); each crop reads its image's 8-bit file (the page cache
    serves it once warm), slices the window, and only the crops become float. The
    stream is a pure function of (seed, position): each epoch visits every image
    once in an order drawn from (seed, epoch), and crop k's window and flips are
    drawn from (seed, k). Batch b therefore needs no iterator state: a resumed run
    asks for `start=b` (training passes its step), and a checkpoint holds no images.

    Args:
        builder: a prepared TFDS builder from `get_builder` / `prepare`.
        split: str, split name.
        crop_size: int, side of the random square crops (the paper: 512).
        batch_size: int (the paper: 4).
        flips: bool, random horizontal and vertical flips (the paper uses none); a
            mirrored dual-pixel pair also swaps left and right.
        seed: int, fixes the order, crops and flips.
        to_8bit: str, 16-bit to 8-bit conversion, "round" (ours) or "high_byte"
            (see `to_unit_range`; no effect on 8-bit datasets).
        start: int, index of the first batch (a resumed run: its step).
        cache_dir: str or None, where the decoded 8-bit images are cached (see
            `training_images`).

    Returns:
        tf.data.Dataset of (inputs, sharp): inputs (batch, crop, crop, 3) float32 in
        [-1, 1], or (center, left, right) for DPDD's dual config; sharp likewise.

    Raises:
        ValueError: `crop_size` larger than an image of the split.
    """
    source = training_images(builder, split, to_8bit, cache_dir)
    return _crop_stream(source, crop_size, batch_size, flips, seed, start)


def _crop_stream(source, crop_size, batch_size, flips, seed, start):
    """`training_dataset`'s stream over a `TrainingImages`."""
    smallest = source.shapes.min(axis=0)
    if crop_size > smallest.min():
        raise ValueError(f"crop_size {crop_size} is larger than an image of this dataset "
                         f"({smallest[1]}x{smallest[0]}); choose a smaller --crop_size")
    count, shapes = len(source), tf.constant(source.shapes)
    paths = {view: tf.constant([source.path(view, i) for i in range(count)])
             for view in source.views}
    swapped = {"left": "right", "right": "left"}

    def crop(element):
        epoch, position = element // count, element % count
        order = tf.argsort(tf.random.stateless_uniform([count], _fold(seed, 0, epoch)))
        index = tf.gather(order, position)
        height, width = tf.unstack(tf.gather(shapes, index))
        draws = tf.random.experimental.stateless_split(_fold(seed, 1, element), 4)
        row, col = (tf.random.stateless_uniform([], draw, 0, side - crop_size + 1, tf.int64)
                    for draw, side in ((draws[0], height), (draws[1], width)))
        mirrored = tf.random.stateless_uniform([], draws[2]) < 0.5
        upside_down = tf.random.stateless_uniform([], draws[3]) < 0.5

        def window(view):
            path = paths[view][index]
            if flips and view in swapped:  # a mirrored left view looks like a right view
                path = tf.where(mirrored, paths[swapped[view]][index], path)
            image = tf.reshape(tf.io.decode_raw(tf.io.read_file(path), tf.uint8),
                               tf.stack([height, width, 3]))
            crop = tf.slice(image, tf.stack([row, col, 0]), [crop_size, crop_size, 3])
            if flips:
                crop = tf.cond(mirrored, lambda: tf.reverse(crop, [1]), lambda: crop)
                crop = tf.cond(upside_down, lambda: tf.reverse(crop, [0]), lambda: crop)
            return crop

        return {view: window(view) for view in source.views}

    def to_network(crops):
        crops = {view: pixels.to_network(x) for view, x in crops.items()}
        return _inputs(crops), crops["sharp"]

    return (tf.data.Dataset.range(start * batch_size, 2 ** 62)
            .map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True)
            .map(to_network, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(builder, split="test", to_8bit="round"):
    """Full-size images, batch 1, in the order TFDS stored them (fixed).

    `to_8bit` is the 16-bit to 8-bit conversion, "round" (ours) or "high_byte" (see
    `to_unit_range`).

    Returns:
        tf.data.Dataset of (inputs, sharp, name): inputs (1, h, w, 3) float32 in
        [-1, 1] (or the dual triple), sharp (1, h, w, 3), name (1,) string.
    """
    import warnings

    import tensorflow_datasets as tfds

    # A stream that holds at most two scenes beyond the one being scored (the final
    # prefetch and the one being decoded), so evaluation's memory does not grow with
    # the split. TFDS's defaults read files in parallel (about 10 full-size DPDD
    # scenes ahead), decode and prefetch more, and cache a dataset under 250 MiB
    # whole in memory; tf.data's default optimisations would parallelise `unpack`
    # and add autotuned buffers; fusing `unpack` with `batch` would run it on a thread of
    # its own with a result buffer, one scene more.
    read_config = tfds.ReadConfig(interleave_cycle_length=1, try_autocache=False,
                                  num_parallel_calls_for_interleave_files=None,
                                  num_parallel_calls_for_decode=1, skip_prefetch=True)
    with warnings.catch_warnings():  # TFDS passes `deterministic` to a serial interleave
        warnings.filterwarnings("ignore", "The `deterministic` argument has no effect")
        ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)

    def unpack(example):
        views = _standardize(example, to_8bit)
        return _inputs(views), views["sharp"], views["name"]

    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False
    options.experimental_optimization.inject_prefetch = False
    options.experimental_optimization.map_and_batch_fusion = False
    return ds.map(unpack).batch(1).prefetch(1).with_options(options)
