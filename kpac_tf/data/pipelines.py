"""Input pipelines over the project's TFDS builders (`kpac_tf/datasets/`).

Images leave the pipeline as float32 in [-1, 1] (`x / 127.5 - 1` of 8-bit values).
The paper trains and evaluates on 8-bit images but does not say how DPDD's 16-bit
PNGs become 8-bit. `to_8bit` chooses (`kpac_tf.data.pixels.to_uint8`): "round",
`round(x / 257)`, is OUR choice and the default; "high_byte", `x >> 8`, is what
Pillow / `scipy.misc.imread` give, as in the authors' evaluation code.
"""

import importlib

import tensorflow as tf

from kpac_tf.data import pixels
from kpac_tf.data.training_cache import training_images

# Our dataset names -> TFDS builder folders under kpac_tf/datasets/.
DATASETS = {"synthetic": "synthetic_defocus", "dpdd": "dpdd"}


def get_builder(dataset, data_dir=None, config=None):
    """The TFDS builder of `dataset` ("synthetic" or "dpdd"), from
    `kpac_tf/datasets/<name>/<name>_dataset_builder.py`.

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
    module = importlib.import_module(f"kpac_tf.datasets.{name}.{name}_dataset_builder")
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


def _standardize(example, to_8bit):
    """A builder's example -> {center, [left, right], sharp, name} in [-1, 1] (16-bit
    through 8 bits by `to_8bit`), or as stored (uint8 / uint16) when `to_8bit` is None."""
    if "blurry" in example:  # synthetic
        views = {"center": example["blurry"], "sharp": example["sharp"]}
    else:  # dpdd
        views = {"center": example["image"], "sharp": example["target"]}
        if "left" in example:
            views.update(left=example["left"], right=example["right"])
    out = {key: value if to_8bit is None else pixels.to_8bit_network(value, to_8bit)
           for key, value in views.items()}
    out["name"] = example["name"]
    return out


def _inputs(example):
    if "left" in example:
        return (example["center"], example["left"], example["right"])
    return example["center"]


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
            (see `pixels.to_8bit_network`; no effect on 8-bit datasets).
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
    `pixels.to_8bit_network`), or None: the images as stored (uint8 or uint16).

    Returns:
        tf.data.Dataset of (inputs, sharp, name): inputs (1, h, w, 3) float32 in
        [-1, 1] (or the dual triple; uint8 / uint16 as stored when `to_8bit` is None),
        sharp (1, h, w, 3) alike, name (1,) string.
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
