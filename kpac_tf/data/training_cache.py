"""A split's 8-bit views decoded once and cached on disk as raw files, for the
training stream to crop from (`pipelines.training_dataset`)."""

import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf.data import pixels
from kpac_tf.utils.files import atomic_output, is_remote, write_json


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
    write_json(os.path.join(folder, "manifest.json"), manifest, mode=0o644)


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
    `<cache_dir>/<split>-<to_8bit>/`, always on a local disk. `cache_dir` defaults
    to `training_cache/` inside the prepared dataset's folder (`builder.data_dir`):
    every run on that data shares it, and it goes when the dataset is deleted; where
    that folder cannot be written or is not local (gs://), `kpac_tf_training_cache/` in the system's temporary folder
    (logged). Later calls (resumes, other runs and processes) find it and decode
    nothing. DPDD's train split takes 350 x 1680 x 1120 x 3 bytes = 1.98 GB per view
    (single: 4.0 GB, dual: 7.9 GB) of disk; no process holds it in memory (the
    operating system's page cache keeps what fits).

    Args:
        builder: a prepared TFDS builder from `get_builder` / `prepare`.
        split: str, split name.
        to_8bit: str, "round" (ours) or "high_byte" (see `pixels.to_8bit_network`).
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
    data_dir = os.fspath(builder.data_dir)
    roots = [cache_dir] if cache_dir else [
        *([] if is_remote(data_dir) else [os.path.join(data_dir, "training_cache")]),
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
