"""Deblurring photo files and folders without losing one.

`plan` names every output before anything is written. Outputs are compared with the
inputs as the files they reach (resolved paths, the same inode), never as spellings;
two inputs never share an output (`e.jpg` and `e.png` become `e.jpg.png` and
`e.png.png`); the output folder is never the input folder. What this app wrote is
recorded in the output folder's `MANIFEST` (name, source photo, inode, size and
modification time of each output), so a file is ours only if it is still the very
file written, not a copy or a look-alike (on an object store, gs:// and the like, which
has no inodes: the same size and modification time): a file already at an output
path is skipped,
not replaced, unless it is ours and `overwrite` is set, and a photo whose result is
already there under another name (the folder gained a photo of the same stem since)
is skipped too.

`run` deblurs the plan photo by photo: a bad photo is named and the others go on; an
output that cannot be written, or a model that gives NaN, stops the run at once. Every
file is written atomically and flushed, the photo last, and a new output never
replaces a file that appeared meanwhile, so rerunning the same command resumes.

Photos and outputs may be local or anywhere TensorFlow's filesystem layer reaches
(gs://, ...); a remote output is written locally and uploaded whole.
"""

import dataclasses
import errno
import gc
import json
import os
import tempfile
import uuid

import numpy as np
import tensorflow as tf

from kpac_tf.data import images, pixels
from kpac_tf.deploy import tiling
from kpac_tf.deploy.blur_map import blur_map, draw_blur_map
from kpac_tf.deploy.deblurring import NonFiniteOutput, deblur
from kpac_tf.models.forward import block_attention
from kpac_tf.utils import memory
from kpac_tf.utils.files import error_reason, is_remote, write_json
from kpac_tf.utils.progress import progress_bar

MANIFEST = ".kpac-deblur.json"  # in the output folder: what this app wrote there
SOFTWARE = "kpac-tf deblur"  # PNG text of our outputs (provenance, not proof)
EXTRAS = ("attention", "blur_map")  # with save_attention: <stem>_<extra>.png
# Write errors after which nothing further can be written: the run stops.
_WRITE_STOPS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT,
                errno.EIO, errno.ENOENT, None}


class PlanError(ValueError):
    """The inputs and outputs cannot be planned safely; nothing was written."""


class OutOfMemory(RuntimeError):
    """One photo did not, or would not, fit in memory (the message names it and its
    size). `tile_size`: the tile side it was tried with, None for whole."""

    def __init__(self, message, tile_size):
        super().__init__(message)
        self.tile_size = tile_size


def _exists(path):
    """True if there is an entry at `path` (locally, a broken link counts)."""
    return tf.io.gfile.exists(path) if is_remote(path) else os.path.lexists(path)


def _is_folder(path):
    return tf.io.gfile.isdir(path) if is_remote(path) else os.path.isdir(path)


def _identity(path):
    """[inode, size, mtime_ns] of the entry at `path` (a link itself, not its
    target); the inode is None on an object store, which has none."""
    if is_remote(path):
        stats = tf.io.gfile.stat(path)
        return [None, stats.length, stats.mtime_nsec]
    stats = os.lstat(path)
    return [stats.st_ino, stats.st_size, stats.st_mtime_ns]


