"""Training KPAC networks (paper Sec. 4.2 and 5): a resumable, distributed loop.

`train(TrainConfig(...))` writes into `model_dir`:
  config.json          the resolved configuration (a run reproduces from it)
  checkpoints/         tf.train checkpoints: model, optimizer and step (the data
                       stream is a pure function of seed and step, so it needs no state)
  checkpoints/best/    the checkpoint with the best validation PSNR so far, and
                       best.json (its step and scores)
  train/, validation/, test/   TensorBoard summaries (test: once, at the end)
  model.keras          the final model (Keras format, float32 whatever the training
                       precision)
  weights_tf1.npz      the final weights in the authors' TF1 checkpoint format
  metrics.json         the final model's test scores (all test images) and those of
                       the blurry input; its validation scores; the best validation
                       step and scores; the dataset's name, config and version

Model selection uses the validation split only: periodic evaluations score the first
`eval_images` validation images, and a better PSNR than the best so far saves
`checkpoints/best/`. The test split is scored once, when training ends.

With `ema_decay` > 0 the run also keeps an exponential moving average of the weights
(`ema = decay * ema + (1 - decay) * weights` after every step, starting from the
initial weights). The average is what is evaluated, selected and written as the final
model, and in checkpoints it is the entry `model` (what `--init_from`,
`load_deblurrer` and `experiments.evaluate` read from a run), while the weights the
optimizer updates are the entry `trained_model`.

Multi-worker (`strategy="multi_worker"`, TF_CONFIG): the run folder is the same as
one process's. Only the chief (task "chief", or "worker" 0 when the cluster has no
chief) writes it; every other worker runs exactly the same code, saves and
evaluations included (so no worker skips anything collective the chief runs), but
writes into a private temporary folder removed when it ends. Every worker restores
from the chief's `model_dir/checkpoints/`, so `model_dir` must be storage all
workers share; at start the workers check they all begin from the same step,
weights and settings. config.json records the number of workers (`workers`): each
reads its own seeded stream of `batch_size / workers` examples, so a run resumes
only with the same count.

Killed at any moment (SIGKILL), a run loses at most the steps since its last
checkpoint (one the `checkpoints/checkpoint` state file lists: TensorFlow writes a
checkpoint's files first and that file, atomically, last); outputs appear by atomic
renames. Re-running the same command resumes and ends with the same weights as an
uninterrupted run; the chief removes the temporary files a kill left behind.
"""

import dataclasses
import glob
import json
import os
import shutil
import tempfile
import time
import zlib

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf import checkpoints, data, evaluation, losses, metrics, pixels
from kpac_tf.files import atomic_output
from kpac_tf.inference import predictor, scale_attention_maps
from kpac_tf.models import build_model, center_view

