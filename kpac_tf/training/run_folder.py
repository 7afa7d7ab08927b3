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
  per_image.csv        the final model's scores of each test image (as
                       experiments.evaluate writes them; experiments.compare reads it)
  trainer.lock         while a trainer runs: its host, pid and start time (`lock`;
                       on an object store also its lease's last renewal)

A checkpoint counts once the state file `checkpoints/checkpoint` lists it (TensorFlow
writes a checkpoint's files first and that file, atomically, last).

The folder may be anywhere TensorFlow's filesystem layer writes (a local disk,
`gs://`, `s3://`, `hdfs://`, `ram://`): every access goes through `tf.io.gfile`.
"""

import contextlib
import datetime
import errno
import fcntl
import fnmatch
import json
import os
import posixpath
import re
import socket
import threading
import time
import uuid

import tensorflow as tf
from absl import logging

from kpac_tf.utils.files import before_overwrite, error_reason, is_remote

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
BEST = os.path.join(CHECKPOINTS, "best")
BEST_RECORD = "best.json"
FINAL_MODEL = "model.keras"
FINAL_TF1_WEIGHTS = "weights_tf1.npz"
METRICS = "metrics.json"
TEST_PER_IMAGE = "per_image.csv"  # the final model's scores of each test image
TRAIN_SUMMARIES, VALIDATION_SUMMARIES, TEST_SUMMARIES = "train", "validation", "test"
LOCK = "trainer.lock"


class RunFolderBusy(RuntimeError):
    """Another trainer holds the run folder (its lock names it)."""


class DamagedCheckpoint(ValueError):
    """A checkpoint's files are missing, truncated or unreadable."""


class WriteFailed(OSError):
    """A write of the run failed for want of room or permission (a full disk, a quota,
    a read-only or unwritable folder); the checkpoints saved before are intact."""


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
    file = path(folder, CONFIG)
    return tf.io.gfile.exists(file) and not tf.io.gfile.isdir(file)


def read_json(folder, name):
    """The contents of `folder/name`, or None if there is no such file."""
    file = path(folder, name)
    if not tf.io.gfile.exists(file) or tf.io.gfile.isdir(file):
        return None
    with tf.io.gfile.GFile(file) as f:
        return json.load(f)


def _names(folder, pattern):
    """The entries of `folder` whose names match the shell pattern `pattern` (full
    paths, sorted); [] if there is no such folder. Names are matched as names, so a
    folder whose own name holds `*` or `[` is safe."""
    if not tf.io.gfile.isdir(folder):
        return []
    return sorted(path(folder, name.rstrip("/")) for name in tf.io.gfile.listdir(folder)
                  if fnmatch.fnmatchcase(name.rstrip("/"), pattern))


def read_config(folder):
    """A run's config.json as a dict (None if there is none)."""
    return read_json(folder, CONFIG)


def _listed_checkpoints(folder):
    """Every checkpoint the state file of `folder` lists, oldest first (the newest,
    its `model_checkpoint_path`, last); [] if none."""
    state = tf.train.get_checkpoint_state(os.fspath(folder))
    return list(state.all_model_checkpoint_paths) if state else []


def newest_checkpoint(source):
    """The newest checkpoint (its path prefix) of a run folder (in its checkpoints/), or
    of a checkpoint folder itself (checkpoints/ or checkpoints/best/); None if there is
    none.

    The newest is the one the folder's state file lists. Unlike
    `tf.train.latest_checkpoint`, a listed checkpoint whose files are missing is not
    taken as "no checkpoint" (which would restart a run from scratch): its restore
    fails and says so."""
    for folder in (path(source, CHECKPOINTS), os.fspath(source)):
        listed = _listed_checkpoints(folder) if tf.io.gfile.isdir(folder) else []
        if listed:
            return listed[-1]
    return None


def checkpoint_reader(checkpoint):
    """A reader of the checkpoint with path prefix `checkpoint` (`get_tensor(name)`,
    `get_variable_to_shape_map()`). Unlike `tf.train.load_checkpoint`, a prefix is
    never taken for a folder (on ram://, whose folders are any name's prefixes, it
    would be)."""
    return tf.compat.v1.train.NewCheckpointReader(checkpoint)


def checkpoint_damage(checkpoint):
    """Why checkpoint `checkpoint` (a path prefix) cannot be restored: a sentence, or
    None when its index and every tensor it names read back whole (a truncated or
    missing data file, a corrupt index, a checksum mismatch)."""
    try:
        reader = checkpoint_reader(checkpoint)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as e:
        message = str(e).strip().splitlines()
        return f"{type(e).__name__}: {message[0] if message else 'unreadable'}"
    return None


def checkpoint_to_resume(run_dir, step=None):
    """The checkpoint a run resumes from (None: there is none): the newest listed in
    `run_dir/checkpoints`, or that of `step`, once checked whole (`checkpoint_damage`).

    Raises:
        DamagedCheckpoint: it is damaged; the message names the newest intact
            checkpoint and the `resume_from` step that resumes from it.
        ValueError: no checkpoint of `step` is listed.
    """
    folder = path(run_dir, CHECKPOINTS)
    listed = _listed_checkpoints(folder) if tf.io.gfile.isdir(folder) else []
    if step is not None:
        chosen = [c for c in listed if os.path.basename(c) == f"ckpt-{int(step)}"]
        if not chosen:
            raise ValueError(f"{folder} lists no checkpoint of step {step} (it lists "
                             f"{', '.join(os.path.basename(c) for c in listed) or 'none'})")
        candidate = chosen[0]
    elif listed:
        candidate = listed[-1]
    else:
        return None
    damage = checkpoint_damage(candidate)
    if damage is None:
        return candidate
    older = [c for c in listed
             if checkpoint_step_of_name(c) < checkpoint_step_of_name(candidate)]
    intact = next((c for c in reversed(older) if checkpoint_damage(c) is None), None)
    way_on = (f"the newest intact one is {os.path.basename(intact)}: rerun with "
              f"--resume_from={checkpoint_step_of_name(intact)} to resume from it (the "
              "checkpoints after it are then replaced as the run passes them)"
              if intact else "no older checkpoint is intact: restore its files, or start "
              "again in a new --model_dir")
    raise DamagedCheckpoint(f"checkpoint {candidate} is damaged ({damage}); {way_on}")


def resume_point(run_dir):
    """Where a rerun of `run_dir` starts, as words: "resumes from step N (…/ckpt-N)",
    or "starts from the beginning (no checkpoint was saved yet)"."""
    newest = newest_checkpoint(run_dir)
    return (f"resumes from step {checkpoint_step_of_name(newest)} ({newest})" if newest
            else "starts from the beginning (no checkpoint was saved yet)")


# Failures that only a write meets, whatever the file; and those a read may meet too
# (then only files in the run folder count as the run's writes).
_WRITE_ERRNOS = {errno.ENOSPC: "No space left on device",
                 errno.EDQUOT: "Disk quota exceeded", errno.EROFS: "Read-only file system"}
_ACCESS_ERRNOS = {errno.EACCES: "Permission denied", errno.EPERM: "Operation not permitted"}


def _inside(file, folder):
    """True if path `file` is `folder` or inside it (both absolute)."""
    return (file + os.sep).startswith(folder + os.sep)


def _write_failure(error, run_dir):
    """(reason, file) if `error` (OSError, or TensorFlow's, which names neither errno
    nor file but says both in words) is a write failing for want of room or
    permission; None otherwise. `file` is None when the error names none."""
    run_dir = os.fspath(run_dir)
    text = str(error)
    in_words = next((words for words in (*_WRITE_ERRNOS.values(), *_ACCESS_ERRNOS.values())
                     if words in text), None)
    if isinstance(error, OSError):  # a local file (for a remote run: staging an upload)
        run_dir = run_dir if is_remote(run_dir) else os.path.abspath(run_dir)
        reason = _WRITE_ERRNOS.get(error.errno) or _ACCESS_ERRNOS.get(error.errno)
        file = error.filename and os.fspath(error.filename)
        file = file if not file or is_remote(file) else os.path.abspath(file)
    elif is_remote(run_dir):  # TensorFlow's errors; their words name the object
        run_dir = run_dir.rstrip("/")
        reason = in_words
        file = next(iter(re.findall(re.escape(run_dir) + r"[^\s;,'\"{}\[\]]*", text)),
                    None)
    else:
        run_dir = os.path.abspath(run_dir)
        reason = in_words
        # The first path in the words inside the run folder, else whose folder exists
        # ("/job:localhost/…" is neither).
        paths = re.findall(r"/[^\s;:,'\"{}\[\]]+", text)
        file = next((p for p in paths if _inside(p, run_dir)), None) or next(
            (p for p in paths if os.path.dirname(p) != "/"
             and os.path.isdir(os.path.dirname(p))), None)
    if reason is None:
        return None
    if file is not None:  # TensorFlow writes a checkpoint's files in ckpt-N_temp/ first
        file = re.sub(r"(ckpt-\d+)_temp/[^/]*$", r"\1", file)
    if reason in _ACCESS_ERRNOS.values() and not (file and _inside(file, run_dir)):
        return None
    return reason, file


@contextlib.contextmanager
def writes_explained(run_dir):
    """Turns a write that fails for want of room or permission (`_write_failure`)
    into `WriteFailed`: one sentence naming the file, the reason, and the step a
    rerun resumes from (the newest checkpoint, intact: a checkpoint is listed only
    once written whole). The original error is its __cause__."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        failure = _write_failure(error, run_dir)
        if failure is None:
            raise
        reason, file = failure
        raise WriteFailed(
            f"could not write {file or run_dir}: {reason}. Free space on that disk (or "
            "make the folder writable) and rerun the same command: the run "
            f"{resume_point(run_dir)}") from error


def checkpoint_step_of_name(checkpoint):
    """The step in a checkpoint's name ("…/ckpt-20" -> 20), read without its files."""
    return int(os.path.basename(checkpoint).rsplit("-", 1)[1])


def checkpoint_step(checkpoint):
    """The training step stored in a checkpoint (int)."""
    return int(checkpoint_reader(checkpoint).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


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
    source = os.fspath(source).rstrip("/") if is_remote(source) else os.path.normpath(source)
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
    for events in _names(path(run_dir, TRAIN_SUMMARIES), "events.out.tfevents.*"):
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
            for leftover in _names(folder, pattern):
                logging.info("Removing %s (left by an interrupted run)", leftover)
                try:
                    if tf.io.gfile.isdir(leftover):
                        tf.io.gfile.rmtree(leftover)
                    else:
                        tf.io.gfile.remove(leftover)
                except tf.errors.NotFoundError:
                    pass


def _holder(fd):
    """The holder a lock file records ({host, pid, since}), None if it records none."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace")
    try:
        holder = json.loads(text)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) and {"host", "pid"} <= set(holder) else None


def _describe(holder):
    return (f"pid {holder['pid']} on host {holder['host']}, since "
            f"{holder.get('since', 'an unknown time')}")


# On a filesystem without `flock` (an object store such as gs://), the lock is a lease:
# the lock file's record, renewed every LEASE_RENEW_SECONDS while the trainer runs.
# One not renewed for LEASE_STALE_SECONDS belongs to a trainer that is gone (killed,
# or its machine lost) and is taken over. Having written its record, a trainer waits
# LEASE_SETTLE_SECONDS and reads it back: of two that found the folder free at once,
# only the one whose record is there goes on. (A contender slower than that between
# its read and its write, or a renewal racing a takeover, can still overwrite a
# record; the loser finds out at its next renewal. Object stores offer no atomic
# compare-and-swap through tf.io.gfile.) A trainer that has not renewed for
# LEASE_STALE_SECONDS - 2 * LEASE_RENEW_SECONDS stops before it writes more; a record
# left by a process of this host that no longer exists is taken over at once.
LEASE_RENEW_SECONDS = 30
LEASE_STALE_SECONDS = 300
LEASE_SETTLE_SECONDS = 2


class HeldRunFolder:
    """What `lock` yields. `check()` raises `RunFolderBusy` once another trainer has
    taken the folder over: it took over a lease this one failed to renew for
    LEASE_STALE_SECONDS, or locked a new lock file after somebody deleted this
    one's (a deleted lock file nobody took is written again, with a log line).
    The loop calls it before it writes."""

    def __init__(self, file, lost):
        self.file = file
        self._lost = lost  # () -> why the folder was lost, or None

    def check(self):
        reason = self._lost()
        if reason is not None:
            raise RunFolderBusy(f"{reason}; this trainer stops without writing more")


def lock(run_dir):
    """Holds `run_dir` for one trainer, as a context manager yielding a
    `HeldRunFolder`: `run_dir/trainer.lock` records this process (host, pid, start
    time) for as long as the context lasts. On a local disk under an exclusive
    `flock` the kernel releases when the process ends, however it ends; elsewhere
    (gs://, ...) as a lease renewed while the context lasts (see LEASE_RENEW_SECONDS).

    A lock left by a trainer that is gone (on this host: nobody holds its `flock`;
    elsewhere: its lease is stale) is taken over, with a log line. A local lock file
    that names another host is refused (this host cannot tell whether that trainer
    still runs); so is a live one.

    Raises:
        RunFolderBusy: naming the holder and the way on; nothing is written then.
    """
    return _lease(run_dir) if is_remote(run_dir) else _flock(run_dir)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _timestamp(moment):
    return moment.isoformat(timespec="seconds")


def _read_lease(file):
    """The record of lease file `file` (dict), or None if there is none (or it is not
    a lease record)."""
    try:
        with tf.io.gfile.GFile(file) as f:
            holder = json.loads(f.read())
    except (tf.errors.NotFoundError, ValueError):
        return None
    return holder if isinstance(holder, dict) and {"host", "pid"} <= set(holder) else None


def _lease_age(holder):
    """Seconds since `holder`'s lease was last renewed (or, for a record without
    renewals, taken); 0 when it records no time we can read (never stale)."""
    try:
        renewed = datetime.datetime.fromisoformat(holder.get("renewed") or holder["since"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (_now() - renewed).total_seconds()


def _gone_from_this_host(holder):
    """True if `holder` names a process of this host that no longer exists."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, TypeError, ValueError):
        return False
    return False


def _write_lease(file, record):
    """Writes the lease record whole (one object, written on close)."""
    before_overwrite(file)
    with tf.io.gfile.GFile(file, "w") as f:
        f.write(json.dumps(record))


@contextlib.contextmanager
def _lease(run_dir):
    """`lock` on a filesystem without `flock`: a lease (module comment above)."""
    file = path(run_dir, LOCK)
    holder = _read_lease(file)
    if holder is not None:
        age = _lease_age(holder)
        gone = _gone_from_this_host(holder)
        if age < LEASE_STALE_SECONDS and not gone:
            raise RunFolderBusy(
                f"{run_dir} is in use by another trainer ({_describe(holder)}; its lease "
                f"was renewed {age:.0f} s ago); wait for it to finish or stop it, or train "
                f"into another --model_dir. A trainer that is gone loses its lease "
                f"{LEASE_STALE_SECONDS} s after its last renewal (or delete {file} if no "
                "trainer runs on this folder)")
        logging.warning("Taking over %s: the trainer that held it (%s) %s", file,
                        _describe(holder), "is gone" if gone else
                        f"has not renewed its lease for {age:.0f} s")
    now = _timestamp(_now())
    record = dict(host=socket.gethostname(), pid=os.getpid(), since=now, renewed=now,
                  token=uuid.uuid4().hex)
    _write_lease(file, record)
    threading.Event().wait(LEASE_SETTLE_SECONDS)
    holder = _read_lease(file)
    if holder is None or holder.get("token") != record["token"]:
        raise RunFolderBusy(
            f"{run_dir} was taken at the same moment by another trainer"
            f"{' (' + _describe(holder) + ')' if holder else ''}; wait for it to "
            "finish or stop it, or train into another --model_dir")
    lost_to, renewed = [], [time.monotonic()]

    def lost():
        if lost_to:
            return (f"another trainer took this run folder over ({_describe(lost_to[0])}) "
                    f"after this one had not renewed its lease in {file} for "
                    f"{LEASE_STALE_SECONDS} s (storage unreachable, or the process "
                    "suspended)")
        unrenewed = time.monotonic() - renewed[0]
        if unrenewed > LEASE_STALE_SECONDS - 2 * LEASE_RENEW_SECONDS:
            return (f"this trainer has not renewed its lease in {file} for "
                    f"{unrenewed:.0f} s (storage unreachable?), so another trainer may take "
                    "the folder over")
        return None

    held = HeldRunFolder(file, lost)
    stop = threading.Event()

    def renew():
        while not stop.wait(LEASE_RENEW_SECONDS):
            try:
                holder = _read_lease(file)
                if holder is not None and holder.get("token") != record["token"]:
                    lost_to.append(holder)
                    logging.error("%s now names another trainer (%s): this one lost the "
                                  "run folder", file, _describe(holder))
                    return
                record["renewed"] = _timestamp(_now())
                _write_lease(file, record)
                renewed[0] = time.monotonic()
            except tf.errors.OpError as e:
                logging.warning("Could not renew the lease %s (%s); retrying in %d s",
                                file, error_reason(e), LEASE_RENEW_SECONDS)

    renewer = threading.Thread(target=renew, name="run-folder-lease", daemon=True)
    renewer.start()
    try:
        yield held
    finally:
        stop.set()
        renewer.join(timeout=LEASE_RENEW_SECONDS)
        try:
            holder = _read_lease(file)
            if holder is not None and holder.get("token") == record["token"]:
                tf.io.gfile.remove(file)
        except tf.errors.OpError as e:  # the run's own outcome matters more
            logging.warning("Could not remove the lease %s (%s); it goes stale in %d s",
                            file, error_reason(e), LEASE_STALE_SECONDS)


@contextlib.contextmanager
def _flock(run_dir):
    """`lock` on a local disk: an exclusive `flock` on the lock file."""
    file = path(run_dir, LOCK)
    host = socket.gethostname()
    while True:
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunFolderBusy(
                f"{run_dir} is in use by another trainer"
                f"{' (' + _describe(holder) + ')' if holder else ''}; wait for it to "
                "finish or stop it, or train into another --model_dir") from None
        # Locked; but the file may have been removed (and perhaps replaced) by its
        # holder's release between our open and flock: then lock the new one.
        if _same_file(file, fd):
            break
        os.close(fd)
    try:
        holder = _holder(fd)
        if holder is not None and holder["host"] != host:
            raise RunFolderBusy(
                f"{run_dir} is held by a trainer on another host ({_describe(holder)}); "
                f"if no trainer runs there on this folder any more, delete {file} and "
                "rerun")
        if holder is not None:
            logging.warning("Taking over %s: the trainer that held it (%s) is gone",
                            file, _describe(holder))
        record = json.dumps(dict(host=host, pid=os.getpid(), since=_timestamp(_now())))
        _write_record(fd, record)
    except BaseException:
        os.close(fd)
        raise
    held = [fd]  # the descriptor holding the lock (replaced if the file is rewritten)

    def lost():
        """None while `file` is still the one locked, or was deleted and is written
        and locked again; otherwise why the folder is lost."""
        if _same_file(file, held[0]):
            return None
        taken = (f"{file} was deleted while this trainer held {run_dir}, and another "
                 "trainer{} has taken the folder since")
        try:
            new = os.open(file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another trainer made one
            try:
                with open(file, "rb") as f:
                    holder = _holder(f.fileno())
            except OSError:
                holder = None
            return taken.format(f" ({_describe(holder)})" if holder else "")
        try:
            fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another trainer opened and locked it first
            os.close(new)
            return taken.format("")
        _write_record(new, record)
        os.close(held[0])
        held[0] = new
        logging.warning("%s was deleted while this trainer held the folder: written "
                        "again", file)
        return None

    try:
        yield HeldRunFolder(file, lost)
    finally:
        if _same_file(file, held[0]):
            os.remove(file)  # before unlocking, so that nobody locks a removed file
        os.close(held[0])


def _same_file(file, fd):
    """True if `file` exists and is the file open as `fd`."""
    try:
        return os.stat(file).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _write_record(fd, record):
    """Replaces the lock file's content with `record` (str), durably."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode(), 0)
    os.fsync(fd)
