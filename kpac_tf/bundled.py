"""The model that ships inside kpac-tf, for deblurring without downloading anything.

A single_2level network trained by `experiments.train` on the synthetic defocus
dataset (`datasets/synthetic_defocus`), NOT on DPDD: it has seen rendered thin-lens
blur of bundled photographs and textures, never real camera defocus. The authors'
DPDD checkpoints are better on real photos; convert them with
`experiments.convert_tf1` when you have them.

Stored in the authors' checkpoint format (`weights/single_2level_synthetic.npz`, read
by the array-only loader) with its provenance (`.json`: command, steps, seed, wall
time, scores on the synthetic test split).
"""

import json
import os

from kpac_tf import checkpoints

NAME = "single_2level"
LABEL = "single_2level trained on synthetic defocus, not DPDD"
WEIGHTS_PATH = os.path.join(os.path.dirname(__file__), "weights",
                            "single_2level_synthetic.npz")
INFO_PATH = os.path.splitext(WEIGHTS_PATH)[0] + ".json"


def bundled_info():
    """Provenance and measured scores of the bundled weights (dict)."""
    _check_present()
    with open(INFO_PATH) as f:
        return json.load(f)


def weights_path():
    """Path of the bundled weights (authors' npz format); load them with
    `kpac_tf.load_deblurrer()`."""
    _check_present()
    return WEIGHTS_PATH


def _check_present():
    for path in (WEIGHTS_PATH, INFO_PATH):
        if not os.path.isfile(path):
            raise checkpoints.CheckpointError(
                f"{path}: no bundled weights in this installation; give a checkpoint "
                "(--checkpoint): a training run of experiments.train, a .keras file, or "
                "an authors' .npz with --model")