STRATEGIES = ("default", "mirrored", "multi_worker")
# Keras dtype policies training runs under (`TrainConfig.precision`).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
VALIDATION_SPLIT, TEST_SPLIT = "validation", "test"


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's recipe.

    Attributes:
        model_dir: str, output folder; re-using it resumes the run.
        model: str, network name for `build_model`.
        model_overrides: dict, `build_model` overrides (ablations).
        dataset: str, "synthetic" or "dpdd".
        dataset_config: str or None, builder config (None: `data.dataset_config`'s
            choice, "default" / "single", "dual" for the dual network on DPDD).
        to_8bit: str, how DPDD's 16-bit images become 8-bit: "round" (our choice,
            `round(x / 257)`; the paper does not say) or "high_byte" (`x >> 8`, as
            Pillow reads them in the authors' code). See `kpac_tf.pixels`.
        data_dir: str or None, TFDS data folder.
        manual_dir: str or None, extracted DPDD archive or the synthetic `photos`
            config's photographs (`experiments.fetch_photos`); first run only.
        steps: int, total optimisation steps.
        batch_size: int, global batch size.
        crop_size: int, random crop side.
        flips: bool, random flips.
        learning_rate: float, constant learning rate.
        beta_1, beta_2, epsilon: Adam parameters (TF1's epsilon, 1e-8).
        perceptual_weight: float, weight of the VGG19 block4_conv4 loss (0: MAE only).
        vgg19_weights: str or None, local VGG19 ImageNet no-top weights file.
        init_from: str or None, weights to start from (.keras, .npz, or a
            training run's model_dir / checkpoint folder); ignored when resuming.
        strategy: str, "default", "mirrored" or "multi_worker".
        precision: str, Keras dtype policy of training: "float32",
            "mixed_bfloat16" (bfloat16 compute, float32 weights; recommended on CPUs
            with AVX512-BF16 / AMX: 1.6-2x float32's steps/s at the same validation
            PSNR, benchmarks/training_precision.py) or "mixed_float16" (float16
            compute with loss scaling; GPUs: TensorFlow's CPU kernels have no float16
            gradient of dilated convolutions). Evaluation and the final model are
            float32 either way.
        ema_decay: float, exponential moving average of the weights (0: off; e.g.
            0.999 for long runs, 0.99 for a few hundred steps): evaluated, selected
            and written as the final model when on. It starts at the initial
            weights, which still weigh decay ** steps: 0.999 over 500 steps (61%)
            scored below the blurry input.
        seed: int, fixes initialisation and data order.
        log_every, eval_every, save_every: int, steps between logs, evaluations and
            checkpoints.
        eval_images: int, validation images scored at each evaluation (0: all); the
            best checkpoint is chosen on them.
    """

    model_dir: str
    model: str = "single_2level"
    model_overrides: dict = dataclasses.field(default_factory=dict)
    dataset: str = "dpdd"
    dataset_config: str = None
    to_8bit: str = "round"
    data_dir: str = None
    manual_dir: str = None
    steps: int = 200_000
    batch_size: int = 4
    crop_size: int = 512
    flips: bool = False
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.99
    epsilon: float = 1e-8
    perceptual_weight: float = 0.0
    vgg19_weights: str = None
    init_from: str = None
    strategy: str = "default"
    precision: str = "float32"
    ema_decay: float = 0.0
    seed: int = 0
    log_every: int = 100
    eval_every: int = 5000
    save_every: int = 1000
    eval_images: int = 10

    def __post_init__(self):
        pixels.check_to_8bit(self.to_8bit)  # before config.json records it
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got "
                             f"{self.precision!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")


# Named starting points; explicit settings override them.
PRESETS = {
    # A few minutes on 2 CPU cores, no download: proves the model learns.
    "embedded_default": dict(dataset="synthetic", steps=500, crop_size=128,
                             learning_rate=1e-3, log_every=25, eval_every=250,
                             save_every=100, eval_images=40),
    # The paper's two phases (Sec. 5).
    "paper_phase1": dict(dataset="dpdd", steps=200_000, batch_size=4, crop_size=512,
                         learning_rate=1e-4, perceptual_weight=0.0),
    "paper_phase2": dict(dataset="dpdd", steps=100_000, batch_size=4, crop_size=512,
                         learning_rate=5e-5, perceptual_weight=7e-4),
}

# Settings that shape what is trained (network, loss, update rule, precision, average)
# or what the data stream yields (data, 8-bit conversion, seed, batch, crops, flips,
# and the number of workers, each of which reads its own stream): a resumed run must
# keep them, or it would not continue the same run.
_IDENTITY = ("model", "model_overrides", "dataset", "dataset_config", "to_8bit", "seed",
             "batch_size", "crop_size", "flips", "learning_rate", "beta_1", "beta_2",
             "epsilon", "perceptual_weight", "precision", "ema_decay", "workers")
# What may change when a run resumes: its length, the progress / evaluation / save
# rhythm, folders and files (the same data and VGG19 weights wherever they are),
# init_from (ignored when resuming), and the strategy as long as the worker count
# stays (it only spreads each worker's batch over its devices). A test checks that
# every TrainConfig field is in one of the two lists.
_MAY_CHANGE = ("model_dir", "data_dir", "manual_dir", "vgg19_weights", "init_from",
               "steps", "log_every", "eval_every", "save_every", "eval_images",
               "strategy")


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def make_config(preset=None, **settings):
    """A `TrainConfig` from a preset name plus explicit settings (which win)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS.get(preset, {}))
    values.update({k: v for k, v in settings.items() if v is not None})
    config = TrainConfig(**values)
    if preset == "paper_phase2" and not config.init_from:
        raise ValueError("paper_phase2 fine-tunes a phase-1 model: pass --init_from "
                         "(the phase-1 model_dir, a .keras file or an authors' .npz)")
    return config


def _make_strategy(name):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}")


@dataclasses.dataclass(frozen=True)
class _Worker:
    """This process's place in a training cluster.

    Attributes:
        count: int, workers (processes) training together, each reading its own
            seeded stream of `batch_size / count` examples.
        index: int, this worker's index; 0 is the chief, which writes the run folder.
        task: str, its TF_CONFIG task ("worker:1"), for messages.
    """

    count: int = 1
    index: int = 0
    task: str = ""

    @property
    def is_chief(self):
        return self.index == 0


def _this_worker(strategy):
    """Where this process stands: one worker, the chief, unless `strategy` is
    "multi_worker" and TF_CONFIG describes a cluster of several tasks. There the
    task "chief" has index 0, or "worker" 0 when the cluster has no chief, and the
    other workers follow in task order. Reads TF_CONFIG only (no TensorFlow op runs:
    MultiWorkerMirroredStrategy must be created before any)."""
    if strategy != "multi_worker":
        return _Worker()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec().as_dict()
    chiefs, workers = len(spec.get("chief", ())), len(spec.get("worker", ()))
    if chiefs + workers <= 1:
        return _Worker()
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        index = 0
    elif task_type == "worker":
        index = chiefs + int(task_id)
    else:
        raise ValueError(f"TF_CONFIG gives this process the task {task_type!r}; "
                         "multi_worker training runs on 'chief' and 'worker' tasks only "
                         "(set \"task\": {\"type\": \"worker\", \"index\": i})")
    return _Worker(count=chiefs + workers, index=index, task=f"{task_type}:{task_id}")


def _setting_defaults():
    """TrainConfig's defaults, and `workers` 1 (what a run folder from before a
    setting existed was trained with)."""
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                         else f.default) for f in dataclasses.fields(TrainConfig)}
    return dict(defaults, workers=1)


