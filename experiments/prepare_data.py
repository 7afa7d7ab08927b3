r"""Builds a dataset into a TFDS data folder (what `tfds build` does, from Python).

python -m experiments.prepare_data --dataset=dpdd --config=single \
    --manual_dir=~/dpdd --data_dir=~/tensorflow_datasets

The synthetic dataset needs no --manual_dir; DPDD needs the extracted official
archive (see datasets/dpdd/README.md).
"""

from absl import app, flags, logging

from kpac_tf import data

_DATASET = flags.DEFINE_enum("dataset", "synthetic", sorted(data.DATASETS),
                             "Dataset to build.")
_CONFIG = flags.DEFINE_string(
    "config", None, "Builder config: default|tiny (synthetic), single|dual (dpdd). "
    "Default: the builder's default.")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "TFDS data folder (default ~/tensorflow_datasets).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                  "Extracted DPDD archive (dpdd only).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        builder = data.prepare(_DATASET.value, _DATA_DIR.value, _CONFIG.value,
                               _MANUAL_DIR.value)
    except (ValueError, FileNotFoundError, AssertionError) as e:
        raise SystemExit(f"prepare_data: {e}") from None
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    logging.info("Prepared %s in %s: %s", builder.info.full_name, builder.data_dir, splits)


if __name__ == "__main__":
    app.run(main)
