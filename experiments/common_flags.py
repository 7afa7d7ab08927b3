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
    ".npz (with --model).")
OUTPUT = flags.DEFINE_string("output", None, "Output file or folder.")