class Manifest:
    """The outputs this app wrote in a folder: {name: {source, inode, size,
    mtime_ns}}, kept in `folder/MANIFEST`. A file is ours only while it is that very
    file (same inode, size and modification time; no inode on an object store)."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, MANIFEST)
        try:
            images.check_regular_file(self.path)
            with tf.io.gfile.GFile(self.path) as f:
                self.entries = dict(json.load(f))
        except (images.ImageReadError, OSError, tf.errors.OpError, ValueError, TypeError):
            self.entries = {}  # none yet, or unreadable: nothing counts as ours

    def owns(self, path):
        entry = self.entries.get(os.path.basename(path))
        try:
            identity = _identity(path)
        except (OSError, tf.errors.OpError):
            return False
        return entry is not None and [entry.get(k) for k in ("inode", "size", "mtime_ns")] \
            == identity

    def output_of(self, source):
        """The name of an output of ours made from a photo named `source`, or None."""
        return next((name for name, entry in sorted(self.entries.items())
                     if entry.get("source") == os.path.basename(source)
                     and self.owns(os.path.join(self.folder, name))), None)

    def record(self, path, source):
        inode, size, mtime_ns = _identity(path)
        self.entries[os.path.basename(path)] = dict(
            source=os.path.basename(source), inode=inode, size=size, mtime_ns=mtime_ns)
        write_json(self.path, self.entries, indent=1, sort_keys=True)


@dataclasses.dataclass
class Job:
    """One photo: `source` (its path), `output` (the deblurred PNG), `extras`
    ({"attention" | "blur_map": PNG path}, with save_attention)."""
    source: str
    output: str
    extras: dict

    def paths(self):
        return [*self.extras.values(), self.output]


@dataclasses.dataclass
class Report:
    """What a plan and its run did.

    Attributes:
        folder: str, the output folder.
        jobs: list of `Job`, the photos to deblur.
        done: list of source paths deblurred.
        skipped: list of (path, kind, reason): kind "not_a_file" (a FIFO, socket,
            device, folder or broken link named as a photo), "done_before" (its
            output is ours, from an earlier run) or "in_the_way" (a file this app did
            not write holds an output path).
        ignored: list of paths in a folder holding no PNG or JPEG, not named as one.
        failed: list of (source path, exception): `images.ImageReadError` (its
            subclass `images.PhotoTooLarge`), `OutOfMemory`, OSError, ValueError.
        stopped: str or None, why the run stopped before its end.
        broken_model: bool, it stopped because the model gives NaN or inf.
    """
    folder: str
    jobs: list
    done: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    ignored: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    stopped: str = None
    broken_model: bool = False


def _not_a_file(path):
    """Why `path` is not a regular file to read (a FIFO, a broken link, ...), or None."""
    if not is_remote(path) and os.path.islink(path) and not os.path.exists(path):
        return f"{path}: a broken symbolic link (to {os.readlink(path)})"
    try:
        images.check_regular_file(path)
    except images.ImageReadError as e:
        return str(e)
    return None


def _photos_in(folder):
    """A folder's photos, by content: (sorted paths of regular files holding PNG or
    JPEG, or named .png / .jpg / .jpeg; [(path, "not_a_file", why)] for other
    entries named as photos; [paths of other files]). Hidden files (a dot first:
    macOS's ._ files, temporary files) are passed over."""
    try:
        names = sorted(name for name in (
            [n.rstrip("/") for n in tf.io.gfile.listdir(folder)] if is_remote(folder)
            else os.listdir(folder)) if not name.startswith("."))
    except (OSError, tf.errors.OpError) as e:
        raise PlanError(f"cannot list the input folder {folder}: {error_reason(e)}") \
            from None
    photos, skipped, ignored = [], [], []
    for name in names:
        path = os.path.join(folder, name)
        named_photo = name.lower().endswith(images.IMAGE_EXTENSIONS)
        reason = _not_a_file(path)
        if reason:
            if named_photo:
                skipped.append((path, "not_a_file", reason))
            continue
        try:
            held = images.file_format(path)
        except images.ImageReadError:
            held = None  # unreadable: a photo by its name is tried and named
        if named_photo or held in ("PNG", "JPEG"):
            photos.append(path)
        else:
            ignored.append(path)
    return photos, skipped, ignored


def _output_names(photos):
    """{photo: output file name}: its stem + ".png", or, where several photos share
    a stem (compared without case: `e.jpg`, `E.png`), each one's whole name + ".png"."""
    stems = {}
    for photo in photos:
        stems.setdefault(images.scene_name(photo).lower(), []).append(photo)
    return {photo: os.path.basename(photo) + ".png" if len(stems[
        images.scene_name(photo).lower()]) > 1 else images.scene_name(photo) + ".png"
            for photo in photos}


def _resolved(path):
    """`path` with every link resolved; on an object store, the name (no links)."""
    return path.rstrip("/") if is_remote(path) else os.path.realpath(path)


def _entry(path):
    """The directory entry `path` names, with its folder resolved (what a rename onto
    `path` replaces); on an object store, the name itself."""
    if is_remote(path):
        return path
    return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))),
                        os.path.basename(path))


def _inode(path):
    try:
        stats = os.stat(path)
    except OSError:
        return None
    return (stats.st_dev, stats.st_ino)


def _reaches(path):
    """What writing `path` reaches: its entry and, if it exists, its link target and
    inode (on an object store, its name)."""
    if is_remote(path):
        return [path]
    keys = [_entry(path)]
    if os.path.lexists(path):
        keys += [os.path.realpath(path), _inode(path)]
    return [key for key in keys if key is not None]


class _Inputs:
    """The inputs as the files they reach: entries, link targets and inodes."""

    def __init__(self, photos):
        self._by_key = {}
        for photo in photos:
            for key in _reaches(photo):
                self._by_key.setdefault(key, photo)

    def reached_by(self, path):
        """The input that writing `path` would replace or reach, or None."""
        return next((self._by_key[k] for k in _reaches(path) if k in self._by_key), None)


