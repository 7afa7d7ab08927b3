"""Training KPAC networks (paper Sec. 4.2 and 5): a resumable, distributed loop.

`train(TrainConfig(...))` writes a run folder (`run_folder` gives its layout).

Model selection uses the validation split only: periodic evaluations score the first
`eval_images` validation images, and a better PSNR than the best so far saves
`checkpoints/best/`. The test split is scored once, when training ends.

With `ema_decay` > 0 the run also keeps an exponential moving average of the weights
(`ema = decay * ema + (1 - decay) * weights` after every step, starting from the
initial weights). The average is what is evaluated, selected and written as the final
model, and in checkpoints it is the entry `model` (what `--init_from`,
`load_deblurrer` and `experiments.evaluate` read from a run), while the weights the
optimizer updates are the entry `trained_model`.

Several workers (`cluster`): the run folder is the same as one process's, written by
the chief. config.json records the number of workers (`workers`): each reads its own
seeded stream of `batch_size / workers` examples, so a run resumes only with the
same count; tf.distribute's input API gives each replica its own slice of it. At
start the workers check they all begin from the same step, weights and settings.

`steps_per_loop` steps run in one compiled loop; the host reads the loss and the
workers agree on stopping between loops, and a loop ends on every step that logs,
evaluates or saves. The weights are the same for any value, and with op determinism
(`deterministic`, on by default) the same on GPUs from run to run.

The run folder may be on a local disk or anywhere TensorFlow writes (gs://, ...;
`run_folder`). Workers other than the chief make the same writes (some are
collective) into TensorFlow's in-memory filesystem (`ram://`), never to disk, and
drop them at the end.

Killed at any moment (SIGKILL), a run loses at most the steps since its last
checkpoint; outputs appear by atomic renames. Re-running the same command resumes
and ends with the same weights as an uninterrupted run; the chief removes the
temporary files a kill left behind. SIGTERM / SIGINT lose nothing (the step finishes
and is saved). A worker that stops answering, or a write that fails for want of room
or permission, ends the run with one sentence naming it and the step a rerun resumes
from (`cluster.WorkerLost`, `run_folder.WriteFailed`).
"""

import contextlib
import json
import math
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kpac_tf.checkpoints.tf1_npz import save_tf1_npz
from kpac_tf.data import pipelines
from kpac_tf.evaluation import metrics, scoring
from kpac_tf.models.networks import build_model, center_view
from kpac_tf.models.forward import (model_size_multiple, predict_any_size, predictor,
                                    scale_attention_maps)
from kpac_tf.training import losses, run_folder, warm_start
from kpac_tf.training.cluster import (Worker, any_worker, check_workers_agree,
                                      lost_workers_explained, make_strategy, this_worker)
from kpac_tf.training.settings import write_or_check_config
from kpac_tf.utils.devices import replicas_line
from kpac_tf.utils.files import atomic_output, write_json

