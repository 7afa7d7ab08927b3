"""Flags shared by several apps, defined once (absl flags are process-global), and
the apps' common entry point with grouped `--help`.

Each app lists the flags it reads in `FLAG_GROUPS` ({title: [flag holder or name]})
and starts with `run_app(main, FLAG_GROUPS)`; `--help` prints the app's docstring
and those groups with defaults (`--helpfull` lists every flag of the process).
"""

import sys
import textwrap

from absl import app, flags

from kpac_tf.data import pipelines, pixels
from kpac_tf.deploy import deblurring
from kpac_tf.evaluation import metrics, protocols
from kpac_tf.models.networks import MODEL_NAMES
from kpac_tf.training import settings

MODEL = flags.DEFINE_enum("model", None, MODEL_NAMES,
                          "Network: single_2level, single_3level or dual.")
DATASET = flags.DEFINE_enum("dataset", None, sorted(pipelines.DATASETS),
                            "Dataset: synthetic (no download) or dpdd.")
DATASET_CONFIG = flags.DEFINE_string(
    "dataset_config", None, "TFDS builder config: default|large|photos|tiny (synthetic), "
    "single|dual (dpdd). Default: chosen from the dataset and network.")
DATA_DIR = flags.DEFINE_string("data_dir", None,
                               "TFDS data folder (default ~/tensorflow_datasets).")
MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Extracted DPDD archive (dd_dp_dataset_canon.zip), or for the "
    "synthetic `photos` config the folder of experiments.fetch_photos.")
CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Model: a .keras file, a training run folder (--model_dir of "
    "experiments.train), an authors' .npz (with --model), or for deblur and evaluate an "
    "exported SavedModel. Unset: the bundled model (trained on synthetic defocus, not "
    "DPDD).")
OUTPUT = flags.DEFINE_string("output", None, "Output file or folder.")
PRESET = flags.DEFINE_enum(
    "preset", None, sorted(settings.PRESETS),
    "Training recipe (kpac_tf.training.settings.PRESETS); flags given explicitly override "
    "it. Unset: train uses embedded_default, ablations its CPU budget.")
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


MAX_MEGAPIXELS = flags.DEFINE_float(
    "max_megapixels", None, "Largest photo read, in megapixels, checked from the file's "
    "header before decoding.")
MAX_MEGAPIXELS_DEFAULTS = {"deblur": 100.0, "demo": 50.0}  # 100 MP tiles in about 6 GB


def value_or(holder, default):
    """A flag's value, or `default` when it was left unset (None)."""
    return default if holder.value is None else holder.value


LOGGING = ["verbosity"]  # absl's flag, described here as the apps use it
_OWN_HELP = {"verbosity": (
    "0: the app's progress lines; 1 or more: also TensorFlow's own C++ and Python "
    "log lines and libraries' deprecation warnings (hidden otherwise); -1: warnings "
    "only.", "0"), "max_megapixels": (flags.FLAGS["max_megapixels"].help, ", ".join(
        f"{value:g} for {app_name}" for app_name, value in MAX_MEGAPIXELS_DEFAULTS.items()))}


def keras_model_from_flags():
    """The keras.Model that --checkpoint / --model name (the bundled model if unset).

    Raises:
        ValueError: --checkpoint is an exported SavedModel, which has no Keras model.
    """
    model = deblurring.load_deblurrer(CHECKPOINT.value, MODEL.value).keras_model
    if model is None:
        raise ValueError(f"--checkpoint {CHECKPOINT.value} is an exported SavedModel; "
                         "give the .keras file, training run or .npz it came from")
    return model


def help_text(doc, groups):
    """An app's `--help`: its docstring, then every flag it reads, by group, with
    its default."""
    lines = [(doc or "").strip(), ""]
    for title, entries in groups.items():
        lines.append(f"{title}:")
        for entry in entries:
            flag = flags.FLAGS[getattr(entry, "name", entry)]
            text, default = _OWN_HELP.get(flag.name, (flag.help, flag.default_as_str))
            name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
            lines += textwrap.wrap(f"{name}: {text}", 88, initial_indent="  ",
                                   subsequent_indent="    ")
            lines.append(f"    (default: {default or 'unset'})")
        lines.append("")
    lines.append("--helpfull lists every flag, TensorFlow's and absl's too.")
    return "\n".join(lines)


def run_app(main, groups, required=()):
    """Runs an absl app: `--help` (also -h, -?, --helpshort) prints `help_text`;
    arguments other than flags are refused (absl's usage error)."""
    if any(arg in ("-h", "-?", "--help", "--helpshort") for arg in sys.argv[1:]):
        print(help_text(sys.modules[main.__module__].__doc__, groups))
        sys.exit(0)
    flags.mark_flags_as_required(list(required))

    def checked(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        return main(argv)

    app.run(checked)


TO_8BIT = flags.DEFINE_enum(
    "to_8bit", "round", list(pixels.TO_8BIT),
    "How 16-bit images (DPDD's PNGs) become the 8-bit images the networks see: round "
    "(our choice, round(x / 257); the paper does not say) or high_byte (x >> 8, what "
    "Pillow / scipy.misc.imread give, as in the authors' evaluation code).")

# Scoring (evaluate, compare).
SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                 "Where results go (unset: outputs/<app>).")
INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of blurry/sharp pairs.")
LIMIT = flags.DEFINE_integer("limit", 0, "Evaluate only the first N images (0: all).")
SKIP_BAD = flags.DEFINE_boolean("skip_bad", False,
                                "Skip and list unreadable images instead of aborting.")
BIT_DEPTH = flags.DEFINE_enum(
    "bit_depth", "8", [str(depth) for depth in protocols.BIT_DEPTHS],
    "Scoring bit depth: 8 (the paper's and most single-image papers': 8-bit input, "
    "output quantised to 8 bits) or 16 (Restormer's dual-pixel protocol: 16-bit input, "
    "output at 16 bits against the 16-bit target).")
SSIM = flags.DEFINE_enum(
    "ssim", "uniform", list(metrics.SSIM_WINDOWS),
    "SSIM window: uniform (7x7, sample covariance: scikit-image's defaults, as DPDNet, "
    "IFAN and Restormer score) or gaussian (Wang et al.'s 11x11, sigma 1.5: BasicSR, "
    "MMagic, MATLAB).")
ALL_PROTOCOLS = flags.DEFINE_boolean(
    "all_protocols", False, "Also score under every protocol (bit depth x 16-to-8-bit "
    "conversion x SSIM window) and print Table 4's row under each.")
LPIPS_ALEXNET = flags.DEFINE_string(
    "lpips_alexnet", None, "torchvision's ImageNet AlexNet weights "
    "(alexnet-owt-7be5be79.pth). Unset: $TORCH_HOME/hub/checkpoints/, if there.")
LPIPS_LINEAR = flags.DEFINE_string(
    "lpips_linear", None, "LPIPS v0.1's linear heads (weights/v0.1/alex.pth of the "
    "lpips package). Unset: the installed lpips package's, if there.")
