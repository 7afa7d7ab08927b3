"""File helpers: outputs appear complete or not at all."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path`; moves it onto `path` on success.

    The temporary file keeps `path`'s suffix (Keras insists on `.keras`). On any
    error it is removed and an existing `path` is left as it was.

    Example:
    >>> with atomic_output("model.keras") as tmp:
    ...     model.save(tmp)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output folder {directory} does not exist; create it "
                                f"first or choose another path for {path}")
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