def _write_or_check_config(config, workers=1, write=True):
    """Writes config.json (`write`: the chief; other workers only check), after
    checking that a resumed run trains the same thing: every `_IDENTITY` setting,
    the number of workers included, as config.json recorded it.

    Raises:
        ValueError: naming each changed setting with its recorded and new value.
    """
    path = os.path.join(config.model_dir, "config.json")
    # As JSON gives values back (tuples as lists), so equal settings compare equal.
    current = json.loads(json.dumps(dict(dataclasses.asdict(config), workers=workers)))
    if os.path.exists(path):
        with open(path) as f:
            saved = _upgrade_saved_config(json.load(f))
        # A setting added later (to_8bit, workers) reads as its default in an older run.
        defaults = _setting_defaults()
        saved = {k: saved.get(k, defaults[k]) for k in _IDENTITY}
        changed = [k for k in _IDENTITY if saved[k] != current[k]]
        if changed:
            details = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
            why = (" (each worker reads its own seeded stream of batch_size / workers "
                   "examples, so another number of workers trains on other batches)"
                   if "workers" in changed else "")
            raise ValueError(f"{config.model_dir} holds a different run ({details}){why}; "
                             "use a new --model_dir or the original settings")
    if write:
        with atomic_output(path) as tmp, open(tmp, "w") as f:
            json.dump(current, f, indent=2, sort_keys=True)


def _upgrade_saved_config(saved):
    """An older run's config.json in today's terms: the boolean `mixed_precision`
    (before `precision`) chose mixed_float16 with a GPU and mixed_bfloat16 without."""
    saved = dict(saved)
    mixed = saved.pop("mixed_precision", None)
    if "precision" not in saved and mixed is not None:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        saved["precision"] = (("mixed_float16" if gpu else "mixed_bfloat16") if mixed
                              else "float32")
    return saved


def _float32_model(config):
    """A float32 `build_model` of the run's network, whatever the global policy."""
    policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        return build_model(config.model, **config.model_overrides)
    finally:
        keras.mixed_precision.set_dtype_policy(policy)