def plan(source, target, save_attention=False, overwrite=False):
    """Plans a run: every output path, decided before anything is written.

    Args:
        source: str or PathLike, a photo file or a folder of them (every file whose
            content is PNG or JPEG, and those named .png / .jpg / .jpeg).
        target: str or PathLike, the output `.png` for a file, or a folder (created
            by `run`; a name ending in the path separator is a folder).
        save_attention: bool, also plan `<stem>_attention.png`, `<stem>_blur_map.png`.
        overwrite: bool, redo outputs of an earlier run of this app; files it did not
            write are never replaced.

    Returns:
        `Report` with `folder`, `jobs`, `skipped` and `ignored` filled in.

    Raises:
        PlanError: a missing source, an output folder that is the input folder, an
            output that would replace an input, two photos with one output, an
            unusable target; nothing was written.
    """
    source, target = os.fspath(source), os.fspath(target)
    if not target:
        raise PlanError("the output is an empty path; name a folder or a .png file")
    skipped, ignored = [], []
    if _is_folder(source):
        if _exists(target) and not _is_folder(target):
            raise PlanError(f"{target} is a file; give a folder for a folder of photos")
        if not _is_folder(target) and target.lower().endswith(".png"):
            raise PlanError(f"{target} names a PNG file; give a folder for a folder of "
                            "photos")
        if _resolved(target) == _resolved(source):
            raise PlanError(f"the output folder {target} is the input folder; choose "
                            "another (its results would be read as photos next time)")
        photos, skipped, ignored = _photos_in(source)
        if not photos and not skipped:
            raise PlanError(f"{source}: no PNG or JPEG files")
        folder, names = target, _output_names(photos)
    elif _exists(source):
        reason = _not_a_file(source)
        if reason:
            raise PlanError(reason)
        photos = [source]
        if _is_folder(target) or target.endswith(os.sep):
            folder, names = target, _output_names(photos)
        elif not target.lower().endswith(".png"):
            raise PlanError(f"{target}: results are PNG files; end the name with .png")
        else:
            folder, names = os.path.dirname(target) or ".", {source: os.path.basename(target)}
    else:
        raise PlanError(f"{source}: no such file or folder")
    report = Report(folder=folder, jobs=[], skipped=skipped, ignored=ignored)
    for photo in photos:
        stem = os.path.splitext(names[photo])[0]
        report.jobs.append(Job(photo, os.path.join(folder, names[photo]), {
            extra: os.path.join(folder, f"{stem}_{extra}.png")
            for extra in (EXTRAS if save_attention else ())}))
    _check_outputs(report.jobs, _Inputs(photos))
    manifest = Manifest(folder)
    report.jobs = [job for job in report.jobs
                   if not _in_the_way(job, overwrite, manifest, report)]
    return report


def _check_outputs(jobs, inputs):
    """PlanError when an output would replace an input or two jobs share an output."""
    claimed = {}
    for job in jobs:
        for path in job.paths():
            reached = inputs.reached_by(path)
            if reached is not None:
                raise PlanError(f"the output {path} would replace the input {reached}; "
                                "choose another output folder")
            key = _entry(path)
            if key in claimed:
                raise PlanError(f"{claimed[key]} and {job.source} would both be written "
                                f"to {path}; rename one of them")
            claimed[key] = job.source


def _in_the_way(job, overwrite, manifest, report):
    """True (and a line in `report.skipped`) when `job` is not to run: a file this
    app did not write holds one of its paths, or, without `overwrite`, its result is
    there already (at its path, or under another name from an earlier run)."""
    for path in job.paths():
        if _exists(path) and not manifest.owns(path):
            report.skipped.append((job.source, "in_the_way", (
                f"{path} is already there and was not written by this app; it is left "
                f"as it is (move it away to deblur {job.source})")))
            return True
    earlier = (job.output if _exists(job.output)
               else manifest.output_of(job.source))
    if earlier and not overwrite:
        earlier = os.path.join(report.folder, os.path.basename(earlier))
        report.skipped.append((job.source, "done_before",
                               f"{earlier} is there from an earlier run"))
        return True
    return False


def attention_image(model, image):
    """Scale-attention maps of the first KPAC block for an RGB photo, as one uint8
    grayscale image: the rates' maps side by side, each at the photo's size.

    Returns None when the model has no scale attention.
    """
    if len(model.inputs) != 1:
        return None
    maps = block_attention(model, pixels.to_network(np.asarray(image)[None])).get("kpac_0")
    if maps is None:
        return None
    tiles = [maps[..., i] for i in range(maps.shape[-1])]
    return np.round(np.concatenate(tiles, axis=1) * 255).astype(np.uint8)[..., None]


