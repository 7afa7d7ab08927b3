r"""Training input at full scale: crops per second, the one-off decode, checkpoint size.

python benchmarks/input_pipeline.py [--manual_dir=EXTRACTED_DPDD] [--data_dir=DIR]
    [--scenes=8] [--dataset_config=single|dual] [--work_dir=DIR]

`kpac_tf.data.pipelines.training_dataset` decodes every PNG of the train split once, converts
it to 8-bit and caches it on disk, one raw file per image and view
(`kpac_tf.data.training_cache.training_images`); each crop then reads its image's 8-bit file (from
the page cache once warm) and slices the window. This measures, on full-size
(1680x1120) 16-bit DPDD-layout data:

1. the one-off first pass: decoding the split and writing the 8-bit cache (into a
   fresh folder, so it is always measured);
2. batches per second of --batch_size crops of --crop_size once warm (after
   --warmup batches), without and with flips (target: at least 50 on 2 cores), and
   this process's resident memory around it;
3. for comparison, --baseline_batches of what every step did before: decode the
   full 16-bit PNGs, convert whole images to float, crop (0 skips it);
4. the checkpoint after one step of `kpac_tf.training.loop.train` (single_2level, or dual
   for --dataset_config=dual, crop and batch as above) against the bytes of the
   model's and Adam's variables (--checkpoint=false skips it).

Data: --manual_dir, an extracted DPDD archive (or anything in its layout), built
into --data_dir (default <work_dir>/tfds) with --dataset_config. Without
--manual_dir, a stand-in archive of --scenes train scenes (synthetic, NOT DPDD) is
written into <work_dir>/archive by `kpac_tf.datasets.dpdd.stand_in` first. --work_dir
defaults to outputs/input_pipeline_benchmark. Prints a summary and one JSON line.
"""

import glob
import json
import os
import pathlib
import shlex
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from kpac_tf.data import pipelines, pixels, training_cache

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Extracted DPDD archive (default: "
                                  "write a stand-in into <work_dir>/archive).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data folder (default "
                                "<work_dir>/tfds).")
_WORK_DIR = flags.DEFINE_string("work_dir", "outputs/input_pipeline_benchmark",
                                "Stand-in archive, data folder, cache and training run.")
_SCENES = flags.DEFINE_integer("scenes", 8, "Train scenes of a stand-in archive.")
_CONFIG = flags.DEFINE_enum("dataset_config", "single", ["single", "dual"],
                            "DPDD config: single (centre, target) or dual (+ left, "
                            "right; the checkpoint then trains the dual network).")
_CROP_SIZE = flags.DEFINE_integer("crop_size", 512, "Crop side (paper: 512).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Crops per batch (paper: 4).")
_WARMUP = flags.DEFINE_integer("warmup", 30, "Batches read before timing.")
_BATCHES = flags.DEFINE_integer("batches", 500, "Batches timed.")
_BASELINE_BATCHES = flags.DEFINE_integer(
    "baseline_batches", 20, "Batches timed of decode-every-step (0: skip).")
_CHECKPOINT = flags.DEFINE_bool("checkpoint", True, "Measure a one-step checkpoint.")


def stand_in_archive(folder, scenes):
    from kpac_tf.datasets.dpdd import stand_in as dpdd_stand_in

    if not (pathlib.Path(folder) / "dd_dp_dataset_canon").exists():
        start = time.time()
        dpdd_stand_in.write_archive(folder, {"train": scenes, "val": 2, "test": 2})
        logging.info("wrote a stand-in archive in %.0f s", time.time() - start)
    return folder


def batches_per_second(dataset, warmup, count):
    """Batches read per second after `warmup` (each batch computed, as training's
    `next(iterator)` takes it, not copied to numpy)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def resident_mb():
    """This process's resident memory (MB), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f
                        if line.startswith("VmRSS")) / 1e3
    except (OSError, StopIteration):
        return None


