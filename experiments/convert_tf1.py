r"""Converts one of the authors' TF1 checkpoints into a Keras model file.

python -m experiments.convert_tf1 --npz=pretrained/single_2level.npz \
    --model=single_2level --output=single_2level.keras

The authors publish single_2level.npz, single_3level.npz and dual.npz with their
code (GitHub HyeongseokSon1/KPAC, folder `pretrained/`); download them by hand.
The converted model is checked against the authors' graph (re-run with raw TF ops
on the checkpoint's tensors) and written only if it matches within 1e-4.
"""

from absl import flags, logging

import kpac_tf
from kpac_tf.checkpoints.conversion import convert_tf1_checkpoint

from .common_flags import LOGGING, MODEL as _MODEL, OUTPUT as _OUTPUT, run_app

_NPZ = flags.DEFINE_string("npz", None, "Authors' checkpoint (.npz) to convert.")


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        report = convert_tf1_checkpoint(_NPZ.value, _MODEL.value, _OUTPUT.value)
    except (kpac_tf.CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"convert_tf1: {e}") from None
    logging.info("Wrote %s", _OUTPUT.value)
    print(f"model: {_MODEL.value}")
    print(f"parameters: {report['params']:,}")
    print(f"max |keras - authors' graph|: {report['max_abs_diff']:.3g}")
    print(f"output checksum (sum |y|, seed-0 input 1x64x96x3): {report['checksum']:.6f}")


FLAG_GROUPS = {"Conversion": [_NPZ, _MODEL, _OUTPUT], "Logging": LOGGING}
REQUIRED_FLAGS = ["npz", "model", "output"]

if __name__ == "__main__":
    run_app(main)
