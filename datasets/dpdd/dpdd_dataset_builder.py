"""`tfds build datasets/dpdd` from a clone of the repository: the builder itself lives
in kpac_tf/datasets/dpdd/ and installs with kpac_tf."""

from kpac_tf.datasets.dpdd import dpdd_dataset_builder as _builder


class Builder(_builder.Builder):
    """kpac_tf's `dpdd` builder (`kpac_tf.datasets.dpdd`), under the module name
    `tfds build datasets/dpdd` imports; its README and citation are the package's."""

    pkg_dir_path = _builder.Builder._get_pkg_dir_path()