class _Trainer:
    """Holds the model, optimizer, data and step function of one run."""

    def __init__(self, config, strategy, worker=None):
        self.config = config
        self.strategy = strategy
        perceptual = None
        with strategy.scope():
            if config.perceptual_weight > 0:  # refuses early without weights
                perceptual = losses.PerceptualLoss(
                    losses.vgg19_feature_extractor(config.vgg19_weights))
            self.model = build_model(config.model, **config.model_overrides)
            # What is evaluated, selected and saved, always float32: the moving average
            # of the weights (ema_decay > 0), else the model itself, or under a mixed
            # policy a float32 copy of its weights (`sync_eval_model`).
            self.ema_model = _float32_model(config) if config.ema_decay > 0 else None
            if self.ema_model is not None:
                self.eval_model = self.ema_model
            elif self.model.dtype_policy.compute_dtype == "float32":
                self.eval_model = self.model
            else:
                self.eval_model = _float32_model(config)
            optimizer = keras.optimizers.Adam(
                config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                epsilon=config.epsilon)
            if config.precision == "mixed_float16":  # float16 gradients underflow
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.perceptual = perceptual
        worker = worker or _Worker()
        self.workers, self.worker_index = worker.count, worker.index
        if strategy.num_replicas_in_sync % self.workers:
            raise ValueError(f"{strategy.num_replicas_in_sync} replicas cannot be shared "
                             f"equally by {self.workers} workers")

    def checkpoint_objects(self):
        """What a checkpoint holds. `model` is always the weights to evaluate and
        deploy (the average when ema_decay > 0; `trained_model` then holds the
        optimizer's weights), so loaders of run folders read the right ones."""
        objects = dict(model=self.model, optimizer=self.optimizer, step=self.step)
        if self.ema_model is not None:
            objects.update(model=self.ema_model, trained_model=self.model)
        return objects

    def start_average(self):
        """Starts the moving average at the model's current (initial) weights."""
        if self.ema_model is not None:
            for average, weight in zip(self.ema_model.weights, self.model.weights):
                average.assign(weight)

    def sync_eval_model(self):
        """Brings a float32 copy of the model (mixed precision, no average) up to date
        before it is evaluated or saved."""
        if self.eval_model is not self.model and self.eval_model is not self.ema_model:
            self.eval_model.set_weights(self.model.get_weights())

    def update_average(self):
        """ema = decay * ema + (1 - decay) * weights, in cross-replica context (after
        the replicas' update, so every replica's copy gets the same average)."""
        decay = self.config.ema_decay
        for average, weight in zip(self.ema_model.weights, self.model.weights):
            average.assign(decay * average + (1.0 - decay) * weight)

    def step_fn(self, inputs, sharp):
        """One replica's step on its slice of this worker's batch.

        Returns (total, mae, perceptual) already divided by the global batch size, so
        a SUM over replicas is the global mean.
        """
        global_batch = self.config.batch_size
        local_replicas = self.strategy.num_replicas_in_sync // self.workers
        per_replica = global_batch // self.strategy.num_replicas_in_sync
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        start = (replica % local_replicas) * per_replica
        inputs, sharp = tf.nest.map_structure(lambda t: t[start:start + per_replica],
                                              (inputs, sharp))
        with tf.GradientTape() as tape:
            output = tf.cast(self.model(inputs, training=True), tf.float32)
            mae = losses.mae_per_example(sharp, output)
            perceptual = (self.perceptual(sharp, output) if self.perceptual
                          else tf.zeros_like(mae))
            total = mae + self.config.perceptual_weight * perceptual
            loss = tf.nn.compute_average_loss(total, global_batch_size=global_batch)
            scaled = (self.optimizer.scale_loss(loss)
                      if hasattr(self.optimizer, "scale_loss") else loss)
        gradients = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return (loss,
                tf.nn.compute_average_loss(mae, global_batch_size=global_batch),
                tf.nn.compute_average_loss(perceptual, global_batch_size=global_batch))

    def make_train_step(self):
        """The compiled step: reads this worker's batch, runs every replica on its
        slice, and sums the replicas' losses."""

        @tf.function
        def train_step(iterator):
            inputs, sharp = next(iterator)
            per_replica = self.strategy.run(self.step_fn, args=(inputs, sharp))
            if self.ema_model is not None:
                self.update_average()
            self.step.assign_add(1)
            return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                    for value in per_replica]

        if self.config.precision != "mixed_float16":
            return train_step

        def float16_train_step(iterator):
            try:
                return train_step(iterator)
            except tf.errors.InvalidArgumentError as e:
                if "dilation rates larger than 1" not in str(e):
                    raise
                raise ValueError(
                    "precision mixed_float16: TensorFlow's CPU kernels have no float16 "
                    "gradient of dilated convolutions (KPAC blocks); on a CPU use "
                    "mixed_bfloat16 (or float32), keep mixed_float16 for GPUs") from None

        return float16_train_step


