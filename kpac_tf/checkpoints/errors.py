"""The one error every checkpoint reader and writer raises: a file that cannot be read,
written or assigned, named in the message with the way on; its kind for a network
name that is missing or wrong."""


class CheckpointError(ValueError):
    """An authors'-format checkpoint could not be read, written or assigned."""


class NetworkNameError(CheckpointError):
    """The network name given with a checkpoint is missing, or not the one it holds
    (its tensors do not fit that network): an app words it as its --model flag, the
    other checkpoint errors as --checkpoint."""