def decode_every_step(builder, crop_size, batch_size):
    """What each step did before the cache: decode the full 16-bit PNGs, convert
    the whole images to float in [-1, 1], then crop."""
    def crop(example):
        keys = [k for k in ("image", "left", "right", "target") if k in example]
        stacked = tf.concat([pixels.to_8bit_network(example[k]) for k in keys], axis=-1)
        stacked = tf.image.random_crop(stacked, [crop_size, crop_size, 3 * len(keys)])
        return tf.split(stacked, len(keys), axis=-1)

    return (builder.as_dataset(split="train", shuffle_files=True).repeat()
            .map(crop, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def model_and_optimizer_bytes(name):
    import keras

    from kpac_tf import build_model

    model = build_model(name)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return sum(np.asarray(v.numpy()).nbytes for v in model.weights + optimizer.variables)


def checkpoint_after_one_step(work_dir, data_dir, config_name, model, crop_size,
                              batch_size):
    from kpac_tf.training import loop, run_folder, settings

    run = tempfile.mkdtemp(prefix="run-", dir=work_dir)
    config = settings.make_config(
        None, model_dir=run, model=model, dataset="dpdd", dataset_config=config_name,
        data_dir=data_dir, steps=1, batch_size=batch_size, crop_size=crop_size,
        save_every=1, eval_every=10, eval_images=1)
    start = time.time()
    loop.train(config)
    files = glob.glob(run_folder.path(run, run_folder.CHECKPOINTS, "ckpt-1.*"))
    return run, sum(os.path.getsize(f) for f in files), time.time() - start


def main(argv):
    del argv
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    work_dir = os.path.abspath(_WORK_DIR.value)
    os.makedirs(work_dir, exist_ok=True)
    manual_dir = _MANUAL_DIR.value or stand_in_archive(
        os.path.join(work_dir, "archive"), _SCENES.value)
    data_dir = _DATA_DIR.value or os.path.join(work_dir, "tfds")
    builder = pipelines.prepare("dpdd", data_dir, _CONFIG.value, manual_dir)
    crop, batch = _CROP_SIZE.value, _BATCH_SIZE.value
    model = "dual" if _CONFIG.value == "dual" else "single_2level"
    results = {"command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
               "dataset_config": _CONFIG.value,
               "scenes": builder.info.splits["train"].num_examples,
               "crop_size": crop, "batch_size": batch}

    # 1. The one-off first pass, into a fresh folder.
    fresh = tempfile.mkdtemp(prefix="cache-", dir=work_dir)
    start = time.perf_counter()
    images = training_cache.training_images(builder, cache_dir=fresh)
    results["first_pass_s"] = time.perf_counter() - start
    results["image_shape"] = [int(x) for x in images.shapes[0]]
    results["cache_bytes_per_view"] = int(images.shapes.prod(axis=1).sum() * 3)
    results["first_pass_s_per_image"] = results["first_pass_s"] / len(images)
    shutil.rmtree(fresh)
    training_cache.training_images(builder)  # the default cache the training run will use

    # 2. Warm throughput.
    results["resident_mb_before"] = resident_mb()
    for flips in (False, True):
        dataset = pipelines.training_dataset(builder, crop_size=crop, batch_size=batch,
                                        flips=flips)
        key = "batches_per_s_flips" if flips else "batches_per_s"
        results[key] = batches_per_second(dataset, _WARMUP.value, _BATCHES.value)
    results["resident_mb_after"] = resident_mb()

    # 3. Decode every step (before).
    if _BASELINE_BATCHES.value:
        results["baseline_batches_per_s"] = batches_per_second(
            decode_every_step(builder, crop, batch), 2, _BASELINE_BATCHES.value)

    # 4. Checkpoint size after one step of the real training loop.
    if _CHECKPOINT.value:
        run, size, seconds = checkpoint_after_one_step(work_dir, data_dir, _CONFIG.value,
                                                       model, crop, batch)
        results.update(model=model, checkpoint_bytes=size,
                       model_and_adam_bytes=model_and_optimizer_bytes(model),
                       checkpoint_run=run, one_step_run_s=seconds)

    print(f"command: {results['command']}")
    print(f"data: {manual_dir} -> {data_dir}, config {_CONFIG.value} "
          f"({results['scenes']} train scenes of "
          f"{results['image_shape'][1]}x{results['image_shape'][0]})")
    print(f"first pass (decode + 8-bit cache): {results['first_pass_s']:.1f} s "
          f"({results['first_pass_s_per_image']:.2f} s a scene, "
          f"{results['cache_bytes_per_view'] / 1e6:.0f} MB per view)")
    print(f"warm: {results['batches_per_s']:.0f} batches/s of {batch} x {crop}x{crop} "
          f"crops ({results['batches_per_s_flips']:.0f} with flips; target >= 50)")
    if results["resident_mb_before"] is not None:
        print(f"process memory: {results['resident_mb_before']:.0f} MB before the "
              f"pipelines, {results['resident_mb_after']:.0f} MB after them")
    if "baseline_batches_per_s" in results:
        print(f"decode every step (before): {results['baseline_batches_per_s']:.2f} "
              "batches/s")
    if "checkpoint_bytes" in results:
        print(f"checkpoint after one step of {model}: "
              f"{results['checkpoint_bytes'] / 1e6:.1f} MB; "
              f"model + Adam variables {results['model_and_adam_bytes'] / 1e6:.1f} MB "
              f"(run {results['checkpoint_run']})")
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