def _evaluate(trainer, eval_data, limit, predict, write_images=False):
    """Scores `trainer.eval_model` (through `predict`) on up to `limit` images of a
    split; logs TensorBoard images. Uses no random numbers (the training stream is a
    function of seed and step only)."""
    scores = []
    for index, (inputs, sharp, name) in enumerate(eval_data):
        if limit and index >= limit:
            break
        output = predict(inputs)
        blurry = center_view(inputs)
        scores.append(evaluation.score_image(name[0].numpy().decode(), blurry, output, sharp))
        if write_images and index == 0:
            tf.summary.image("blurry_output_sharp", tf.concat(
                [metrics.to_unit(blurry), metrics.to_unit(output), metrics.to_unit(sharp)],
                axis=2), step=trainer.step)
            maps = scale_attention_maps(trainer.eval_model, inputs)
            if maps is not None:  # the rates' maps side by side
                tf.summary.image("scale_attention_kpac_0_rates_1_to_n",
                                 tf.concat(tf.unstack(maps[..., None], axis=3), axis=2),
                                 step=trainer.step)
    return evaluation.summarize(scores)


_SCORE_KEYS = ("psnr", "ssim", "input_psnr", "input_ssim")


def _log_scores(scores, step, best=None):
    """TensorBoard scalars of one evaluation (in the current writer)."""
    for key in _SCORE_KEYS:
        tf.summary.scalar(key, scores[key], step=step)
    if best is not None:
        tf.summary.scalar("best_psnr", best["psnr"], step=step)


class _BestCheckpoint:
    """`checkpoints/best/`: the checkpoint (model, optimizer, step) with the best
    validation PSNR so far, `best.json` describing it, and a copy of the run's
    config.json (so the folder loads like a run: `load_deblurrer`, `--init_from`,
    `experiments.evaluate --checkpoint`).

    The record (step and scores) is also a variable of the checkpoint itself, so it
    always describes the checkpoint beside it, whenever a run was killed; a resumed
    run reads it back and keeps comparing against it.
    """

    def __init__(self, model_dir, objects, write_dir=None):
        # Other workers than the chief read the chief's record and write their copies
        # into `write_dir` (their temporary folder; see `train`).
        self.folder = os.path.join(write_dir or model_dir, "checkpoints", "best")
        self._record = tf.Variable("", dtype=tf.string, trainable=False)
        self._checkpoint = tf.train.Checkpoint(**objects, best_record=self._record)
        self._manager = tf.train.CheckpointManager(self._checkpoint, self.folder,
                                                   max_to_keep=1)
        self._config = os.path.join(model_dir, "config.json")
        latest = _latest_checkpoint(os.path.join(model_dir, "checkpoints", "best"))
        self.record = json.loads(tf.train.load_variable(
            latest, "best_record/.ATTRIBUTES/VARIABLE_VALUE").decode()) if latest else None
        # A run killed between saving a best checkpoint and writing best.json left it
        # describing an older one (and the resumed run, finding no better score,
        # would never rewrite it): the chief rewrites it from the record.
        if self.record is not None and os.path.abspath(self.folder) == os.path.abspath(
                os.path.dirname(latest)):
            try:
                with open(os.path.join(self.folder, "best.json")) as f:
                    described = json.load(f)
            except (OSError, ValueError):
                described = None
            if described != self.record:
                self._describe()

    def _describe(self):
        """Writes best.json (`self.record`) and the copy of config.json."""
        if os.path.exists(self._config):
            with atomic_output(os.path.join(self.folder, "config.json")) as tmp:
                shutil.copyfile(self._config, tmp)
        with atomic_output(os.path.join(self.folder, "best.json")) as tmp, \
                open(tmp, "w") as f:
            json.dump(self.record, f, indent=2)

    def update(self, step, scores, split):
        """Saves the current state as the best if `scores` beat the record (or
        there is none yet); returns True if it did."""
        if self.record is not None and not scores["psnr"] > self.record["psnr"]:
            return False
        record = dict(step=int(step), split=split,
                      checkpoint=f"checkpoints/best/ckpt-{int(step)}", **{
                          k: scores[k] for k in ("images", "psnr", "ssim", "mae",
                                                 "input_psnr", "input_ssim", "input_mae")})
        self._record.assign(json.dumps(record))
        self._manager.save(checkpoint_number=step)
        self.record = record
        self._describe()
        return True


