r"""Builds a dataset into a TFDS data folder (what `tfds build` does, from Python).

python -m experiments.prepare_data --dataset=dpdd --dataset_config=single \
    --manual_dir=~/dpdd --data_dir=~/tensorflow_datasets

The synthetic dataset needs no --manual_dir, except its `photos` config (the folder of
experiments.fetch_photos); DPDD needs the extracted official archive (see
kpac_tf/datasets/dpdd/README.md).
"""

from absl import logging

from kpac_tf.data import pipelines

from .common_flags import (DATA_DIR as _DATA_DIR, DATASET as _DATASET,
                           DATASET_CONFIG as _CONFIG, LOGGING, MANUAL_DIR as _MANUAL_DIR,
                           run_app)


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        builder = pipelines.prepare(_DATASET.value or "synthetic", _DATA_DIR.value,
                               _CONFIG.value, _MANUAL_DIR.value)
    except (ValueError, FileNotFoundError, AssertionError) as e:
        raise SystemExit(f"prepare_data: {e}") from None
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    logging.info("Prepared %s in %s: %s", builder.info.full_name, builder.data_dir, splits)


FLAG_GROUPS = {"Data": [_DATASET, _CONFIG, _DATA_DIR, _MANUAL_DIR], "Logging": LOGGING}

if __name__ == "__main__":
    run_app(main)
