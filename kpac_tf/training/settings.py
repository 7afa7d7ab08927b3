"""A training run's settings: `TrainConfig` (defaults are the paper's recipe), named
presets, and the run identity a resumed run must keep (checked against config.json).
"""

import dataclasses
import json

import tensorflow as tf

from kpac_tf.data import pipelines, pixels
from kpac_tf.models.networks import BLOCK_TYPES, MODEL_NAMES
from kpac_tf.training import losses, run_folder
from kpac_tf.utils.files import refuse_remote, write_json


# Keras dtype policies training runs under (`TrainConfig.precision`).
TRAINING_PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# tf.distribute strategies (`TrainConfig.strategy`; see `cluster.make_strategy`).
STRATEGIES = ("default", "mirrored", "multi_worker")

# The `--help` groups of the settings' flags, in order.
RUN = "Recipe and run folder"
NETWORK = "Network (unset: the authors' network)"
DATA = "Data"
OPTIMISATION = "Optimisation (unset: the preset's)"
HARDWARE = "Hardware and precision"
AVERAGING = "Weight averaging"
RHYTHM = "Progress, evaluation and checkpoints"


def setting(default, help, group, *, identity, path=False, choices=None, flag=None):
    """A `TrainConfig` field with all a setting is: its default, `help` (also the
    flag's), its flag's `group`, whether it is part of the run's `identity` (a
    resumed run must keep it) or may change on resume, whether it is a `path`
    (a place that may differ between machines), its `choices`, and its flag's name
    if not the field's. `dataclasses.MISSING` as default: required."""
    if isinstance(default, dict):
        given = dict(default_factory=lambda: dict(default))
    else:
        given = {} if default is dataclasses.MISSING else dict(default=default)
    return dataclasses.field(**given, metadata=dict(
        help=help, group=group, identity=identity, path=path, choices=choices,
        flag=flag))