def _latest_checkpoint(folder):
    """The newest checkpoint the state file of `folder` lists, None if there is none.

    Unlike `tf.train.latest_checkpoint`, a listed checkpoint whose files are missing
    is not taken as "no checkpoint" (which would restart the run from scratch): its
    restore fails and says so."""
    state = tf.train.get_checkpoint_state(folder)
    return state.model_checkpoint_path if state and state.model_checkpoint_path else None


def _remove_leftovers(model_dir):
    """Removes what a run killed mid-write leaves in its folder: `atomic_output`'s
    `.tmp-*` files and TensorFlow's checkpoint temporaries (`ckpt-N_temp/`,
    `*.tempstate*`, `checkpoint.tmp*`). None of them is ever read: a checkpoint counts
    once the state file `checkpoint` lists it, and TensorFlow writes that file last,
    atomically. The chief calls this at start, before anything writes there."""
    folders = [model_dir, os.path.join(model_dir, "checkpoints"),
               os.path.join(model_dir, "checkpoints", "best")]
    for folder in folders:
        patterns = [".tmp-*"] + (["*_temp", "*.tempstate*", "checkpoint.tmp*"]
                                 if folder != model_dir else [])
        for pattern in patterns:
            for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
                logging.info("Removing %s (left by an interrupted run)", path)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.remove(path)
                    except FileNotFoundError:
                        pass


def _fingerprint(variables):
    """An exact int64 checksum of variables' bits (order-free, no rounding)."""
    total = tf.constant(0, tf.int64)
    for variable in variables:
        value = tf.convert_to_tensor(variable)
        if value.dtype.is_floating:
            value = tf.bitcast(tf.cast(value, tf.float32), tf.int32)
        elif not value.dtype.is_integer:
            continue
        total += tf.reduce_sum(tf.cast(value, tf.int64))
    return total


# Settings that may name different places on different machines (paths).
_PATHS = ("model_dir", "data_dir", "manual_dir", "vgg19_weights", "init_from")


def _check_workers_agree(strategy, worker, config, trainer=None):
    """With several workers: checks, collectively (every worker calls it, and all
    raise alike), that all were given the same settings (paths aside), and with
    `trainer`, that all start from the same step and weights. A worker given other
    settings would read another stream or stop at another step; one that cannot see
    the chief's model_dir would start from scratch while the others resume (restoring
    is local to each worker) and train silently apart."""
    if worker.count == 1:
        return
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _PATHS}
    local = [tf.constant(zlib.crc32(json.dumps(settings, sort_keys=True).encode()),
                         tf.int64)]
    if trainer is not None:
        variables = [trainer.step]
        for value in trainer.checkpoint_objects().values():
            variables += (value.weights if isinstance(value, keras.Model) else
                          value.variables if isinstance(value, keras.optimizers.Optimizer)
                          else [value])
        local += [tf.convert_to_tensor(trainer.step), _fingerprint(variables)]
    local = tf.stack(local)
    everyone = strategy.gather(strategy.experimental_distribute_values_from_function(
        lambda _: local[None]), axis=0).numpy()
    if (everyone[:, 0] != everyone[0, 0]).any():
        raise ValueError(f"the {worker.count} workers were given different settings "
                         f"(this is {worker.task}); run the same command on every "
                         "worker (only paths may differ)")
    if (everyone != everyone[0]).any():
        steps = sorted({int(v) for v in everyone[:, 1]})
        raise ValueError(
            f"the {worker.count} workers do not start from the same state (this is "
            f"{worker.task}, at step {int(trainer.step.numpy())}; steps {steps}"
            f"{'' if len(steps) > 1 else ', different weights'}): every worker must see "
            f"the chief's run folder (--model_dir, here {config.model_dir}) on storage "
            "they all share, and the same --init_from weights")


