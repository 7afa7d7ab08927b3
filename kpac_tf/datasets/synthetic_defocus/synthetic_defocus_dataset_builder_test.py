"""TFDS tests of the synthetic defocus builder (the `tiny` config)."""

import pathlib

import tensorflow_datasets as tfds

from kpac_tf.datasets.synthetic_defocus import synthetic_defocus_dataset_builder


class SyntheticDefocusTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = synthetic_defocus_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"train": 6, "validation": 2, "test": 3}
    # Nothing is downloaded; TFDS's test case still wants an existing folder.
    EXAMPLE_DIR = str(pathlib.Path(__file__).parent)
    MOCK_OUT_FORBIDDEN_OS_FUNCTIONS = False  # scikit-image opens its bundled files
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