VALIDATION_SPLIT, TEST_SPLIT = "validation", "test"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped the run after a step, saved as a checkpoint.

    Attributes:
        exit_code: int, 128 + the signal number (143 for SIGTERM, 130 for SIGINT),
            what a shell reports for a process the signal ended.
    """

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.exit_code = 128 + signal_number


class TrainingAborted(KeyboardInterrupt):
    """A second SIGTERM or SIGINT stopped the run at once, without saving (in the
    middle of a long validation, say); a rerun resumes from the last checkpoint.

    Attributes:
        exit_code: int, 128 + the signal number.
    """

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.exit_code = 128 + signal_number


@contextlib.contextmanager
def _stop_requests():
    """While it lasts, SIGTERM and SIGINT (a scheduler's preemption, Ctrl-C) no longer
    end the process: they are recorded in the yielded list, for the loop to finish
    its step, save and stop. A second one raises `TrainingAborted` at once, wherever
    the run is. Outside the main thread (signals reach only it) nothing is
    installed."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def record(number, frame):
        del frame
        if received:
            raise TrainingAborted(
                f"a second {signal.Signals(number).name} stopped the run at once, "
                "without saving", number)
        logging.warning("%s received: finishing this step, then saving a checkpoint "
                        "and stopping (send it again to stop at once, without saving)",
                        signal.Signals(number).name)
        received.append(number)

    previous = {number: signal.signal(number, record)
                for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Trainer:
    """Holds the model, optimizer, data and step function of one run."""

    def __init__(self, config, strategy, worker=None):
        self.config = config
        self.strategy = strategy
        with strategy.scope():
            # {name: (weight, loss)}; built first, so a loss missing a file (VGG19
            # weights) refuses before anything else is made.
            self.objective = {name: (weight, losses.LOSSES[name](config))
                              for name, weight in config.loss.items()}
            # The trained network in the run's precision (a dtype policy per layer;
            # Keras' global policy is never touched).
            self.model = build_model(config.model, dtype=config.precision,
                                     **config.model_overrides)
            # What is evaluated, selected and saved, always float32: the moving average
            # of the weights (ema_decay > 0), else the model itself, or under a mixed
            # policy a float32 copy of its weights (`sync_eval_model`).
            self.ema_model = (build_model(config.model, dtype="float32",
                                          **config.model_overrides)
                              if config.ema_decay > 0 else None)
            if self.ema_model is not None:
                self.eval_model = self.ema_model
            elif config.precision == "float32":
                self.eval_model = self.model
            else:
                self.eval_model = build_model(config.model, dtype="float32",
                                              **config.model_overrides)
            optimizer = keras.optimizers.Adam(
                config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                epsilon=config.epsilon)
            if config.precision == "mixed_float16":  # float16 gradients underflow
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        worker = worker or Worker()
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
        """One replica's step on its own per-replica batch (`distributed_input`).

        Returns {"loss": the objective, name: each of its losses (unweighted)}, each
        already divided by the global batch size, so a SUM over replicas is the
        global mean.
        """
        global_batch = self.config.batch_size
        with tf.GradientTape() as tape:
            output = tf.cast(self.model(inputs, training=True), tf.float32)
            terms = {name: loss(sharp, output)
                     for name, (_, loss) in self.objective.items()}
            total = None  # summed in name order: config.json records the objective sorted
            for name, (weight, _) in sorted(self.objective.items()):
                total = weight * terms[name] if total is None else \
                    total + weight * terms[name]
            loss = tf.nn.compute_average_loss(total, global_batch_size=global_batch)
            scaled = self.optimizer.scale_loss(loss)  # loss itself unless loss-scaled
        gradients = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return dict(loss=loss, **{
            name: tf.nn.compute_average_loss(term, global_batch_size=global_batch)
            for name, term in terms.items()})

    def distributed_input(self, builder, start):
        """This worker's training stream, split by tf.distribute: each replica gets
        its own slice of the worker's batch and prefetches it to its device.

        The worker reads its own seeded stream of `batch_size / workers` examples
        from batch `start` (its step: batch b is a pure function of (seed, b), so a
        resumed run needs no iterator state); replica r of the worker's n gets
        examples [r * per_replica, (r + 1) * per_replica) of each batch.
        """
        config = self.config
        per_worker = config.batch_size // self.workers
        per_replica = config.batch_size // self.strategy.num_replicas_in_sync

        def dataset_fn(context):
            stream = pipelines.training_dataset(
                builder, crop_size=config.crop_size, batch_size=per_worker,
                flips=config.flips, seed=config.seed + 1000 * self.worker_index,
                to_8bit=config.to_8bit, start=start, cache_dir=config.cache_dir)
            if per_replica == per_worker:
                return stream
            # Consecutive elements go to the worker's replicas in turn.
            return stream.unbatch().batch(per_replica, drop_remainder=True)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def make_train_loop(self):
        """The compiled loop: `train_loop(iterator, steps)` runs `steps` steps (an
        int64 scalar tensor, >= 1; one trace for any count) without returning to
        Python, each replica on its own batch, and returns the last step's losses
        (`step_fn`'s dict), summed over replicas."""

        @tf.function
        def train_loop(iterator, steps):
            last = {name: tf.constant(0.0) for name in ("loss", *self.objective)}
            for _ in tf.range(steps):
                per_replica = self.strategy.run(self.step_fn, args=next(iterator))
                if self.ema_model is not None:
                    self.update_average()
                self.step.assign_add(1)
                last = {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value,
                                                   axis=None)
                        for name, value in per_replica.items()}
            return last

        if self.config.precision != "mixed_float16":
            return train_loop

        def float16_train_loop(iterator, steps):
            try:
                return train_loop(iterator, steps)
            except tf.errors.InvalidArgumentError as e:
                if "dilation rates larger than 1" not in str(e):
                    raise
                raise ValueError(
                    "precision mixed_float16: this machine's TensorFlow kernels have no "
                    "float16 gradient of dilated convolutions (KPAC blocks); use "
                    "mixed_bfloat16 (or float32) here") from None

        return float16_train_loop


def _evaluate(trainer, eval_data, limit, predict, write_images=False):
    """Scores `trainer.eval_model` (through `predict`) on up to `limit` images of a
    split; logs TensorBoard images; returns [`scoring.ImageScore`]. Uses no random
    numbers (the training stream is a function of seed and step only)."""
    scores = []
    for index, (inputs, sharp, name) in enumerate(eval_data):
        if limit and index >= limit:
            break
        output = predict(inputs)
        blurry = center_view(inputs)
        scores.append(scoring.score_image(name[0].numpy().decode(), blurry, output, sharp))
        if write_images and index == 0:
            tf.summary.image("blurry_output_sharp", tf.concat(
                [metrics.quantised_unit(x) for x in (blurry, output, sharp)], axis=2),
                step=trainer.step)
            maps = scale_attention_maps(trainer.eval_model, inputs)
            if maps is not None:  # the rates' maps side by side
                tf.summary.image("scale_attention_kpac_0_rates_1_to_n",
                                 tf.concat(tf.unstack(maps[..., None], axis=3), axis=2),
                                 step=trainer.step)
    return scores


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
        self.folder = run_folder.path(write_dir or model_dir, run_folder.BEST)
        self._record = tf.Variable("", dtype=tf.string, trainable=False)
        self._checkpoint = tf.train.Checkpoint(**objects, best_record=self._record)
        self._manager = tf.train.CheckpointManager(self._checkpoint, self.folder,
                                                   max_to_keep=1)
        self._config = run_folder.path(model_dir, run_folder.CONFIG)
        latest = run_folder.newest_checkpoint(run_folder.path(model_dir, run_folder.BEST))
        damage = latest and run_folder.checkpoint_damage(latest)
        if damage:
            raise run_folder.DamagedCheckpoint(
                f"the best checkpoint {latest} is damaged ({damage}); restore its files, "
                f"or move {os.path.dirname(latest)} aside to resume without it (the run "
                "then chooses its best again from the evaluations still to come)")
        self.record = json.loads(run_folder.checkpoint_reader(latest).get_tensor(
            "best_record/.ATTRIBUTES/VARIABLE_VALUE").decode()) if latest else None
        # A run killed between saving a best checkpoint and writing best.json left it
        # describing an older one (and the resumed run, finding no better score,
        # would never rewrite it): the chief rewrites it from the record.
        if self.record is not None and self.folder == os.path.dirname(latest):
            try:
                described = run_folder.read_json(self.folder, run_folder.BEST_RECORD)
            except (OSError, ValueError):
                described = None
            if described != self.record:
                self._describe()

    def _describe(self):
        """Writes best.json (`self.record`) and the copy of config.json."""
        if tf.io.gfile.exists(self._config):
            with atomic_output(run_folder.path(self.folder, run_folder.CONFIG)) as tmp:
                tf.io.gfile.copy(self._config, tmp, overwrite=True)
        write_json(run_folder.path(self.folder, run_folder.BEST_RECORD), self.record, indent=2)

    def update(self, step, scores, split):
        """Saves the current state as the best if `scores` beat the record (or
        there is none yet); returns True if it did."""
        # A NaN PSNR (broken outputs, `scoring.summarize`) never beats a record and
        # is beaten by any number.
        if self.record is not None and (math.isnan(scores["psnr"]) or not (
                scores["psnr"] > self.record["psnr"] or math.isnan(self.record["psnr"]))):
            return False
        record = dict(step=int(step), split=split,
                      checkpoint=run_folder.best_checkpoint_name(step), **{
                          k: scores[k] for k in ("images", "psnr", "ssim", "mae",
                                                 "input_psnr", "input_ssim", "input_mae")})
        self._record.assign(json.dumps(record))
        self._manager.save(checkpoint_number=step)
        self.record = record
        self._describe()
        return True


def _format_duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 \
        else f"{seconds // 60}m{seconds % 60:02d}s"


def train(config):
    """Trains (or resumes) a run; returns the final model's scores (metrics.json).

    Args:
        config: `TrainConfig`.

    Returns:
        dict: `scoring.summarize` of the final model on every test image (`psnr`,
        `ssim`, `mae`, the blurry input's `input_*`, `images`; `split` "test"), plus
        `step`, `last_loss` (the last training step's loss, None if no step ran),
        `validation` (the final model's scores on the validation images periodic
        evaluations use), `best` (the best validation record: `step`, `psnr`, ...,
        `checkpoint`), `precision`, `ema_decay` and `dataset` (the TFDS name,
        config and version trained on, e.g. "synthetic_defocus/large/1.6.0").

    Raises:
        TrainingDiverged: the loss became NaN or Inf (the last good checkpoint is
            kept, no final model is written).
        TrainingInterrupted: SIGTERM or SIGINT (on any worker) stopped the run; the
            step it was in finished and was saved, so rerunning resumes exactly.
        run_folder.RunFolderBusy: another trainer holds model_dir.
        run_folder.WriteFailed: a write failed for want of room or permission (a
            full disk, a read-only folder); the checkpoints saved before are intact.
        cluster.WorkerLost: another worker stopped answering (this one stopped too;
            the message names it and the step a restart resumes from).
        run_folder.DamagedCheckpoint: the checkpoint to resume from (or the best one)
            is damaged; the message names the way on (`resume_from`).
        FileNotFoundError: missing data or VGG19 weights.
        ValueError: bad settings, or a model_dir holding a different run.
    """
    worker = this_worker(config.strategy)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # First of all (MultiWorkerMirroredStrategy must exist before any TensorFlow op),
    # and before anything may refuse: a worker that stopped before the others had
    # joined would leave them waiting for it for ever.
    strategy = make_strategy(config.strategy)
    logging.info("%s%s", replicas_line(strategy),
                 "" if config.deterministic else "; op determinism off")
    # A worker that stops answering ends the others' collectives: they say so; so does
    # a write that fails for want of room or permission.
    with lost_workers_explained(worker, config.model_dir), \
            run_folder.writes_explained(config.model_dir), contextlib.ExitStack() as held:
        # The workers agree on their settings, so all check config.json alike and
        # refuse together; the chief writes it.
        check_workers_agree(strategy, worker, config)
        # One trainer per run folder, for the whole run: the chief takes it before it
        # writes, and every worker stops if it could not.
        refused = run_lock = None
        if worker.is_chief:
            try:
                tf.io.gfile.makedirs(config.model_dir)
                run_lock = held.enter_context(run_folder.lock(config.model_dir))
            except (run_folder.RunFolderBusy, OSError, tf.errors.OpError) as error:
                refused = error  # a write refused: `writes_explained` words it
        if any_worker(strategy, worker, refused is not None):
            raise refused or run_folder.RunFolderBusy(
                f"the chief could not take the run folder {config.model_dir} (its log "
                "says why: another trainer holds it, or it is not writable), so this "
                f"worker ({worker.task}) stops too")
        if worker.is_chief:
            run_folder.remove_leftovers(config.model_dir)
        write_or_check_config(config, worker.count, write=worker.is_chief)
        # The chief writes the run folder; any other worker writes the same files (it
        # makes the same calls, collective or not) into memory: nothing on its disk
        # or in the bucket, and nothing left behind however the process ends.
        out_dir = (config.model_dir if worker.is_chief else
                   f"ram://kpac_tf/worker{worker.index}-{os.getpid()}-{time.time_ns()}")
        try:
            return _train(config, strategy, worker, out_dir, run_lock)
        finally:
            if out_dir != config.model_dir and tf.io.gfile.exists(out_dir):
                tf.io.gfile.rmtree(out_dir)


class _Evaluator:
    """Scoring during training: the validation split's first `eval_images` images at
    each evaluation (a better PSNR keeps `checkpoints/best/`), the test split once, at
    the end, on every image. Writes TensorBoard scalars and images in `validation/`
    and `test/`. Images of any size are padded to the network's multiple, then
    cropped."""

    def __init__(self, config, trainer, builder, best, out_dir):
        self.config, self.trainer, self.builder = config, trainer, builder
        self.best, self.out_dir = best, out_dir
        forward = predictor(trainer.eval_model)
        multiple = model_size_multiple(trainer.eval_model)
        self.predict = lambda inputs: predict_any_size(forward, inputs, multiple)
        self.validation_data = pipelines.evaluation_dataset(builder, VALIDATION_SPLIT,
                                                            config.to_8bit)
        self.validation_writer = tf.summary.create_file_writer(
            run_folder.path(out_dir, run_folder.VALIDATION_SUMMARIES))

    def validate(self, step):
        """Scores the evaluated weights on the validation images and keeps the best;
        returns the scores (`scoring.summarize`)."""
        self.trainer.sync_eval_model()
        best = self.best
        with self.validation_writer.as_default():
            scores = scoring.summarize(_evaluate(
                self.trainer, self.validation_data, self.config.eval_images, self.predict,
                write_images=True))
            improved = best.update(step, scores, VALIDATION_SPLIT)
            _log_scores(scores, step, best.record)
        logging.info("step %d  validation PSNR %.2f dB (input %.2f)  SSIM %.4f (input "
                     "%.4f), %d images%s; best %.2f dB at step %d", step, scores["psnr"],
                     scores["input_psnr"], scores["ssim"], scores["input_ssim"],
                     scores["images"], " (new best)" if improved else "",
                     best.record["psnr"], best.record["step"])
        return scores

    def test(self, step):
        """Scores the test split (never used to choose): (summary, [ImageScore])."""
        test_data = pipelines.evaluation_dataset(self.builder, TEST_SPLIT,
                                                 self.config.to_8bit)
        writer = tf.summary.create_file_writer(
            run_folder.path(self.out_dir, run_folder.TEST_SUMMARIES))
        with writer.as_default():
            scores = _evaluate(self.trainer, test_data, 0, self.predict, write_images=True)
            summary = scoring.summarize(scores)
            _log_scores(summary, step)
        writer.close()
        self.validation_writer.close()
        return summary, scores


class _Checkpoints:
    """When the run saves its state (model, optimizer, step) in `checkpoints/`: every
    `save_every` steps, when interrupted, and at the end; each step at most once.
    (The best is `_BestCheckpoint`'s.)"""

    def __init__(self, config, trainer, out_dir):
        self.config, self.trainer = config, trainer
        self.checkpoint = tf.train.Checkpoint(**trainer.checkpoint_objects())
        # Every worker saves (into out_dir) and restores the chief's latest checkpoint.
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, run_folder.path(out_dir, run_folder.CHECKPOINTS), max_to_keep=3)
        self.saved_step = None  # the step of the newest checkpoint (None: none yet)

    def resume(self):
        """Restores the run's checkpoint to resume from (`resume_from`, else the
        newest; every worker: the chief's), else initialises (`init_from`, or from
        scratch); returns the step to start from."""
        config, trainer = self.config, self.trainer
        restored = run_folder.checkpoint_to_resume(config.model_dir, config.resume_from)
        newest = run_folder.newest_checkpoint(config.model_dir)
        if restored and restored != newest:
            logging.warning("Resuming from %s, not the newest listed checkpoint %s: the "
                            "checkpoints after step %d are replaced or rotated away as "
                            "the run passes them", restored, newest,
                            run_folder.checkpoint_step_of_name(restored))
        if restored:
            self.checkpoint.restore(restored).assert_existing_objects_matched()
            logging.info("Restored from step %d (%s)", int(trainer.step.numpy()), restored)
        elif config.init_from:
            warm_start.initialize_weights(trainer.model, config.init_from)
            logging.info("Initialised weights from %s", config.init_from)
            trainer.start_average()
        else:
            logging.info("Starting from scratch (seed %d)", config.seed)
            trainer.start_average()
        step = int(trainer.step.numpy())
        self.saved_step = step if restored else None
        return step

    def save(self, step):
        if self.saved_step != step:
            self.manager.save(checkpoint_number=step)
            self.saved_step = step

    def save_if_due(self, step):
        if step % self.config.save_every == 0:
            self.save(step)

    def describe_last(self):
        return "none" if self.saved_step is None else f"ckpt-{self.saved_step}"