# build_model's keyword arguments a run may override (`TrainConfig.model_overrides`,
# the ablations of Tables 1-3), with their flags' type (or choices) and help.
NETWORK_OVERRIDES = dict(
    channels=(int, "Base width c."),
    num_blocks=(int, "KPAC (or residual) blocks."),
    kernel_size=(int, "Shared atrous kernel size."),
    num_dilations=(int, "Atrous rates 1..n."),
    share_weights=(bool, "One kernel for all rates."),
    scale_attention=(bool, "Scale attention."),
    shape_attention=(bool, "Shape attention."),
    block_type=(BLOCK_TYPES, "kpac, or residual (Table 2 baseline)."))


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on, each setting declared once (`setting`):
    the flags of `experiments.train`, its `--help`, preset merging and the resume
    checks all come from these declarations. Defaults are the paper's recipe."""

    model_dir: str = setting(
        dataclasses.MISSING, "Output folder, local or gs:// and the like (default "
        "outputs/<preset>); re-using it resumes the run.", RUN, identity=False, path=True)
    init_from: str = setting(
        None, "Weights to start from: .keras, an authors' .npz, or a training run "
        "folder (its final model, or its newest checkpoint); ignored when resuming.",
        RUN, identity=False, path=True)
    resume_from: int = setting(
        None, "Resume from the run's checkpoint of this step instead of the newest "
        "(when the newest is damaged: the message names the step).", RUN, identity=False)
    seed: int = setting(0, "Seed of initialisation and data order.", RUN, identity=True)
    model: str = setting("single_2level", "Network: single_2level, single_3level or "
                         "dual.", NETWORK, identity=True, choices=MODEL_NAMES)
    model_overrides: dict = setting(
        {}, "build_model overrides (the ablations); one flag each: "
        + ", ".join(f"--{name}" for name in NETWORK_OVERRIDES) + ".", NETWORK,
        identity=True)
    dataset: str = setting("dpdd", "Dataset: synthetic (no download) or dpdd.", DATA,
                           identity=True, choices=pipelines.DATASETS)
    dataset_config: str = setting(
        None, "TFDS builder config: default|large|photos|tiny (synthetic), single|dual "
        "(dpdd). Default: chosen from the dataset and network "
        "(`pipelines.dataset_config`).", DATA, identity=True)
    data_dir: str = setting(None, "TFDS data folder, local or gs:// and the like "
                            "(default ~/tensorflow_datasets).", DATA, identity=False,
                            path=True)
    cache_dir: str = setting(
        None, "Local folder for the training split decoded once to 8-bit (default: "
        "beside a local --data_dir's dataset, else the system's temporary folder). "
        "Never cloud storage: every crop reads it.", DATA, identity=False, path=True)
    manual_dir: str = setting(
        None, "Extracted DPDD archive (dd_dp_dataset_canon.zip), or for the synthetic "
        "`photos` config the folder of experiments.fetch_photos; first run only.", DATA,
        identity=False, path=True)
    to_8bit: str = setting(
        "round", "How 16-bit images (DPDD's PNGs) become the 8-bit images the networks "
        "see: round (our choice, round(x / 257); the paper does not say) or high_byte "
        "(x >> 8, what Pillow / scipy.misc.imread give, as in the authors' evaluation "
        "code). See kpac_tf.data.pixels.", DATA, identity=True,
        choices=tuple(pixels.TO_8BIT))
    steps: int = setting(200_000, "Training steps (paper phase 1: 200000).",
                         OPTIMISATION, identity=False)
    batch_size: int = setting(4, "Global batch size (paper: 4).", OPTIMISATION,
                              identity=True)
    crop_size: int = setting(512, "Random crop side (paper: 512).", OPTIMISATION,
                             identity=True)
    flips: bool = setting(False, "Random flips (the paper uses none).", OPTIMISATION,
                          identity=True)
    learning_rate: float = setting(1e-4, "Constant learning rate (paper: 1e-4, phase 2 "
                                   "5e-5).", OPTIMISATION, identity=True)
    beta_1: float = setting(0.9, "Adam's beta_1.", OPTIMISATION, identity=True)
    beta_2: float = setting(0.99, "Adam's beta_2 (the authors': 0.99).", OPTIMISATION,
                            identity=True)
    epsilon: float = setting(1e-8, "Adam's epsilon (TF1's: 1e-8).", OPTIMISATION,
                             identity=True)
    loss: dict = setting(
        {"mae": 1.0}, "The objective, NAME:WEIGHT,...: a weighted sum of the losses in "
        "kpac_tf.training.losses.LOSSES: mae, charbonnier, perceptual (VGG19 "
        "block4_conv4; needs --vgg19_weights) and any registered there. The paper: "
        "mae:1, then mae:1,perceptual:0.0007.", OPTIMISATION, identity=True)
    vgg19_weights: str = setting(
        None, "Local VGG19 ImageNet no-top weights file (Keras' "
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5).", OPTIMISATION,
        identity=False, path=True)
    # The strategy may change as long as the number of workers stays (`workers`): it
    # only spreads each worker's batch over its devices.
    strategy: str = setting("default", "tf.distribute strategy (multi_worker reads "
                            "TF_CONFIG).", HARDWARE, identity=False, choices=STRATEGIES)
    precision: str = setting(
        "float32", "Keras dtype policy of training: float32; mixed_bfloat16 (bfloat16 "
        "compute, float32 weights), for CPUs with AVX512-BF16 / AMX (speed: "
        "benchmarks/training_precision.py); mixed_float16 (float16 compute, loss "
        "scaling) where the kernels have float16 gradients of dilated convolutions "
        "(GPUs, CPUs with AVX512-FP16; elsewhere the first step says so). Evaluation "
        "and the saved model are float32 either way.", HARDWARE, identity=True,
        choices=TRAINING_PRECISIONS, flag="training_precision")
    deterministic: bool = setting(
        True, "TensorFlow's op determinism (for the whole process), so a run and its "
        "resumption give the same weights on GPUs too (CPUs are deterministic either "
        "way); off, a GPU may pick faster nondeterministic convolution gradients.",
        HARDWARE, identity=False)
    steps_per_loop: int = setting(
        1, "Steps run inside one compiled loop before Python reads the loss and the "
        "workers agree on stopping. Larger keeps a fast GPU busy; logs, evaluations "
        "and saves still happen on their exact steps, SIGTERM waits for the loop to "
        "end, and the weights are the same for any value.", HARDWARE, identity=False)
    ema_decay: float = setting(
        0.0, "Exponential moving average of the weights after every step (0: off; "
        "e.g. 0.999 for long runs, 0.99 for a few hundred steps: the average starts at "
        "the initial weights, which keep a share of decay ** steps). When on, the "
        "average is what is evaluated, kept as best and saved as the final model.",
        AVERAGING, identity=True)
    log_every: int = setting(100, "Steps between progress logs.", RHYTHM, identity=False)
    eval_every: int = setting(5000, "Steps between evaluations.", RHYTHM, identity=False)
    eval_images: int = setting(
        10, "Validation images scored at each evaluation (0: all); the best checkpoint "
        "is chosen on them.", RHYTHM, identity=False)
    save_every: int = setting(1000, "Steps between checkpoints.", RHYTHM, identity=False)

    def __post_init__(self):
        self.loss = losses.parse_objective(self.loss)  # checked; "mae:1" -> {"mae": 1.0}
        for field in dataclasses.fields(self):  # before config.json records them
            choices, value = field.metadata["choices"], getattr(self, field.name)
            if choices and value not in choices:
                raise ValueError(f"{field.name} must be one of {tuple(choices)}, got {value!r}")
        unknown = sorted(set(self.model_overrides) - set(NETWORK_OVERRIDES))
        if unknown:
            raise ValueError(f"model_overrides {unknown} are not among build_model's: "
                             f"{sorted(NETWORK_OVERRIDES)}")
        for name in ("steps_per_loop", "log_every", "eval_every", "save_every"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")
        refuse_remote(self.cache_dir, "cache_dir",
                      "every training crop reads the cache, so it stays on a local disk")


# Named starting points; explicit settings override them.
PRESETS = {
    # A few minutes on 2 CPU cores, no download: proves the model learns.
    "embedded_default": dict(dataset="synthetic", steps=500, crop_size=128,
                             learning_rate=1e-3, log_every=25, eval_every=250,
                             save_every=100, eval_images=40),
    # The paper's two phases (Sec. 5).
    "paper_phase1": dict(dataset="dpdd", steps=200_000, batch_size=4, crop_size=512,
                         learning_rate=1e-4, loss={"mae": 1.0}),
    # experiments.ablations' budget on 2 CPU cores: every variant alike, scored on all
    # held-out images.
    "ablations_cpu": dict(dataset="synthetic", steps=2000, batch_size=4, crop_size=128,
                          learning_rate=1e-3, eval_images=0),
    "paper_phase2": dict(dataset="dpdd", steps=100_000, batch_size=4, crop_size=512,
                         learning_rate=5e-5, loss={"mae": 1.0, "perceptual": 7e-4}),
}


# What a resumed run must keep (the settings declared `identity`, and the number of
# workers, each of which reads its own stream), and the settings that name places.
IDENTITY = tuple(f.name for f in dataclasses.fields(TrainConfig)
                 if f.metadata["identity"]) + ("workers",)
PATHS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["path"])


