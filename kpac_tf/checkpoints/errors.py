"""The one error every checkpoint reader and writer raises: a file that cannot be read,
written or assigned, named in the message with the way on."""


class CheckpointError(ValueError):
    """An authors'-format checkpoint could not be read, written or assigned."""
