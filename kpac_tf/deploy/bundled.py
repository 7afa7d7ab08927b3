"""The model that ships inside kpac-tf, for deblurring without downloading anything.

One of the authors' single-image networks (`NETWORKS`; which one, its provenance
says) trained by `experiments.train` on the synthetic defocus dataset
(`datasets/synthetic_defocus`), NOT on DPDD: it has seen rendered thin-lens blur of
bundled photographs and textures, never real camera defocus. The authors' DPDD
checkpoints are better on real photos; convert them with `experiments.convert_tf1`
when you have them.

Stored in the authors' checkpoint format (`weights/synthetic.npz`, read by the
array-only loader) with its provenance (`weights/synthetic.json`: network, commands,
steps, seeds, wall time, scores).
"""

import json
import os

from kpac_tf.checkpoints.errors import CheckpointError

# The networks the synthetic data trains (one blurry image in, one sharp image out).
NETWORKS = ("single_2level", "single_3level")
WEIGHTS_PATH = os.path.join(os.path.dirname(__file__), "weights", "synthetic.npz")
INFO_PATH = os.path.splitext(WEIGHTS_PATH)[0] + ".json"


def label(network):
    """How a bundled `network` is named wherever it is used (str)."""
    return f"{network} trained on synthetic defocus, not DPDD"


def bundled_info():
    """Provenance and measured scores of the bundled weights (dict); its "network" is
    one of `NETWORKS`."""
    _check_present()
    with open(INFO_PATH) as f:
        info = json.load(f)
    network = info.get("network") if isinstance(info, dict) else None
    if network not in NETWORKS:
        raise CheckpointError(
            f"{INFO_PATH}: network {network!r} is not one of {NETWORKS}; reinstall kpac-tf")
    return info


def weights_path():
    """Path of the bundled weights (authors' npz format); load them with
    `kpac_tf.load_deblurrer()`."""
    _check_present()
    return WEIGHTS_PATH


def _check_present():
    for path in (WEIGHTS_PATH, INFO_PATH):
        if not os.path.isfile(path):
            raise CheckpointError(
                f"{path}: no bundled weights in this installation; load a checkpoint "
                "instead: a training run of experiments.train, a .keras file, or an "
                "authors' .npz with its network name")
