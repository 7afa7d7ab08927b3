"""A training run's settings: `TrainConfig` (defaults are the paper's recipe), named
presets, and the run identity a resumed run must keep (checked against config.json).
"""

import dataclasses
import json

import tensorflow as tf

from kpac_tf.data import pixels
from kpac_tf.training import losses, run_folder
from kpac_tf.utils.files import refuse_remote, write_json


# Keras dtype policies training runs under (`TrainConfig.precision`).
TRAINING_PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's recipe.

    Attributes:
        model_dir: str, output folder; re-using it resumes the run.
        model: str, network name for `build_model`.
        model_overrides: dict, `build_model` overrides (ablations).
        dataset: str, "synthetic" or "dpdd".
        dataset_config: str or None, builder config (None: `pipelines.dataset_config`'s
            choice, "default" / "single", "dual" for the dual network on DPDD).
        to_8bit: str, how DPDD's 16-bit images become 8-bit: "round" (our choice,
            `round(x / 257)`; the paper does not say) or "high_byte" (`x >> 8`, as
            Pillow reads them in the authors' code). See `kpac_tf.data.pixels`.
        data_dir: str or None, TFDS data folder (local, or gs:// and the like).
        cache_dir: str or None, local folder for the training split decoded once to
            8-bit (`training_cache.training_images`; None: beside a local data_dir's
            dataset, else in the system's temporary folder). Never cloud storage:
            every crop reads it.
        manual_dir: str or None, extracted DPDD archive or the synthetic `photos`
            config's photographs (`experiments.fetch_photos`); first run only.
        steps: int, total optimisation steps.
        batch_size: int, global batch size.
        crop_size: int, random crop side.
        flips: bool, random flips.
        learning_rate: float, constant learning rate.
        beta_1, beta_2, epsilon: Adam parameters (TF1's epsilon, 1e-8).
        loss: dict {name: weight}, the objective: a weighted sum of the losses named
            in `losses.LOSSES` ("mae", "charbonnier", "perceptual": VGG19
            block4_conv4); also given as "mae:1,perceptual:0.0007". The paper: MAE
            alone, then MAE + 7e-4 perceptual.
        vgg19_weights: str or None, local VGG19 ImageNet no-top weights file.
        init_from: str or None, weights to start from (.keras, .npz, or a
            training run's model_dir / checkpoint folder); ignored when resuming.
        resume_from: int or None, the step of the run's checkpoint to resume from
            (None: the newest); for when the newest is damaged.
        strategy: str, "default", "mirrored" or "multi_worker".
        precision: str, Keras dtype policy of training: "float32",
            "mixed_bfloat16" (bfloat16 compute, float32 weights; for CPUs with
            AVX512-BF16 / AMX, speed measured by benchmarks/training_precision.py) or
            "mixed_float16" (float16 compute with loss scaling; where the machine's
            kernels have a float16 gradient of dilated convolutions: GPUs, CPUs with
            AVX512-FP16; `devices.has_float16_dilated_gradients` probes it, and
            elsewhere the first step refuses in a sentence). Evaluation and the final
            model are float32 either way.
        deterministic: bool, enable TensorFlow's op determinism
            (`tf.config.experimental.enable_op_determinism`, for the whole process:
            once on it stays on), so a run, and a resumed run, give the same weights
            on GPUs too (cuDNN picks deterministic algorithms). CPU kernels are
            deterministic either way; off, a GPU may pick faster nondeterministic
            convolution gradients.
        ema_decay: float, exponential moving average of the weights (0: off; e.g.
            0.999 for long runs, 0.99 for a few hundred steps): evaluated, selected
            and written as the final model when on. It starts at the initial
            weights, which still weigh decay ** steps at the end (0.999 over 500
            steps: 0.61), so a short run needs a smaller decay.
        seed: int, fixes initialisation and data order.
        log_every, eval_every, save_every: int, steps between logs, evaluations and
            checkpoints.
        steps_per_loop: int, steps run inside one compiled loop before Python reads
            the loss and the workers agree on stopping (1: after every step). Larger
            keeps a fast GPU busy; a loop also ends on every step that logs,
            evaluates or saves, and SIGTERM waits for the loop to end. The weights
            are the same for any value.
        eval_images: int, validation images scored at each evaluation (0: all); the
            best checkpoint is chosen on them.
    """

    model_dir: str
    model: str = "single_2level"
    model_overrides: dict = dataclasses.field(default_factory=dict)
    dataset: str = "dpdd"
    dataset_config: str = None
    to_8bit: str = "round"
    data_dir: str = None
    cache_dir: str = None
    manual_dir: str = None
    steps: int = 200_000
    batch_size: int = 4
    crop_size: int = 512
    flips: bool = False
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.99
    epsilon: float = 1e-8
    loss: dict = dataclasses.field(default_factory=lambda: {"mae": 1.0})
    vgg19_weights: str = None
    init_from: str = None
    resume_from: int = None
    strategy: str = "default"
    precision: str = "float32"
    deterministic: bool = True
    ema_decay: float = 0.0
    seed: int = 0
    log_every: int = 100
    eval_every: int = 5000
    save_every: int = 1000
    steps_per_loop: int = 1
    eval_images: int = 10

    def __post_init__(self):
        self.loss = losses.parse_objective(self.loss)  # checked; "mae:1" -> {"mae": 1.0}
        pixels.check_to_8bit(self.to_8bit)  # before config.json records it
        if self.precision not in TRAINING_PRECISIONS:
            raise ValueError(f"precision must be one of {TRAINING_PRECISIONS}, got "
                             f"{self.precision!r}")
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
    "paper_phase2": dict(dataset="dpdd", steps=100_000, batch_size=4, crop_size=512,
                         learning_rate=5e-5, loss={"mae": 1.0, "perceptual": 7e-4}),
}


# Settings that shape what is trained (network, loss, update rule, precision, average)
# or what the data stream yields (data, 8-bit conversion, seed, batch, crops, flips,
# and the number of workers, each of which reads its own stream): a resumed run must
# keep them, or it would not continue the same run.
IDENTITY = ("model", "model_overrides", "dataset", "dataset_config", "to_8bit", "seed",
             "batch_size", "crop_size", "flips", "learning_rate", "beta_1", "beta_2",
             "epsilon", "loss", "precision", "ema_decay", "workers")


# What may change when a run resumes: its length, the progress / evaluation / save
# rhythm, folders and files (the same data and VGG19 weights wherever they are),
# init_from (ignored when resuming), the strategy as long as the worker count stays
# (it only spreads each worker's batch over its devices), and op determinism (the
# same computation, in a fixed or a free order). A test checks that
# every TrainConfig field is in one of the two lists.
MAY_CHANGE = ("model_dir", "data_dir", "cache_dir", "manual_dir", "vgg19_weights",
               "init_from", "resume_from", "steps", "log_every", "eval_every", "save_every",
               "eval_images", "strategy", "deterministic", "steps_per_loop")


# Settings that may name different places on different machines (paths).
PATHS = ("model_dir", "data_dir", "cache_dir", "manual_dir", "vgg19_weights",
         "init_from")


def make_config(preset=None, **settings):
    """A `TrainConfig` from a preset name plus explicit settings (which win; None
    values are not settings). `perceptual_weight=w`, the objective's setting before
    `loss`, still reads as `loss={"mae": 1, "perceptual": w}` (MAE alone for 0)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS.get(preset, {}))
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


def _setting_defaults():
    """TrainConfig's defaults, and `workers` 1 (what a run folder from before a
    setting existed was trained with)."""
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                         else f.default) for f in dataclasses.fields(TrainConfig)}
    return dict(defaults, workers=1)


def recorded_settings(model_dir):
    """The settings a run folder's config.json recorded, as `TrainConfig` fields (in
    today's terms: a setting added since reads as its default); None if `model_dir`
    holds no run."""
    saved = run_folder.read_config(model_dir)
    if saved is None:
        return None
    saved = dict(_setting_defaults(), **_upgrade_saved_config(saved, model_dir))
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
        defaults = _setting_defaults()
        saved = {k: saved.get(k, defaults[k]) for k in IDENTITY}
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
