"""Input pipelines over the project's TFDS builders (`datasets/dpdd`,
`datasets/synthetic_defocus`).

Images leave the pipeline as float32 in [-1, 1] (`x / 127.5 - 1` of 8-bit values).
The paper trains and evaluates on 8-bit images but does not say how DPDD's 16-bit
PNGs become 8-bit. `to_8bit` chooses (`kpac_tf.pixels.to_uint8`): "round",
`round(x / 257)`, is OUR choice and the default; "high_byte", `x >> 8`, is what
Pillow / `scipy.misc.imread` give, as in the authors' evaluation code.
"""

import importlib
import pathlib
import sys

import tensorflow as tf

from kpac_tf import pixels

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
        config: str or None, builder config ("default"/"tiny" for synthetic,
            "single"/"dual" for dpdd); None takes the builder's default.
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

    `manual_dir` is the extracted DPDD archive (ignored for synthetic data).
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


def _random_crop(example, crop_size, flips, seed):
    """Same random crop (and optional flips) of every view; stateless in `seed`."""
    keys = [k for k in ("center", "left", "right", "sharp") if k in example]
    stacked = tf.concat([example[k] for k in keys], axis=-1)
    big_enough = tf.debugging.assert_greater_equal(
        tf.reduce_min(tf.shape(stacked)[:2]), crop_size,
        message=f"crop_size {crop_size} is larger than an image of this dataset; "
                "choose a smaller --crop_size")
    seeds = tf.random.experimental.stateless_split(seed, 3)
    with tf.control_dependencies([big_enough]):
        stacked = tf.image.stateless_random_crop(
            stacked, [crop_size, crop_size, len(keys) * 3], seed=seeds[0])
    views = dict(zip(keys, tf.split(stacked, len(keys), axis=-1)))
    if flips:
        mirrored = tf.random.stateless_uniform([], seeds[1]) < 0.5
        upside_down = tf.random.stateless_uniform([], seeds[2]) < 0.5
        views = {k: tf.cond(mirrored, lambda v=v: tf.reverse(v, [1]), lambda v=v: v)
                 for k, v in views.items()}
        views = {k: tf.cond(upside_down, lambda v=v: tf.reverse(v, [0]), lambda v=v: v)
                 for k, v in views.items()}
        if "left" in views:  # a mirrored left view looks like a right view
            left, right = views["left"], views["right"]
            views["left"] = tf.where(mirrored, right, left)
            views["right"] = tf.where(mirrored, left, right)
    return views


def training_dataset(builder, split="train", crop_size=512, batch_size=4, flips=False,
                     seed=0, shuffle_buffer=32, to_8bit="round"):
    """Endless, deterministic batches of random crops for training.

    Args:
        builder: a prepared TFDS builder from `get_builder` / `prepare`.
        split: str, split name.
        crop_size: int, side of the random square crops (the paper: 512).
        batch_size: int (the paper: 4).
        flips: bool, random horizontal and vertical flips (the paper uses none).
        seed: int, fixes the order, crops and flips.
        shuffle_buffer: int, examples in the shuffle buffer.
        to_8bit: str, 16-bit to 8-bit conversion, "round" (ours) or "high_byte"
            (see `to_unit_range`; no effect on 8-bit datasets).

    Returns:
        tf.data.Dataset of (inputs, sharp): inputs (batch, crop, crop, 3) float32 in
        [-1, 1], or (center, left, right) for DPDD's dual config; sharp likewise.
    """
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=True,
                            read_config=tfds.ReadConfig(shuffle_seed=seed))
    ds = ds.shuffle(shuffle_buffer, seed=seed).repeat().enumerate()

    def crop(index, example):
        views = _random_crop(_standardize(example, to_8bit), crop_size, flips,
                             tf.stack([tf.cast(seed, tf.int64), index]))
        return _inputs(views), views["sharp"]

    return (ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(builder, split="test", to_8bit="round"):
    """Full-size images, batch 1, in the order TFDS stored them (fixed).

    `to_8bit` is the 16-bit to 8-bit conversion, "round" (ours) or "high_byte" (see
    `to_unit_range`).

    Returns:
        tf.data.Dataset of (inputs, sharp, name): inputs (1, h, w, 3) float32 in
        [-1, 1] (or the dual triple), sharp (1, h, w, 3), name (1,) string.
    """
    ds = builder.as_dataset(split=split, shuffle_files=False)

    def unpack(example):
        views = _standardize(example, to_8bit)
        return _inputs(views), views["sharp"], views["name"]

    return ds.map(unpack, num_parallel_calls=tf.data.AUTOTUNE).batch(1).prefetch(1)
