"""A training run's folder: the one module that knows its layout.

`experiments.train --model_dir=RUN` writes:
  config.json          the resolved configuration (a run reproduces from it)
  checkpoints/         tf.train checkpoints: model, optimizer and step (the data
                       stream is a pure function of seed and step, so it needs no state)
  checkpoints/best/    the checkpoint with the best validation PSNR so far, best.json
                       (its step and scores) and a copy of config.json, so the folder
                       loads like a run
  train/, validation/, test/   TensorBoard summaries (test: once, at the end)
  model.keras          the final model (Keras format, float32 whatever the training
                       precision)
  weights_tf1.npz      the final weights in the authors' TF1 checkpoint format
  metrics.json         the final model's test scores (all test images) and those of
                       the blurry input; its validation scores; the best validation
                       step and scores; the dataset's name, config and version

A checkpoint counts once the state file `checkpoints/checkpoint` lists it (TensorFlow
writes a checkpoint's files first and that file, atomically, last).
"""

import glob
import json
import os
import posixpath
import shutil

import tensorflow as tf
from absl import logging

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
BEST = os.path.join(CHECKPOINTS, "best")
BEST_RECORD = "best.json"
FINAL_MODEL = "model.keras"
FINAL_TF1_WEIGHTS = "weights_tf1.npz"
METRICS = "metrics.json"
TRAIN_SUMMARIES, VALIDATION_SUMMARIES, TEST_SUMMARIES = "train", "validation", "test"


def path(run_dir, *parts):
    """`run_dir/parts...` (str), e.g. `path(run, CONFIG)`, `path(run, BEST)`."""
    return os.path.join(os.fspath(run_dir), *parts)


def best_checkpoint_name(step):
    """The best checkpoint of `step` as best.json records it: relative to the run
    folder, with forward slashes (e.g. "checkpoints/best/ckpt-2")."""
    return posixpath.join(CHECKPOINTS, "best", f"ckpt-{int(step)}")


def is_run(folder):
    """True if `folder` is a run folder or a folder that loads like one (it holds
    config.json: a run's model_dir, or its checkpoints/best/)."""
    return os.path.isfile(path(folder, CONFIG))


def read_json(folder, name):
    """The contents of `folder/name`, or None if there is no such file."""
    file = path(folder, name)
    if not os.path.isfile(file):
        return None
    with open(file) as f:
        return json.load(f)


def read_config(folder):
    """A run's config.json as a dict (None if there is none)."""
    return read_json(folder, CONFIG)


def _listed_checkpoint(folder):
    """The newest checkpoint the state file of `folder` lists (its path prefix), None
    if there is none."""
    state = tf.train.get_checkpoint_state(os.fspath(folder))
    return state.model_checkpoint_path if state and state.model_checkpoint_path else None


def newest_checkpoint(source):
    """The newest checkpoint (its path prefix) of a run folder (in its checkpoints/), or
    of a checkpoint folder itself (checkpoints/ or checkpoints/best/); None if there is
    none.

    The newest is the one the folder's state file lists. Unlike
    `tf.train.latest_checkpoint`, a listed checkpoint whose files are missing is not
    taken as "no checkpoint" (which would restart a run from scratch): its restore
    fails and says so."""
    for folder in (path(source, CHECKPOINTS), os.fspath(source)):
        latest = _listed_checkpoint(folder) if os.path.isdir(folder) else None
        if latest:
            return latest
    return None


def checkpoint_step(checkpoint):
    """The training step stored in a checkpoint (int)."""
    return int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def latest_step(run_dir):
    """The step of a run folder's newest checkpoint; FileNotFoundError if none."""
    latest = newest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{path(run_dir, CHECKPOINTS)}: no checkpoint")
    return checkpoint_step(latest)


def run_of(source):
    """(run folder, step or None) of a path inside a run: the run folder itself, its
    `checkpoints/` or its final `model.keras` / `weights_tf1.npz` (step None: its
    latest), or its `checkpoints/best` (the best step); (None, None) for anything else
    (a file from elsewhere)."""
    source = os.path.normpath(source)
    best = read_json(source, BEST_RECORD)
    if best is not None:
        return os.path.dirname(os.path.dirname(source)), best["step"]
    if os.path.basename(source) in (FINAL_MODEL, FINAL_TF1_WEIGHTS, CHECKPOINTS):
        source = os.path.dirname(source) or "."
    if is_run(source):
        return source, None
    return None, None


def training_wall_seconds(run_dir):
    """Seconds spent training: per TensorBoard file in `run_dir/train` (one per start
    or resume), last minus first event time, summed (pauses are not counted)."""
    total = 0.0
    pattern = path(glob.escape(os.fspath(run_dir)), TRAIN_SUMMARIES, "events.out.tfevents.*")
    for events in sorted(glob.glob(pattern)):
        times = [e.wall_time for e in tf.compat.v1.train.summary_iterator(events)
                 if e.step > 0]
        if times:
            total += max(times) - min(times)
    return total


def remove_leftovers(run_dir):
    """Removes what a run killed mid-write leaves in its folder: `atomic_output`'s
    `.tmp-*` files and TensorFlow's checkpoint temporaries (`ckpt-N_temp/`,
    `*.tempstate*`, `checkpoint.tmp*`). None of them is ever read: a checkpoint counts
    once the state file `checkpoint` lists it, and TensorFlow writes that file last,
    atomically. The chief calls this at start, before anything writes there."""
    for folder in (os.fspath(run_dir), path(run_dir, CHECKPOINTS), path(run_dir, BEST)):
        patterns = [".tmp-*"] + (["*_temp", "*.tempstate*", "checkpoint.tmp*"]
                                 if folder != os.fspath(run_dir) else [])
        for pattern in patterns:
            for leftover in glob.glob(os.path.join(glob.escape(folder), pattern)):
                logging.info("Removing %s (left by an interrupted run)", leftover)
                if os.path.isdir(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    try:
                        os.remove(leftover)
                    except FileNotFoundError:
                        pass