class _Progress:
    """The training log and `train/` TensorBoard scalars: losses by name, learning
    rate, steps per second and the time left."""

    def __init__(self, config, out_dir, step):
        self.config = config
        self.writer = tf.summary.create_file_writer(
            run_folder.path(out_dir, run_folder.TRAIN_SUMMARIES))
        self.start_step = self.window_start = step
        self.start_time = self.window_time = time.time()

    def log(self, step, losses_now):
        config = self.config
        now = time.time()
        rate = (step - self.window_start) / max(now - self.window_time, 1e-9)
        eta = (config.steps - step) * (now - self.start_time) / max(step - self.start_step, 1)
        terms = ", ".join(f"{name} {value:.5f}" for name, value in losses_now.items()
                          if name != "loss")
        logging.info("step %d/%d  loss %.5f (%s)  %.2f steps/s  ETA %s", step,
                     config.steps, losses_now["loss"], terms, rate, _format_duration(eta))
        with self.writer.as_default(step=step):
            for name, value in losses_now.items():  # loss, loss_mae, ...
                tf.summary.scalar("loss" if name == "loss" else f"loss_{name}", value)
            tf.summary.scalar("learning_rate", config.learning_rate)
            tf.summary.scalar("steps_per_second", rate)
        self.window_start, self.window_time = step, now


