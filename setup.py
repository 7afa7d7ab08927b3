"""kpac-tf: KPAC single-image defocus deblurring (Son et al., ICCV 2021) in TF2/Keras 3."""

from setuptools import find_packages, setup

setup(
    name="kpac-tf",
    version="0.1.0",
    description=("Kernel-Sharing Parallel Atrous Convolutions for single-image defocus "
                 "deblurring (ICCV 2021), reproduced in TensorFlow 2 / Keras 3"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Only the library is installed; `experiments` run from the repository root.
    packages=find_packages(include=["kpac_tf", "kpac_tf.*"]),
    install_requires=[
        "tensorflow>=2.18",
        "keras>=3",
        "numpy",
        "absl-py",
        "imageio",
        "tensorflow-datasets>=4.9",
        # The `tfds` command of tensorflow-datasets 4.9.10 imports these at start-up.
        "apache-beam",
        "mlcroissant",
        "importlib_resources",
        # Bundled sample photographs for the synthetic defocus dataset.
        "scikit-image",
    ],
    extras_require={
        # dill: tensorflow-datasets' DatasetBuilderTestCase imports it.
        "test": ["pytest>=7", "dill"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
)
