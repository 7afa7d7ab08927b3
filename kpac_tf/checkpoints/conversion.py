"""Converting the authors' TF1 checkpoints to Keras files, validated, not trusted."""

import os

import keras
import numpy as np

from kpac_tf.checkpoints.errors import CheckpointError
from kpac_tf.checkpoints.tf1_graph import tf1_forward
from kpac_tf.checkpoints.tf1_npz import assign_tf1_tensors, read_tf1_npz
from kpac_tf.models.networks import build_model
from kpac_tf.utils.files import atomic_output


def validation_inputs(name, seed=0, batch=1, height=64, width=96):
    """Fixed pseudo-random inputs in [-1, 1] for network `name` (a list for "dual")."""
    rng = np.random.RandomState(seed)
    shape = (batch, height, width, 3)
    images = [rng.uniform(-1, 1, shape).astype(np.float32)
              for _ in range(3 if name == "dual" else 1)]
    return images if name == "dual" else images[0]


def convert_tf1_checkpoint(npz_path, name, output_path, tolerance=1e-4):
    """Converts an authors' `.npz` into a Keras model file, validated twice.

    The converted model must match the authors' graph as re-expressed with raw TF
    ops (`kpac_tf.checkpoints.tf1_graph`, run on the checkpoint's raw tensors; itself checked
    against the authors' TF1 output in the tests) within `tolerance` on a fixed input, and the
    written `.keras` file must reload to identical outputs. The file is written
    atomically and only if both checks pass.

    Args:
        npz_path: str. The authors' checkpoint.
        name: str. Network name, as for `build_model`.
        output_path: str. Destination `.keras` file.
        tolerance: float. Max-abs tolerance against the authors' graph.

    Returns:
        dict with `params` (int), `max_abs_diff` (float, vs the authors' graph),
        `checksum` (float, sum of |output| on `validation_inputs(name)`).

    Raises:
        CheckpointError: unreadable checkpoint, wrong network, or a failed check.
    """
    tensors = read_tf1_npz(npz_path)
    model = assign_tf1_tensors(build_model(name), tensors, source=os.fspath(npz_path))
    inputs = validation_inputs(name)
    ours = model(inputs).numpy()
    theirs = tf1_forward(name, tensors, *(inputs if name == "dual" else [inputs]))
    diff = float(np.max(np.abs(ours - theirs)))
    if not diff <= tolerance:
        raise CheckpointError(f"{npz_path}: converted {name} differs from the authors' "
                              f"graph by {diff:.3g} (tolerance {tolerance:g})")
    if not os.fspath(output_path).endswith(".keras"):
        raise CheckpointError(f"output {output_path} must end with .keras")
    with atomic_output(output_path) as tmp:
        model.save(tmp)
        reloaded = keras.models.load_model(tmp)
        if not np.array_equal(reloaded(inputs).numpy(), ours):
            raise CheckpointError(f"{output_path}: reloaded model's outputs differ")
    return {"params": model.count_params(), "max_abs_diff": diff,
            "checksum": float(np.sum(np.abs(ours), dtype=np.float64))}
