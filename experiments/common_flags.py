"""Flags shared by several apps, defined once (absl flags are process-global)."""

from absl import flags

from kpac_tf import data
from kpac_tf.models import MODEL_NAMES

MODEL = flags.DEFINE_enum("model", None, MODEL_NAMES,
                          "Network: single_2level, single_3level or dual.")
DATASET = flags.DEFINE_enum("dataset", None, sorted(data.DATASETS),
                            "Dataset: synthetic (no download) or dpdd.")
DATASET_CONFIG = flags.DEFINE_string(
    "dataset_config", None, "TFDS builder config: default|tiny (synthetic), "
    "single|dual (dpdd). Default: chosen from the dataset and network.")
DATA_DIR = flags.DEFINE_string("data_dir", None,
                               "TFDS data folder (default ~/tensorflow_datasets).")
MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                 "Extracted DPDD archive (dd_dp_dataset_canon.zip).")
CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Model: a .keras file, a training run folder, or an authors' "
    ".npz (with --model). deblur, evaluate and export default to the bundled model "
    "(trained on synthetic defocus, not DPDD).")
OUTPUT = flags.DEFINE_string("output", None, "Output file or folder.")
# Training budget, shared by train and ablations (None: the app's or preset's default).
STEPS = flags.DEFINE_integer("steps", None, "Training steps (paper phase 1: 200000).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size (paper: 4).")
CROP_SIZE = flags.DEFINE_integer("crop_size", None, "Random crop side (paper: 512).")
LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Constant learning rate "
                                   "(paper: 1e-4, phase 2 5e-5).")
SEED = flags.DEFINE_integer("seed", 0, "Seed of initialisation and data order.")
EVAL_IMAGES = flags.DEFINE_integer("eval_images", None,
                                   "Held-out images per evaluation (0: all).")
CHANNELS = flags.DEFINE_integer("channels", None, "Base width c (48).")


def value_or(holder, default):
    """A flag's value, or `default` when it was left unset (None)."""
    return default if holder.value is None else holder.value
