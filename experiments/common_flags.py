"""Flags shared by several apps, defined once (absl flags are process-global), and
the apps' common entry point with grouped `--help`.

Each app lists the flags it reads in `FLAG_GROUPS` ({title: [flag holder or name]}),
in `FLAG_DEFAULTS` ({name: value}) what a flag left unset stands for where that is
not the flag's own default (e.g. `--output`: `outputs/<app>`), in `REQUIRED_FLAGS`
the flags it cannot run without (either may be left out), and starts with
`run_app(main)`; `--help` prints the app's docstring and those groups with defaults
(`app_help`; `--helpfull` lists every flag of the process).
"""

import dataclasses
import inspect
import re
import sys
import textwrap

from absl import app, flags

from kpac_tf.checkpoints.errors import CheckpointError, NetworkNameError
from kpac_tf.deploy import loading
from kpac_tf.evaluation import metrics, protocols
from kpac_tf.models.networks import build_model
from kpac_tf.training import losses, settings

def _define_setting_flag(name):
    """The flag of a training setting (a `TrainConfig` field) or of a network override
    (`settings.NETWORK_OVERRIDES`), from its declaration. Unset (None) by default:
    a preset's value, or the setting's default, stands unless the flag is given."""
    if name in settings.NETWORK_OVERRIDES:
        kind, text = settings.NETWORK_OVERRIDES[name]
        choices, flag_name = (kind if isinstance(kind, tuple) else None), name
    else:
        field = _SETTINGS[name]
        kind, text, choices = field.type, field.metadata["help"], field.metadata["choices"]
        flag_name = field.metadata["flag"] or name
    if choices:
        return flags.DEFINE_enum(flag_name, None, list(choices), text)
    define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
              float: flags.DEFINE_float}.get(kind, flags.DEFINE_string)
    return define(flag_name, None, text)


_SETTINGS = {field.name: field for field in dataclasses.fields(settings.TrainConfig)}
# {setting or network override: its flag}; model_overrides is set by its parts' flags.
SETTING_FLAGS = {name: _define_setting_flag(name) for name in (
    [name for name in _SETTINGS if name != "model_overrides"]
    + list(settings.NETWORK_OVERRIDES))}
# The settings other apps read too.
MODEL, CHANNELS, SEED = (SETTING_FLAGS[name] for name in ("model", "channels", "seed"))
DATASET, DATASET_CONFIG, DATA_DIR, MANUAL_DIR, TO_8BIT = (SETTING_FLAGS[name] for name in (
    "dataset", "dataset_config", "data_dir", "manual_dir", "to_8bit"))
STEPS, BATCH_SIZE, CROP_SIZE, LEARNING_RATE, EVAL_IMAGES = (SETTING_FLAGS[name] for name in (
    "steps", "batch_size", "crop_size", "learning_rate", "eval_images"))


def is_given(holder):
    """True if the command line (or a test's flagsaver) set the flag, even to its
    default value."""
    return not flags.FLAGS[holder.name].using_default_value


def given_settings(names=SETTING_FLAGS):
    """{setting: value} of the setting flags among `names` given on the command line
    (or by a test's flagsaver); network overrides are gathered in `model_overrides`."""
    given = {}
    for name in names:
        holder = SETTING_FLAGS[name]
        if not is_given(holder):
            continue
        if name in settings.NETWORK_OVERRIDES:
            given.setdefault("model_overrides", {})[name] = holder.value
        else:
            given[name] = holder.value
    return given


def setting_flag_groups():
    """{`--help` group title: [flag holder]}: every setting flag, in its declared
    group and order."""
    groups = {}
    for name, holder in SETTING_FLAGS.items():
        group = (settings.NETWORK if name in settings.NETWORK_OVERRIDES
                 else _SETTINGS[name].metadata["group"])
        groups.setdefault(group, []).append(holder)
    return groups


def setting_defaults(preset):
    """{flag name: the default `--help` shows}: what an unset setting flag stands
    for under `preset` (the preset's value, else the setting's default)."""
    declared, preset_values = settings.defaults(), settings.PRESETS[preset]
    network = inspect.signature(build_model).parameters
    shown = {PRESET.name: preset}
    for name, holder in SETTING_FLAGS.items():
        if name in preset_values:
            shown[holder.name] = f"{_as_flag_value(preset_values[name])} ({preset}'s)"
        elif declared.get(name) not in (None, dataclasses.MISSING):
            shown[holder.name] = _as_flag_value(declared[name])
        elif name in settings.NETWORK_OVERRIDES:
            shown[holder.name] = f"{_as_flag_value(network[name].default)} (build_model's)"
    return shown