def _restore_or_initialize(config, trainer, checkpoint, latest):
    """Restores checkpoint `latest` (every worker: the chief's), else initialises."""
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Restored from step %d (%s)", int(trainer.step.numpy()), latest)
    elif config.init_from:
        checkpoints.initialize_weights(trainer.model, config.init_from)
        logging.info("Initialised weights from %s", config.init_from)
        trainer.start_average()
    else:
        logging.info("Starting from scratch (seed %d)", config.seed)
        trainer.start_average()


def _format_duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 \
        else f"{seconds // 60}m{seconds % 60:02d}s"


def train(config):
    """Trains (or resumes) a run; returns the final model's scores (metrics.json).

    Args:
        config: `TrainConfig`.

    Returns:
        dict: `evaluation.summarize` of the final model on every test image (`psnr`,
        `ssim`, `mae`, the blurry input's `input_*`, `images`; `split` "test"), plus
        `step`, `last_loss` (the last training step's loss, None if no step ran),
        `validation` (the final model's scores on the validation images periodic
        evaluations use), `best` (the best validation record: `step`, `psnr`, ...,
        `checkpoint`), `precision`, `ema_decay` and `dataset` (the TFDS name,
        config and version trained on, e.g. "synthetic_defocus/large/1.6.0").

    Raises:
        TrainingDiverged: the loss became NaN or Inf (the last good checkpoint is
            kept, no final model is written).
        FileNotFoundError: missing data or VGG19 weights.
        ValueError: bad settings, or a model_dir holding a different run.
    """
    worker = _this_worker(config.strategy)
    # First of all (MultiWorkerMirroredStrategy must exist before any TensorFlow op),
    # and before anything may refuse: a worker that stopped before the others had
    # joined would leave them waiting for it for ever.
    strategy = _make_strategy(config.strategy)
    # The workers agree on their settings, so all check config.json alike and refuse
    # together; the chief writes it.
    _check_workers_agree(strategy, worker, config)
    if worker.is_chief:
        os.makedirs(config.model_dir, exist_ok=True)
        _remove_leftovers(config.model_dir)
    _write_or_check_config(config, worker.count, write=worker.is_chief)
    # The chief writes the run folder; any other worker writes the same files (it
    # makes the same calls, collective or not) into a private temporary folder.
    out_dir = (config.model_dir if worker.is_chief else
               tempfile.mkdtemp(prefix=f"kpac_tf_worker{worker.index}_"))
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(config.precision)
    try:
        return _train(config, strategy, worker, out_dir)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
        if out_dir != config.model_dir:
            shutil.rmtree(out_dir, ignore_errors=True)


