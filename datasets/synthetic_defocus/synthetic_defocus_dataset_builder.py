"""`tfds build datasets/synthetic_defocus` from a clone of the repository: the builder itself lives
in kpac_tf/datasets/synthetic_defocus/ and installs with kpac_tf."""

from kpac_tf.datasets.synthetic_defocus import synthetic_defocus_dataset_builder as _builder


class Builder(_builder.Builder):
    """kpac_tf's `synthetic_defocus` builder (`kpac_tf.datasets.synthetic_defocus`),
    under the module name `tfds build datasets/synthetic_defocus` imports; its README
    and citation are the package's."""

    pkg_dir_path = _builder.Builder._get_pkg_dir_path()