def _train(config, strategy, worker, out_dir, run_lock):
    """The recipe: build, restore, train in loops (`_run_steps`), then save, evaluate,
    write the final files and score the test split."""
    keras.utils.set_random_seed(config.seed)
    trainer = _Trainer(config, strategy, worker)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size {config.batch_size} must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas")
    builder = pipelines.prepare(config.dataset, config.data_dir,
                                pipelines.dataset_config(config.dataset, config.model,
                                                         config.dataset_config),
                                config.manual_dir)
    checkpoints = _Checkpoints(config, trainer, out_dir)
    best = _BestCheckpoint(config.model_dir, trainer.checkpoint_objects(), out_dir)
    step = checkpoints.resume()
    check_workers_agree(strategy, worker, config, trainer)
    # The stream starts at the step: resuming is exact with no iterator state.
    iterator = iter(trainer.distributed_input(builder, step))
    evaluator = _Evaluator(config, trainer, builder, best, out_dir)
    progress = _Progress(config, out_dir, step)
    step, loss = _run_steps(config, strategy, worker, trainer, iterator, step, evaluator,
                            checkpoints, progress, run_lock)

    if run_lock is not None:
        run_lock.check()
    # Killed after this save, a rerun restores it, trains nothing and does the rest
    # (all of which is written atomically) with the same weights.
    checkpoints.save(step)
    validation = evaluator.validate(step)  # the final weights may be the best too
    # float32 whatever the training policy (a mixed-policy model would compute in
    # low precision wherever it is loaded); the average when ema_decay > 0.
    with atomic_output(run_folder.path(out_dir, run_folder.FINAL_MODEL)) as tmp:
        trainer.eval_model.save(tmp)
    save_tf1_npz(trainer.eval_model, run_folder.path(out_dir, run_folder.FINAL_TF1_WEIGHTS))
    final, test_scores = evaluator.test(step)
    progress.writer.close()
    final.update(split=TEST_SPLIT, step=step, last_loss=loss, validation=validation,
                 best=best.record, precision=config.precision, ema_decay=config.ema_decay,
                 dataset=builder.info.full_name)
    scoring.write_per_image(run_folder.path(out_dir, run_folder.TEST_PER_IMAGE),
                            test_scores, with_lpips=False)
    write_json(run_folder.path(out_dir, run_folder.METRICS), final, indent=2)
    return final