def _train(config, strategy, worker, out_dir):
    keras.utils.set_random_seed(config.seed)
    trainer = _Trainer(config, strategy, worker)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size {config.batch_size} must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas")

    builder = data.prepare(config.dataset, config.data_dir,
                           data.dataset_config(config.dataset, config.model,
                                               config.dataset_config),
                           config.manual_dir)
    checkpoint = tf.train.Checkpoint(**trainer.checkpoint_objects())
    # Every worker saves (into out_dir) and restores the chief's latest checkpoint.
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(out_dir, "checkpoints"), max_to_keep=3)
    best = _BestCheckpoint(config.model_dir, trainer.checkpoint_objects(), out_dir)
    restored = _latest_checkpoint(os.path.join(config.model_dir, "checkpoints"))
    _restore_or_initialize(config, trainer, checkpoint, restored)
    _check_workers_agree(strategy, worker, config, trainer)
    # The step of the newest checkpoint of the run (None: none yet).
    saved_step = int(trainer.step.numpy()) if restored else None
    # Each worker reads its own stream (seeded by its index) of batch_size / workers
    # examples; replicas slice it in step_fn. Batch b of a stream is a pure function
    # of (seed, b), so a resumed run starts the stream at its step and resuming is
    # exact with no iterator state in the checkpoint.
    train_data = data.training_dataset(
        builder, crop_size=config.crop_size, batch_size=config.batch_size // trainer.workers,
        flips=config.flips, seed=config.seed + 1000 * trainer.worker_index,
        to_8bit=config.to_8bit, start=int(trainer.step.numpy()))
    iterator = iter(train_data)

    validation_data = data.evaluation_dataset(builder, VALIDATION_SPLIT, config.to_8bit)
    predict = predictor(trainer.eval_model)
    train_writer = tf.summary.create_file_writer(os.path.join(out_dir, "train"))
    validation_writer = tf.summary.create_file_writer(
        os.path.join(out_dir, VALIDATION_SPLIT))
    train_step = trainer.make_train_step()

    def validate(step):
        """Scores the evaluated weights on the validation images and keeps the best."""
        trainer.sync_eval_model()
        with validation_writer.as_default():
            scores = _evaluate(trainer, validation_data, config.eval_images, predict,
                               write_images=True)
            improved = best.update(step, scores, VALIDATION_SPLIT)
            _log_scores(scores, step, best.record)
        logging.info("step %d  validation PSNR %.2f dB (input %.2f)  SSIM %.4f (input "
                     "%.4f), %d images%s; best %.2f dB at step %d", step, scores["psnr"],
                     scores["input_psnr"], scores["ssim"], scores["input_ssim"],
                     scores["images"], " (new best)" if improved else "",
                     best.record["psnr"], best.record["step"])
        return scores

    start_step = step = int(trainer.step.numpy())
    loss = None
    start_time = window_time = time.time()
    window_start = step
    while step < config.steps:
        loss, mae, perceptual = (float(v) for v in train_step(iterator))
        step = int(trainer.step.numpy())
        if not np.isfinite(loss):
            last = "none" if saved_step is None else f"ckpt-{saved_step}"
            raise TrainingDiverged(
                f"loss became {loss} at step {step}; stopped without saving. The last "
                f"good checkpoint is {last} in {config.model_dir}/checkpoints; "
                "lower --learning_rate or check the data")
        if step % config.log_every == 0 or step == config.steps:
            now = time.time()
            rate = (step - window_start) / max(now - window_time, 1e-9)
            eta = (config.steps - step) * (now - start_time) / max(step - start_step, 1)
            logging.info("step %d/%d  loss %.5f (mae %.5f, perceptual %.5f)  "
                         "%.2f steps/s  ETA %s", step, config.steps, loss, mae,
                         perceptual, rate, _format_duration(eta))
            with train_writer.as_default(step=step):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("loss_mae", mae)
                tf.summary.scalar("loss_perceptual", perceptual)
                tf.summary.scalar("learning_rate", config.learning_rate)
                tf.summary.scalar("steps_per_second", rate)
            window_start, window_time = step, now
        # Evaluate, then save: a checkpoint at step N means all of step N is done,
        # its evaluation (and best checkpoint) included, so a run killed in between
        # repeats the evaluation and chooses the same best checkpoint.
        if step % config.eval_every == 0 and step < config.steps:
            validate(step)
        if step % config.save_every == 0:
            manager.save(checkpoint_number=step)
            saved_step = step

    # Killed after this save, a rerun restores it, trains nothing and does the rest
    # (all of which is written atomically) with the same weights.
    if saved_step != step:
        manager.save(checkpoint_number=step)
        saved_step = step
    validation = validate(step)  # the final weights may be the best too
    # float32 whatever the training policy (a mixed-policy model would compute in
    # low precision wherever it is loaded); the average when ema_decay > 0.
    with atomic_output(os.path.join(out_dir, "model.keras")) as tmp:
        trainer.eval_model.save(tmp)
    checkpoints.save_tf1_npz(trainer.eval_model, os.path.join(out_dir, "weights_tf1.npz"))
    # The test split: scored once, here, on every image; never used to choose.
    test_data = data.evaluation_dataset(builder, TEST_SPLIT, config.to_8bit)
    test_writer = tf.summary.create_file_writer(os.path.join(out_dir, TEST_SPLIT))
    with test_writer.as_default():
        final = _evaluate(trainer, test_data, 0, predict, write_images=True)
        _log_scores(final, step)
    for writer in (train_writer, validation_writer, test_writer):
        writer.close()
    final.update(split=TEST_SPLIT, step=step, last_loss=loss, validation=validation,
                 best=best.record, precision=config.precision, ema_decay=config.ema_decay,
                 dataset=builder.info.full_name)
    with atomic_output(os.path.join(out_dir, "metrics.json")) as tmp, \
            open(tmp, "w") as f:
        json.dump(final, f, indent=2)
    return final