def _as_flag_value(value):
    """A setting's value as one writes it on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    return losses.format_objective(value) if isinstance(value, dict) else str(value)


CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Model: a .keras file, a training run folder (--model_dir of "
    "experiments.train), an authors' .npz (with --model), or for deblur and evaluate an "
    "exported SavedModel.")
OUTPUT = flags.DEFINE_string("output", None, "Output file or folder.")
PRESET = flags.DEFINE_enum(
    "preset", None, sorted(settings.PRESETS),
    "Training recipe (kpac_tf.training.settings.PRESETS); flags given explicitly override "
    "it.")
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
# What shared flags left unset stand for in every app that reads them (an app's
# FLAG_DEFAULTS may say otherwise: train's --model is its preset's).
_UNSET_MEANS = {
    CHECKPOINT.name: "the bundled model (trained on synthetic defocus, not DPDD)",
    MODEL.name: "the network the checkpoint records; an authors' .npz needs --model",
    "input_dir": "the --dataset split", "dataset": "synthetic"}
# A help text that says itself what the flag left unset stands for.
_SAYS_UNSET = re.compile(r"\(default[: ]|\bDefault:|\bUnset:")


def deblurrer_from_flags(precision="float32", checkpoint=CHECKPOINT, model=MODEL):
    """The `Deblurrer` that the `checkpoint` and `model` flags name (the bundled model
    if unset).

    Raises:
        CheckpointError: `load_deblurrer`'s, its sentence ending with the flag to change.
    """
    try:
        return loading.load_deblurrer(checkpoint.value, model.value, precision)
    except CheckpointError as e:
        flag = model if isinstance(e, NetworkNameError) else checkpoint
        raise type(e)(f"{e} (--{flag.name})") from None


def keras_model_from_flags():
    """The keras.Model that --checkpoint / --model name (the bundled model if unset).

    Raises:
        ValueError: --checkpoint is an exported SavedModel, which has no Keras model.
    """
    model = deblurrer_from_flags().keras_model
    if model is None:
        raise ValueError(f"--checkpoint {CHECKPOINT.value} is an exported SavedModel; "
                         "give the .keras file, training run or .npz it came from")
    return model


def help_text(doc, groups, defaults=None, required=()):
    """An app's `--help`: its docstring, then every flag it reads, by group, with
    its default (`defaults`: {flag name: the default to show}, for flags whose
    unset value means one; none shown when the help text says it) or "required"
    (`required`: flag names)."""
    lines = [(doc or "").strip(), ""]
    for title, entries in groups.items():
        lines.append(f"{title}:")
        for entry in entries:
            flag = flags.FLAGS[getattr(entry, "name", entry)]
            text, default = _OWN_HELP.get(flag.name, (flag.help, flag.default_as_str))
            default = (defaults or {}).get(flag.name, default or _UNSET_MEANS.get(flag.name))
            name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
            lines += textwrap.wrap(f"{name}: {text}", 88, initial_indent="  ",
                                   subsequent_indent="    ")
            if flag.name in required:
                lines.append("    (required)")
            elif default or not _SAYS_UNSET.search(text):
                lines.append(f"    (default: {default or 'unset'})")
        lines.append("")
    lines.append("--helpfull lists every flag, TensorFlow's and absl's too.")
    return "\n".join(lines)


def app_help(module):
    """The `--help` of the app `module`, from its docstring, FLAG_GROUPS, and its
    FLAG_DEFAULTS and REQUIRED_FLAGS if it has them (`help_text`)."""
    return help_text(module.__doc__, module.FLAG_GROUPS,
                     getattr(module, "FLAG_DEFAULTS", None),
                     getattr(module, "REQUIRED_FLAGS", ()))


def run_app(main):
    """Runs the absl app whose module defines `main`: `--help` (also -h, -?,
    --helpshort) prints `app_help`; its REQUIRED_FLAGS are required; arguments other
    than flags are refused (absl's usage error)."""
    module = sys.modules[main.__module__]
    if any(arg in ("-h", "-?", "--help", "--helpshort") for arg in sys.argv[1:]):
        print(app_help(module))
        sys.exit(0)
    flags.mark_flags_as_required(list(getattr(module, "REQUIRED_FLAGS", ())))
    groups = module.FLAG_GROUPS

    def checked(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        # Every app sees every training setting's flag (flags are process-wide); one
        # the app does not read is refused, not ignored.
        listed = {getattr(entry, "name", entry) for entries in groups.values()
                  for entry in entries}
        for holder in SETTING_FLAGS.values():
            if holder.name not in listed and is_given(holder):
                raise app.UsageError(f"--{holder.name} is not a flag of this app "
                                     "(--help lists its flags)")
        return main(argv)

    app.run(checked)


# Scoring (evaluate, compare).
SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                 "Where results go, local or gs:// and the like.")
INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of blurry/sharp pairs, "
                                "scored instead of a dataset split.")
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