def make_config(preset=None, **settings):
    """A `TrainConfig` from a preset name plus explicit settings (which win; None
    values are not settings). `perceptual_weight=w`, the objective's setting before
    `loss`, still reads as `loss={"mae": 1, "perceptual": w}` (MAE alone for 0)."""
    values = _preset_values(preset)
    settings = {k: v for k, v in settings.items() if v is not None}
    if "perceptual_weight" in settings:
        if "loss" in settings:
            raise ValueError("give the objective once: --loss (e.g. "
                             "mae:1,perceptual:0.0007) or --perceptual_weight, not both")
        settings["loss"] = _objective_of_perceptual_weight(settings.pop("perceptual_weight"))
    values.update(settings)
    config = TrainConfig(**values)
    if preset == "paper_phase2" and not config.init_from:
        raise ValueError("paper_phase2 fine-tunes a phase-1 model: pass --init_from "
                         "(the phase-1 model_dir, a .keras file or an authors' .npz)")
    return config


def _preset_values(preset):
    """A copy of the settings of the preset named `preset` ({} for None).

    Raises:
        ValueError: no preset has that name.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return dict(PRESETS.get(preset, {}))


def resumed_config(model_dir, preset=None, **given):
    """The `TrainConfig` of resuming the run in `model_dir`: the settings its
    config.json recorded, then the preset's if one is named, then those `given`
    (`model_overrides` add to the recorded ones; `perceptual_weight` replaces the
    recorded objective). It resumes from the newest checkpoint unless `resume_from`
    is given. A setting that defines the run and differs is refused later, by
    `write_or_check_config`.

    Raises:
        ValueError: `model_dir` holds no run, or a setting is invalid.
    """
    recorded = recorded_settings(model_dir)
    if recorded is None:
        raise ValueError(f"{model_dir} holds no training run to resume")
    merged = {**recorded, **_preset_values(preset), "resume_from": None, **given,
              "model_dir": model_dir}
    merged["model_overrides"] = {**recorded["model_overrides"],
                                 **given.get("model_overrides", {})}
    if "perceptual_weight" in given and "loss" not in given:
        del merged["loss"]
    return make_config(None, **merged)


def defaults():
    """{setting: default}: TrainConfig's defaults, and `workers` 1 (what a run folder
    from before a setting existed was trained with)."""
    values = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else f.default) for f in dataclasses.fields(TrainConfig)}
    return dict(values, workers=1)


def recorded_settings(model_dir):
    """The settings a run folder's config.json recorded, as `TrainConfig` fields (in
    today's terms: a setting added since reads as its default); None if `model_dir`
    holds no run."""
    saved = run_folder.read_config(model_dir)
    if saved is None:
        return None
    saved = dict(defaults(), **_upgrade_saved_config(saved, model_dir))
    return {f.name: saved[f.name] for f in dataclasses.fields(TrainConfig)}


def write_or_check_config(config, workers=1, write=True):
    """Writes config.json (`write`: the chief; other workers only check), after
    checking that a resumed run trains the same thing: every `IDENTITY` setting,
    the number of workers included, as config.json recorded it.

    Raises:
        ValueError: naming each changed setting with its recorded and new value.
    """
    # As JSON gives values back (tuples as lists), so equal settings compare equal.
    current = json.loads(json.dumps(dict(dataclasses.asdict(config), workers=workers)))
    saved = run_folder.read_config(config.model_dir)
    if saved is not None:
        saved = _upgrade_saved_config(saved, config.model_dir)
        # A setting added later (to_8bit, workers) reads as its default in an older run.
        recorded_then = defaults()
        saved = {k: saved.get(k, recorded_then[k]) for k in IDENTITY}
        changed = [k for k in IDENTITY if saved[k] != current[k]]
        if changed:
            details = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
            why = (" (each worker reads its own seeded stream of batch_size / workers "
                   "examples, so another number of workers trains on other batches)"
                   if "workers" in changed else "")
            raise ValueError(f"{config.model_dir} holds a different run ({details}){why}; "
                             "use a new --model_dir or the original settings")
    if write:
        write_json(run_folder.path(config.model_dir, run_folder.CONFIG), current, indent=2,
                   sort_keys=True)


def _objective_of_perceptual_weight(weight):
    """The objective `perceptual_weight` meant: MAE + weight * perceptual."""
    return {"mae": 1.0, **({"perceptual": float(weight)} if weight else {})}


def _upgrade_saved_config(saved, model_dir):
    """An older run's config.json in today's terms. Its `perceptual_weight` (before
    `loss`) is the objective MAE + weight * perceptual. The boolean `mixed_precision`
    (before `precision`) chose mixed_float16 on the machine that trained it if it had
    a GPU, else mixed_bfloat16: the run's newest checkpoint tells which (float16
    trained with loss scaling, whose scale it saved); a run without a checkpoint
    reads as mixed_bfloat16."""
    saved = dict(saved)
    if "perceptual_weight" in saved:
        weight = saved.pop("perceptual_weight")
        saved.setdefault("loss", _objective_of_perceptual_weight(weight))
    mixed = saved.pop("mixed_precision", None)
    if "precision" not in saved and mixed is not None:
        saved["precision"] = _mixed_policy_trained(model_dir) if mixed else "float32"
    return saved


# What a loss-scaled optimizer (mixed_float16) saves besides the optimizer's own.
_LOSS_SCALE_KEY = "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"


def _mixed_policy_trained(model_dir):
    """"mixed_float16" if the run's newest intact checkpoint holds a loss scale,
    else "mixed_bfloat16" (also when it has none)."""
    state = tf.train.get_checkpoint_state(run_folder.path(model_dir, run_folder.CHECKPOINTS))
    for checkpoint in reversed(list(state.all_model_checkpoint_paths) if state else []):
        if run_folder.checkpoint_damage(checkpoint) is None:
            names = run_folder.checkpoint_reader(checkpoint).get_variable_to_shape_map()
            return "mixed_float16" if _LOSS_SCALE_KEY in names else "mixed_bfloat16"
    return "mixed_bfloat16"
