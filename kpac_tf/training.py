"""Training KPAC networks (paper Sec. 4.2 and 5): a resumable, distributed loop.

`train(TrainConfig(...))` writes into `model_dir`:
  config.json          the resolved configuration (a run reproduces from it)
  checkpoints/         tf.train checkpoints: model, optimizer, step, data iterator
  train/, eval/        TensorBoard summaries
  model.keras          the final model (Keras format)
  weights_tf1.npz      the final weights in the authors' TF1 checkpoint format
  metrics.json         held-out scores of the final model and of the blurry input
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf import checkpoints, data, evaluation, losses, metrics, pixels
from kpac_tf.files import atomic_output
from kpac_tf.inference import predictor, scale_attention_maps
from kpac_tf.models import build_model, center_view

STRATEGIES = ("default", "mirrored", "multi_worker")


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
        manual_dir: str or None, extracted DPDD archive (first run only).
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
        mixed_precision: bool, bfloat16 (CPU) or float16 (GPU) compute.
        seed: int, fixes initialisation and data order.
        log_every, eval_every, save_every: int, steps between logs, evaluations and
            checkpoints.
        eval_images: int, held-out images scored at each evaluation (0: all).
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
    mixed_precision: bool = False
    seed: int = 0
    log_every: int = 100
    eval_every: int = 5000
    save_every: int = 1000
    eval_images: int = 10

    def __post_init__(self):
        pixels.check_to_8bit(self.to_8bit)  # before config.json records it


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

# Settings that define what is being trained: a resumed run must keep them.
_IDENTITY = ("model", "model_overrides", "dataset", "dataset_config", "to_8bit", "seed")


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


def _eval_split(config):
    return "validation" if config.dataset == "dpdd" else "test"


def _make_strategy(name):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}")


def _write_or_check_config(config):
    """Writes config.json, or checks a resumed run trains the same thing."""
    path = os.path.join(config.model_dir, "config.json")
    current = dataclasses.asdict(config)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        # A setting added later (to_8bit) reads as its default in an older run.
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        changed = [k for k in _IDENTITY if saved.get(k, defaults[k]) != current[k]]
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            raise ValueError(f"{config.model_dir} holds a different run ({details}); "
                             "use a new --model_dir or the original settings")
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(current, f, indent=2, sort_keys=True)


def _precision_policy(mixed):
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


class _Trainer:
    """Holds the model, optimizer, data and step function of one run."""

    def __init__(self, config, strategy):
        self.config = config
        self.strategy = strategy
        perceptual = None
        with strategy.scope():
            if config.perceptual_weight > 0:  # refuses early without weights
                perceptual = losses.PerceptualLoss(
                    losses.vgg19_feature_extractor(config.vgg19_weights))
            self.model = build_model(config.model, **config.model_overrides)
            optimizer = keras.optimizers.Adam(
                config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                epsilon=config.epsilon)
            if keras.mixed_precision.dtype_policy().name == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.perceptual = perceptual
        resolver = getattr(strategy, "cluster_resolver", None)
        spec = resolver.cluster_spec().as_dict() if resolver else {}
        self.workers = max(len(spec.get("worker", [])) + len(spec.get("chief", [])), 1)
        self.worker_index = resolver.task_id if resolver and self.workers > 1 else 0

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
            self.step.assign_add(1)
            return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                    for value in per_replica]

        return train_step


def _evaluate(trainer, eval_data, limit, predict, write_images=False):
    """Scores the model on up to `limit` held-out images; logs TensorBoard images."""
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
            maps = scale_attention_maps(trainer.model, inputs)
            if maps is not None:  # the rates' maps side by side
                tf.summary.image("scale_attention_kpac_0_rates_1_to_n",
                                 tf.concat(tf.unstack(maps[..., None], axis=3), axis=2),
                                 step=trainer.step)
    return evaluation.summarize(scores)


def _restore_or_initialize(config, trainer, checkpoint, manager):
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Restored from step %d (%s)", int(trainer.step.numpy()),
                     manager.latest_checkpoint)
    elif config.init_from:
        checkpoints.initialize_weights(trainer.model, config.init_from)
        logging.info("Initialised weights from %s", config.init_from)
    else:
        logging.info("Starting from scratch (seed %d)", config.seed)


def _format_duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 \
        else f"{seconds // 60}m{seconds % 60:02d}s"


def train(config):
    """Trains (or resumes) a run; returns the final held-out metrics.

    Args:
        config: `TrainConfig`.

    Returns:
        dict: `evaluation.summarize` of the final model on the held-out split
        (`psnr`, `ssim`, `mae` and the blurry input's `input_*`), plus `step` and
        `last_loss` (the last training step's loss, None if no step ran).

    Raises:
        TrainingDiverged: the loss became NaN or Inf (the last good checkpoint is
            kept, no final model is written).
        FileNotFoundError: missing data or VGG19 weights.
        ValueError: bad settings, or a model_dir holding a different run.
    """
    os.makedirs(config.model_dir, exist_ok=True)
    _write_or_check_config(config)
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(_precision_policy(config.mixed_precision))
    try:
        return _train(config)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _train(config):
    keras.utils.set_random_seed(config.seed)
    strategy = _make_strategy(config.strategy)
    trainer = _Trainer(config, strategy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size {config.batch_size} must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas")

    builder = data.prepare(config.dataset, config.data_dir,
                           data.dataset_config(config.dataset, config.model,
                                               config.dataset_config),
                           config.manual_dir)
    # Each worker reads its own stream (seeded by its index) of batch_size / workers
    # examples; replicas slice it in step_fn. A plain tf.data iterator, unlike a
    # distributed one, can be checkpointed, so resuming is exact.
    train_data = data.training_dataset(
        builder, crop_size=config.crop_size, batch_size=config.batch_size // trainer.workers,
        flips=config.flips, seed=config.seed + 1000 * trainer.worker_index,
        to_8bit=config.to_8bit)
    iterator = iter(train_data)
    checkpoint = tf.train.Checkpoint(model=trainer.model, optimizer=trainer.optimizer,
                                     step=trainer.step, iterator=iterator)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(config.model_dir, "checkpoints"), max_to_keep=3)
    _restore_or_initialize(config, trainer, checkpoint, manager)

    eval_data = data.evaluation_dataset(builder, _eval_split(config), config.to_8bit)
    predict = predictor(trainer.model)
    train_writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "train"))
    eval_writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "eval"))
    train_step = trainer.make_train_step()

    start_step = step = int(trainer.step.numpy())
    loss = None
    start_time = window_time = time.time()
    window_start = step
    while step < config.steps:
        loss, mae, perceptual = (float(v) for v in train_step(iterator))
        step = int(trainer.step.numpy())
        if not np.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss} at step {step}; stopped without saving. The last "
                f"good checkpoint is {manager.latest_checkpoint} in {config.model_dir}; "
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
        if step % config.save_every == 0:
            manager.save(checkpoint_number=step)
        if step % config.eval_every == 0 and step < config.steps:
            with eval_writer.as_default(step=step):
                scores = _evaluate(trainer, eval_data, config.eval_images, predict,
                                   write_images=True)
                for key in ("psnr", "ssim", "input_psnr", "input_ssim"):
                    tf.summary.scalar(key, scores[key])
            logging.info("step %d  eval PSNR %.2f dB (input %.2f)  SSIM %.4f (input %.4f)",
                         step, scores["psnr"], scores["input_psnr"], scores["ssim"],
                         scores["input_ssim"])

    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(
            f"-{step}"):
        manager.save(checkpoint_number=step)
    with atomic_output(os.path.join(config.model_dir, "model.keras")) as tmp:
        trainer.model.save(tmp)
    checkpoints.save_tf1_npz(trainer.model, os.path.join(config.model_dir, "weights_tf1.npz"))
    with eval_writer.as_default(step=step):
        final = _evaluate(trainer, eval_data, 0, predict, write_images=True)
        for key in ("psnr", "ssim", "input_psnr", "input_ssim"):
            tf.summary.scalar(key, final[key])
    final["step"] = step
    final["last_loss"] = loss
    with atomic_output(os.path.join(config.model_dir, "metrics.json")) as tmp, \
            open(tmp, "w") as f:
        json.dump(final, f, indent=2)
    return final
