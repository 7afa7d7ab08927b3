"""kpac-tf: KPAC single-image defocus deblurring (Son et al., ICCV 2021) in TF2/Keras 3."""

import pathlib
import re

from setuptools import find_packages, setup

# The version lives in kpac_tf/__init__.py only; read, not imported (that needs TF).
VERSION = re.search(r"^__version__ = [\"']([^\"']+)[\"']$",
                    (pathlib.Path(__file__).parent / "kpac_tf" / "__init__.py").read_text(),
                    re.M).group(1)

EXPORT = ["tf2onnx", "onnxruntime", "ai-edge-litert"]
HELD_OUT = ["scikit-learn"]
DEMO = ["gradio>=6"]  # gr.ImageSlider; tested with 6.31
# The `tfds` command of tensorflow-datasets 4.9.10 imports these at start-up (our apps
# build the datasets without it: experiments.prepare_data).
TFDS_CLI = ["apache-beam", "mlcroissant"]

setup(
    name="kpac-tf",
    version=VERSION,
    description=("Kernel-Sharing Parallel Atrous Convolutions for single-image defocus "
                 "deblurring (ICCV 2021), reproduced in TensorFlow 2 / Keras 3"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # Our code and the bundled weights; third-party terms (the authors' code and
    # weights, DPDD, the photographs) are in NOTICE.
    license="Apache-2.0",
    license_files=["LICENSE", "NOTICE"],
    python_requires=">=3.10",
    # The apps in experiments/ install as `kpac_tf_experiments` (a distinct name, so
    # nothing called `experiments` lands in site-packages); from a clone they also
    # run as `python -m experiments.<app>`. The TFDS builders install inside kpac_tf
    # (kpac_tf/datasets/); the top-level datasets/ holds only entry points for
    # `tfds build datasets/<name>` from a clone (and is HuggingFace's import name).
    packages=find_packages(include=["kpac_tf", "kpac_tf.*"]) + ["kpac_tf_experiments"],
    package_dir={"kpac_tf_experiments": "experiments"},
    # The bundled model (kpac_tf.deploy.bundled), and the builders' metadata that TFDS
    # reads beside them.
    package_data={"kpac_tf": ["deploy/weights/*.npz", "deploy/weights/*.json",
                              "datasets/*/README.md", "datasets/*/CITATIONS.bib"]},
    entry_points={"console_scripts": [
        "kpac-train = kpac_tf_experiments.train:run",
        "kpac-evaluate = kpac_tf_experiments.evaluate:run",
        "kpac-deblur = kpac_tf_experiments.deblur:run",
        "kpac-export = kpac_tf_experiments.export:run",
    ]},
    install_requires=[
        "tensorflow>=2.18",
        "keras>=3",
        "numpy",
        "absl-py",
        "imageio",
        "tensorboard",  # tf.summary needs it; TensorFlow 2.21 no longer brings it
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets 4.9.10 imports it to build a dataset, without requiring it.
        "importlib_resources",
        # Bundled sample photographs for the synthetic defocus dataset.
        "scikit-image",
        # experiments.evaluate's report.png, the held-out checks' figures.
        "matplotlib",
    ],
    extras_require={
        # experiments.export --format=litert|onnx, and the runtimes that run the files.
        "export": EXPORT,
        # The held-out photographs of kpac_tf.evaluation.held_out (experiments.ship_model).
        "held_out": HELD_OUT,
        # experiments.demo, the local web page.
        "demo": DEMO,
        # `tfds build datasets/<name>` from a clone.
        "tfds-cli": TFDS_CLI,
        # dill: tensorflow-datasets' DatasetBuilderTestCase imports it; pytest-xdist runs the
        # suite in two processes (README's test command); playwright drives Debian's
        # chromium through the demo page (tests/experiments/test_demo.py);
        # tensorflow-serving-api runs docs/serving.md's gRPC client against a stand-in.
        "test": ["pytest>=7", "pytest-xdist>=3", "dill", "playwright",
                 "tensorflow-serving-api"] + EXPORT + HELD_OUT + DEMO + TFDS_CLI,
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
)
