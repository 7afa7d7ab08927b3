"""File helpers: outputs appear complete or not at all, on a local disk or anywhere
TensorFlow's filesystem layer writes (`gs://`, `s3://`, `hdfs://`, `ram://`).

"Atomic" per filesystem: on a local disk a temporary file beside the output is
renamed onto it; elsewhere (an object store) the file is written locally and then
uploaded whole with `tf.io.gfile.copy`, so the object appears complete or not at all.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile


def is_remote(path):
    """True for a path with a filesystem scheme (gs://, s3://, hdfs://, ram://, ...):
    it goes through `tf.io.gfile`, never through `os`."""
    path = os.fspath(path)
    return "://" in path and not path.startswith("file://")


def refuse_remote(path, what, why):
    """ValueError naming `what` and `why` when `path` is on cloud storage (or any
    filesystem other than a local disk), which this use of it cannot take."""
    if path is not None and is_remote(path):
        raise ValueError(f"{what} {path}: {why}; give a local path")


def error_reason(error):
    """A failed file operation's reason in a few words: an OSError's strerror, or
    the first line of TensorFlow's message (its error's name when it gives none)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = str(getattr(error, "message", None) or error).strip().splitlines()
    if lines:
        return lines[0]
    words = re.sub(r"(?<!^)([A-Z])", r" \1", type(error).__name__.removesuffix("Error"))
    return words.lower() or "failed"


def output_folder(path):
    """The folder `path` will be written in; FileNotFoundError naming the fix if it
    does not exist (check before slow work, not after). A remote path's folder is
    not checked: an object store has none to create."""
    path = os.fspath(path)
    if is_remote(path):
        return path.rsplit("/", 1)[0]
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output folder {directory} does not exist; create it "
                                f"first or choose another path for {path}")
    return directory


@contextlib.contextmanager
def atomic_output(path, replace=True):
    """Yields a temporary path beside `path`; moves it onto `path` on success.

    The temporary file keeps `path`'s suffix (Keras insists on `.keras`). On any
    error it is removed and an existing `path` is left as it was. A new file gets the
    permissions of a plainly created one (`apply_umask`), not the temporary's 0600; a
    replaced one keeps its mode. With `replace=False` a file already at `path`, even
    one that appeared while the temporary was written, is never replaced: the move is
    a hard link, which fails if `path` exists (FileExistsError naming it); on a
    filesystem without hard links, `path` is checked just before a rename.

    Example:
    >>> with atomic_output("model.keras") as tmp:
    ...     model.save(tmp)
    """
    path = os.fspath(path)
    if is_remote(path):
        with _uploaded(path, replace) as tmp:
            yield tmp
        return
    directory = output_folder(path)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(path):  # a replaced file keeps its mode, as open(path, "w")
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:
            apply_umask(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _move_without_replacing(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _uploaded(path, replace):
    """`atomic_output` for a remote `path`: a local temporary file, uploaded whole."""
    import tensorflow as tf

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        try:
            if replace:
                before_overwrite(path)
            tf.io.gfile.copy(tmp, path, overwrite=replace)
        except tf.errors.AlreadyExistsError:
            raise FileExistsError(f"{path} appeared while it was being written") from None
    finally:
        os.unlink(tmp)


def before_overwrite(path):
    """Call before replacing a remote file: TensorFlow's `ram://` filesystem appends
    to a file opened for writing instead of replacing it (gs://, s3:// and local
    disks replace), so there the old file is removed first."""
    import tensorflow as tf

    if os.fspath(path).startswith("ram://") and tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def publish_folder(folder, target, last=()):
    """Moves a finished local `folder` to `target` so that `target` never holds a
    part of it under its final name: a rename on the same local disk; elsewhere a
    copy through `tf.io.gfile`, file by file, the names in `last` (e.g.
    "saved_model.pb", what a server looks for) after all the others. `folder` is
    removed either way."""
    target = os.fspath(target)
    if not is_remote(target):
        os.rename(folder, target)
        return
    import tensorflow as tf

    files = sorted((os.path.relpath(os.path.join(root, name), folder)
                    for root, _, names in os.walk(folder) for name in names),
                   key=lambda name: (os.path.basename(name) in last, name))
    try:
        for name in files:
            destination = f"{target.rstrip('/')}/{name.replace(os.sep, '/')}"
            tf.io.gfile.makedirs(destination.rsplit("/", 1)[0])
            before_overwrite(destination)
            tf.io.gfile.copy(os.path.join(folder, name), destination, overwrite=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _move_without_replacing(tmp, path):
    """Renames `tmp` to `path` unless `path` exists (FileExistsError)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} appeared while it was being written") from None
    except OSError:  # no hard links here (FAT, some network filesystems)
        if os.path.lexists(path):
            raise FileExistsError(f"{path} appeared while it was being written") from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _umask():
    """The process umask: read from /proc where it can be (setting it to read it, the
    only portable way, would briefly change it for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path):
    """Gives `path`, and everything inside it if it is a folder, the permissions a
    plain `open` / `mkdir` would have given under the process umask: 0666 / 0777
    without the umask's bits. `tempfile.mkstemp` / `mkdtemp` make 0600 / 0700, which
    another user (a TF Serving process, say) cannot read."""
    mask = _umask()
    file_mode, folder_mode = 0o666 & ~mask, 0o777 & ~mask
    if not os.path.isdir(path):
        os.chmod(path, file_mode)
        return
    for root, folders, files in os.walk(path):
        os.chmod(root, folder_mode)
        for name in files:
            os.chmod(os.path.join(root, name), file_mode)


def write_json(path, value, mode=None, **dump_options):
    """Writes `value` as JSON to `path` atomically (`atomic_output`): the file appears
    complete or not at all. `mode` (e.g. 0o644) overrides the permissions of a local
    file; `dump_options` go to `json.dump` (`indent`, `sort_keys`)."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, **dump_options)
        if mode is not None:
            os.chmod(tmp, mode)
