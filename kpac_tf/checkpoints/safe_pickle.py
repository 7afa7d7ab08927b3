"""Unpickling that never runs code named by the file, and bounded zip reads.

The authors' TF1 `.npz` files (`tf1_npz`) and PyTorch `.pth` files (`pytorch`) are
pickles; both go through `RestrictedUnpickler`, which hands out only the objects a
format's table admits and refuses everything else before it runs.
"""

import pickle

from kpac_tf.checkpoints.errors import CheckpointError


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something other than numpy arrays."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that never runs code named by the file.

    `find_class` hands out only the objects in the subclass's `allowed` table
    ((module, name) -> the object to use instead, often a checking stand-in);
    anything else, and any persistent id a subclass does not handle, raises
    `_Refused`. `restricted_load` turns that into a `CheckpointError`. Used for
    the authors' TF1 `.npz` files here and for PyTorch `.pth` files in
    `kpac_tf.checkpoints.pytorch`.
    """

    allowed = {}
    admits = "the objects this format needs"  # completes "only ... are allowed"

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _Refused(
                f"refusing to load '{module}.{name}': only {self.admits} are allowed "
                "in a checkpoint") from None

    def persistent_load(self, pid):
        del pid
        raise _Refused("persistent ids are not allowed in a checkpoint")


def restricted_load(unpickler, stream, source, what, **kwargs):
    """Unpickles one object from `stream` with `unpickler` (a `RestrictedUnpickler`
    class or a factory of one; `kwargs` go to it).

    Raises:
        CheckpointError: naming `source`: "refused, the file may be hostile" when
            the pickle asks for anything not allowed, "corrupt <what>" when the
            stream is malformed.
    """
    try:
        return unpickler(stream, **kwargs).load()
    except CheckpointError:
        raise
    except _Refused as e:
        raise CheckpointError(f"{source}: refused, the file may be hostile: {e}") from None
    except Exception as e:  # any malformed pickle stream
        raise CheckpointError(f"{source}: corrupt {what} ({type(e).__name__}: {e})") from None


def read_zip_member(archive, name, limit, source, hint=""):
    """The bytes of member `name` of an open zip, refused unread over `limit` bytes.

    Not `archive.read`: it inflates all the compressed data (up to 2 GiB a step)
    before cutting it to the declared size, so a member that under-declares could
    take gigabytes. Reading the declared size inflates no more than that, and still
    checks the CRC. A compression-ratio limit would add nothing: memory is bounded
    by the declared size either way, as it is for a stored member that size.
    zipfile's own errors (corrupt, encrypted, CRC) propagate to the caller.
    """
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise CheckpointError(
            f"{source}: '{name}' declares {info.file_size:,} bytes uncompressed, over "
            f"the {limit:,}-byte limit{hint}; refused unread, the file may be hostile")
    with archive.open(info) as member:
        return member.read(info.file_size)