def _run_steps(config, strategy, worker, trainer, iterator, step, evaluator, checkpoints,
               progress, run_lock):
    """Trains from `step` to `config.steps` in compiled loops, logging, evaluating and
    saving on their steps; returns (the last step, its loss: None if none ran).

    SIGTERM / SIGINT finish the loop of steps, save and stop (`TrainingInterrupted`).
    The host reads losses and agrees on stopping once per loop; a loop ends on every
    step that logs, evaluates or saves, and on the last.
    """
    train_loop = trainer.make_train_loop()
    loss = None
    with _stop_requests() as stop_requests:
        while step < config.steps:
            if run_lock is not None:  # nothing more is written once the folder is lost
                run_lock.check()
            steps = min(config.steps_per_loop, config.steps - step, *(
                every - step % every
                for every in (config.log_every, config.eval_every, config.save_every)))
            losses_now = {name: float(value) for name, value in train_loop(
                iterator, tf.constant(steps, tf.int64)).items()}
            loss = losses_now["loss"]
            step = int(trainer.step.numpy())
            if not np.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss} at step {step}; stopped without saving. The last "
                    f"good checkpoint is {checkpoints.describe_last()} in "
                    f"{config.model_dir}/checkpoints; lower --learning_rate or check the "
                    "data")
            if step % config.log_every == 0 or step == config.steps:
                progress.log(step, losses_now)
            # Evaluate, then save: a checkpoint at step N means all of step N is done,
            # its evaluation (and best checkpoint) included, so a run killed in between
            # repeats the evaluation and chooses the same best checkpoint.
            if step % config.eval_every == 0 and step < config.steps:
                evaluator.validate(step)
            checkpoints.save_if_due(step)
            if any_worker(strategy, worker, stop_requests):
                checkpoints.save(step)
                number = stop_requests[0] if stop_requests else signal.SIGTERM
                saved = run_folder.path(config.model_dir, run_folder.CHECKPOINTS, f"ckpt-{step}")
                raise TrainingInterrupted(
                    f"interrupted ({signal.Signals(number).name}"
                    f"{'' if stop_requests else ' to another worker'}) at step {step} of "
                    f"{config.steps}: saved {saved}; rerun the same command to resume", number)
    return step, loss
