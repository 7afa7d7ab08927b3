"""Where a training process stands in its cluster: the tf.distribute strategy, this
worker's place (TF_CONFIG), and the collective checks that every worker was given
the same settings and starts from the same state.

Multi-worker (`strategy="multi_worker"`, TF_CONFIG): only the chief (task "chief", or
"worker" 0 when the cluster has no chief) writes the run folder; every other worker
runs exactly the same code, saves and evaluations included (so no worker skips
anything collective the chief runs), but writes into a private temporary folder.
Every worker restores from the chief's `model_dir/checkpoints/`, so `model_dir` must
be storage all workers share.
"""

import contextlib
import dataclasses
import json
import re
import zlib

import keras
import tensorflow as tf

from kpac_tf.training import run_folder
from kpac_tf.training.settings import PATHS, STRATEGIES


# What a collective op raises on the workers left when another is gone: killed,
# crashed or cut off (gRPC's "Connection reset by peer", a health check that failed,
# a timeout, the collectives aborted after one of these).
PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.AbortedError,
                 tf.errors.CancelledError, tf.errors.DeadlineExceededError)


class WorkerLost(RuntimeError):
    """Another worker of the cluster stopped answering; this one stopped too."""


def make_strategy(name):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}")


@dataclasses.dataclass(frozen=True)
class Worker:
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


def this_worker(strategy):
    """Where this process stands: one worker, the chief, unless `strategy` is
    "multi_worker" and TF_CONFIG describes a cluster of several tasks. There the
    task "chief" has index 0, or "worker" 0 when the cluster has no chief, and the
    other workers follow in task order. Reads TF_CONFIG only (no TensorFlow op runs:
    MultiWorkerMirroredStrategy must be created before any)."""
    if strategy != "multi_worker":
        return Worker()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec().as_dict()
    chiefs, workers = len(spec.get("chief", ())), len(spec.get("worker", ()))
    if chiefs + workers <= 1:
        return Worker()
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        index = 0
    elif task_type == "worker":
        index = chiefs + int(task_id)
    else:
        raise ValueError(f"TF_CONFIG gives this process the task {task_type!r}; "
                         "multi_worker training runs on 'chief' and 'worker' tasks only "
                         "(set \"task\": {\"type\": \"worker\", \"index\": i})")
    return Worker(count=chiefs + workers, index=index, task=f"{task_type}:{task_id}")


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


def check_workers_agree(strategy, worker, config, trainer=None):
    """With several workers: checks, collectively (every worker calls it, and all
    raise alike), that all were given the same settings (paths aside), and with
    `trainer`, that all start from the same step and weights. A worker given other
    settings would read another stream or stop at another step; one that cannot see
    the chief's model_dir would start from scratch while the others resume (restoring
    is local to each worker) and train silently apart."""
    if worker.count == 1:
        return
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in PATHS}
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


def any_worker(strategy, worker, flag):
    """True on every worker if `flag` is true on any (collective: every worker calls
    it at the same point); `flag` itself with one worker."""
    if worker.count == 1:
        return bool(flag)
    local = tf.constant([[int(bool(flag))]], tf.int32)
    everyone = strategy.gather(strategy.experimental_distribute_values_from_function(
        lambda _: local), axis=0)
    return bool(tf.reduce_any(everyone > 0).numpy())


def _task_address(job, index):
    """The address TF_CONFIG gives task `job`:`index` ("" if it names none)."""
    spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    try:
        return spec.task_address(job, index)
    except (KeyError, ValueError):
        return ""


def lost_worker_message(error, worker, model_dir):
    """What a collective `error` means, in one sentence: the task that stopped
    answering (the first other task the error names, with its address), why, and
    the step a restart of every worker resumes from (the run's newest checkpoint)."""
    text = str(error)
    others = [task for task in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", text)
              if ":".join(task) != worker.task]
    if others:
        job, index = others[0]
        address = _task_address(job, int(index))
        lost = f"{job}:{index}{f' ({address})' if address else ''}"
    else:
        lost = "another worker"
    # gRPC's last words, "…: Connection reset by peer", "…: Connection refused".
    reason = re.search(r"aborted by: ([^\n]+)", text)
    reason = reason.group(1).rsplit(":", 1)[-1].strip() if reason else ""
    reason = reason or type(error).__name__  # a hung task's error ends in ":"
    return (f"{lost} stopped answering ({reason}), so this worker ({worker.task}) "
            "stopped too; restart every worker with the same command: the run "
            f"{run_folder.resume_point(model_dir)}")


@contextlib.contextmanager
def lost_workers_explained(worker, model_dir):
    """Turns, with several workers, a collective op's failure (`PEER_FAILURES`) into
    `WorkerLost` with `lost_worker_message` (the error is its __cause__)."""
    try:
        yield
    except PEER_FAILURES as error:
        if worker.count == 1:
            raise
        raise WorkerLost(lost_worker_message(error, worker, model_dir)) from error