def _deblur_one(deblurrer, job, tile_size, overlap, max_pixels):
    """{path: uint8/uint16 array} to write for `job`, extras first, the photo last.

    Raises OutOfMemory before starting when the photo would need more memory than is
    available (the kernel would kill the process, not raise), or when TensorFlow or
    numpy run out during it."""
    image = images.read_image(job.source, max_pixels)
    size = f"{image.shape[1]}x{image.shape[0]}"
    how = f" in tiles of {tile_size} px" if tile_size else " whole"
    needed = tiling.memory_needed(image.shape[0], image.shape[1], tile_size)
    available = memory.available_bytes()
    if available is not None and needed > available:
        raise OutOfMemory(f"{job.source}: deblurring this {size} photo{how} needs about "
                          f"{memory.describe(needed)}; {memory.describe(available)} is "
                          "available", tile_size)
    try:
        sharp = deblur(deblurrer, image, tile_size, overlap)  # NaN refused here, first
        outputs = {}
        if job.extras and deblurrer.keras_model is not None:
            rgb = pixels.photo_to_rgb(image)
            maps = attention_image(deblurrer.keras_model, rgb)
            if maps is not None:
                outputs[job.extras["attention"]] = maps
                outputs[job.extras["blur_map"]] = draw_blur_map(
                    rgb, *blur_map(deblurrer.keras_model, rgb))
        outputs[job.output] = sharp
        return outputs
    except (tf.errors.ResourceExhaustedError, MemoryError):
        message = f"{job.source}: ran out of memory deblurring this {size} photo{how}"
    del image
    gc.collect()
    raise OutOfMemory(message, tile_size)


def _open_folder(folder):
    """Creates the output folder if need be and proves it writable (PlanError)."""
    try:
        if is_remote(folder):
            tf.io.gfile.makedirs(folder)
            probe = os.path.join(folder, f".kpac-deblur-probe-{uuid.uuid4().hex}")
            with tf.io.gfile.GFile(probe, "w") as f:
                f.write("kpac-tf")  # an object store creates it on the first write
            tf.io.gfile.remove(probe)
            return
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (OSError, tf.errors.OpError) as e:
        raise PlanError(f"cannot write in the output folder {folder}: "
                        f"{error_reason(e)}") from None


def run(deblurrer, report, tile_size=None, overlap=tiling.OVERLAP, max_pixels=None):
    """Deblurs a `plan`'s jobs in order; fills in `report` and returns it.

    A photo that cannot be read, is over `max_pixels` (checked before decoding) or
    does not fit in memory goes to `report.failed` and the next one goes on. An
    output that cannot be written (read-only or full disk), or a model that gives
    NaN or inf, sets `report.stopped` and ends the run: nothing further is written.

    Args:
        deblurrer: `Deblurrer`.
        report: `Report` from `plan`.
        tile_size, overlap: as for `deblurring.deblur` (None: whole photos).
        max_pixels: int or None, the largest photo read (height x width).

    Raises:
        PlanError: the output folder cannot be created or written (before any photo).
        ValueError: attention outputs planned for a model without Keras layers.
    """
    if any(job.extras for job in report.jobs) and deblurrer.keras_model is None:
        raise ValueError("attention maps need a Keras model, not a SavedModel")
    _open_folder(report.folder)
    manifest = Manifest(report.folder)
    progress = progress_bar(len(report.jobs), "image")
    for job in report.jobs:
        try:
            outputs = _deblur_one(deblurrer, job, tile_size, overlap, max_pixels)
        except NonFiniteOutput as e:
            report.stopped = f"{e}; stopped at {job.source}, nothing written for it"
            report.broken_model = True
            return report
        except (images.ImageReadError, OutOfMemory, ValueError) as e:
            report.failed.append((job.source, e))
            progress.add(1)
            continue
        if _write(job, outputs, manifest, report):
            report.done.append(job.source)
        elif report.stopped:
            return report
        progress.add(1)
    return report


def _write(job, outputs, manifest, report):
    """Writes a job's outputs, each atomically and recorded in the manifest; an
    existing path only if it is ours. Returns True if all were written; otherwise
    the job is skipped (a file appeared), failed, or the run stopped (`report`)."""
    for path, array in outputs.items():
        replace = _exists(path)
        try:
            if replace and not manifest.owns(path):
                raise FileExistsError(path)
            images.write_png(path, array, replace=replace, text={
                "Software": SOFTWARE, "Source": os.path.basename(job.source)})
            manifest.record(path, job.source)
        except FileExistsError:  # before the write, or during it
            report.skipped.append((job.source, "in_the_way", (
                f"{path} appeared during the run and was not written by this app; it "
                "is left as it is")))
            return False
        except OSError as e:
            reason = f"cannot write {path}: {e.strerror or e}"
            if e.errno in _WRITE_STOPS:
                report.stopped = reason
            else:
                report.failed.append((job.source, OSError(reason)))
            return False
        except tf.errors.OpError as e:  # a remote write (permission, quota, network)
            report.stopped = f"cannot write {path}: {error_reason(e)}"
            return False
    return True
