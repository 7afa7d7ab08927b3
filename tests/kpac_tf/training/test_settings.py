"""kpac_tf.training.settings: what defines a run and what may change on resume; presets."""

import dataclasses
import json
import re

import keras
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from kpac_tf.training import loop, settings
from tests.test_case import tiny_config


def test_each_setting_is_one_declaration_everything_else_derives_from():
    """Each TrainConfig field declares its help, flag group and role; its flag, its
    place in train's --help and its role on resume come from that alone."""
    from experiments import common_flags, train

    listed = {holder.name for group in train.FLAG_GROUPS.values() for holder in group
              if not isinstance(holder, str)}
    for field in dataclasses.fields(settings.TrainConfig):
        meta = field.metadata
        assert meta["help"] and meta["group"] in train.FLAG_GROUPS, field.name
        assert isinstance(meta["identity"], bool)
        assert (field.name in settings.IDENTITY) == meta["identity"]
        assert (field.name in settings.PATHS) == meta["path"]
        if field.name != "model_overrides":  # set by one flag per override
            flag = common_flags.SETTING_FLAGS[field.name]
            assert flag.name == (meta["flag"] or field.name) and flag.name in listed
            assert flags.FLAGS[flag.name].help.endswith(meta["help"])
    assert set(settings.NETWORK_OVERRIDES) <= set(common_flags.SETTING_FLAGS)
    # --help shows what an unset flag stands for: the default preset's value, else
    # the declared default.
    shown = common_flags.help_text(train.__doc__, train.FLAG_GROUPS, train.FLAG_DEFAULTS)
    assert "--steps: Training steps (paper phase 1: 200000).\n    (default: 500 " \
        "(embedded_default's))" in shown
    assert "(default: mae:1)" in shown and "--[no]deterministic" in shown
    # What a resumed run must keep, as it was when the lists were written by hand.
    assert set(settings.IDENTITY) == {
        "model", "model_overrides", "dataset", "dataset_config", "to_8bit", "seed",
        "batch_size", "crop_size", "flips", "learning_rate", "beta_1", "beta_2",
        "epsilon", "loss", "precision", "ema_decay", "workers"}
    assert set(settings.PATHS) == {"model_dir", "data_dir", "cache_dir", "manual_dir",
                                   "vgg19_weights", "init_from"}


# Another value of each setting that shapes what is trained or what the stream yields.
OTHER_VALUES = dict(
    model="single_3level", model_overrides={"channels": 8}, dataset="dpdd",
    dataset_config="default", to_8bit="high_byte", seed=1, batch_size=4, crop_size=64,
    flips=True, learning_rate=5e-4, beta_1=0.8, beta_2=0.999, epsilon=1e-7,
    loss={"mae": 1.0, "perceptual": 0.1}, precision="mixed_bfloat16", ema_decay=0.9, workers=2)


def test_other_values_cover_the_identity():
    assert set(OTHER_VALUES) == set(settings.IDENTITY)


@pytest.mark.parametrize("name", sorted(OTHER_VALUES))
def test_resume_refuses_each_setting_that_defines_the_run(tmp_path, data_dir, name):
    """The error names the setting with the recorded and the new value."""
    config = tiny_config(tmp_path, data_dir)
    settings.write_or_check_config(config)
    recorded = json.loads((tmp_path / "config.json").read_text())[name]
    other = OTHER_VALUES[name]
    changed = (config, dict(workers=other)) if name == "workers" else (
        dataclasses.replace(config, **{name: other}), {})
    with pytest.raises(ValueError, match=re.escape(
            f"holds a different run ({name}: {recorded!r} -> {other!r})")):
        settings.write_or_check_config(changed[0], **changed[1])


def test_resume_accepts_what_may_change(tmp_path, data_dir):
    settings.write_or_check_config(tiny_config(tmp_path, data_dir))
    moved = tiny_config(tmp_path, str(tmp_path / "elsewhere"), steps=100, log_every=7,
                        eval_every=9, save_every=11, eval_images=0, strategy="mirrored",
                        init_from=str(tmp_path / "ignored.keras"), manual_dir="x",
                        vgg19_weights="vgg.h5")
    settings.write_or_check_config(moved)
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 100


def test_to_8bit_is_part_of_a_run_identity(tmp_path, data_dir):
    from experiments import train

    config = tiny_config(tmp_path, data_dir)
    settings.write_or_check_config(config)
    path = tmp_path / "config.json"
    assert json.loads(path.read_text())["to_8bit"] == "round"
    high_byte = tiny_config(tmp_path, data_dir, to_8bit="high_byte")
    with pytest.raises(ValueError, match="different run .*to_8bit: 'round' -> 'high_byte'"):
        loop.train(high_byte)
    # A run folder from before the setting existed was trained with "round".
    saved = json.loads(path.read_text())
    del saved["to_8bit"]
    path.write_text(json.dumps(saved))
    settings.write_or_check_config(config)
    with pytest.raises(ValueError, match="to_8bit: 'round' -> 'high_byte'"):
        settings.write_or_check_config(high_byte)
    with pytest.raises(ValueError, match="to_8bit must be one of"):
        tiny_config(tmp_path, data_dir, to_8bit="truncate")
    with flagsaver.flagsaver(to_8bit="high_byte"):
        assert train.config_from_flags().to_8bit == "high_byte"


def test_precision_and_ema_are_part_of_a_run_identity(tmp_path, data_dir):
    from experiments import train

    bf16 = tiny_config(tmp_path, data_dir, precision="mixed_bfloat16")
    settings.write_or_check_config(bf16)
    with pytest.raises(ValueError, match="precision: 'mixed_bfloat16' -> 'float32'"):
        settings.write_or_check_config(tiny_config(tmp_path, data_dir))
    with pytest.raises(ValueError, match="ema_decay: 0.0 -> 0.99"):
        settings.write_or_check_config(tiny_config(
            tmp_path, data_dir, precision="mixed_bfloat16", ema_decay=0.99))
    # A run folder from before `precision`: --mixed_precision picked mixed_bfloat16
    # without a GPU, mixed_float16 with one; its checkpoint tells which, whatever
    # machine reads it.
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    del saved["precision"], saved["ema_decay"]
    path.write_text(json.dumps(dict(saved, mixed_precision=True)))
    settings.write_or_check_config(bf16)  # no checkpoint: bfloat16; resumes
    resaved = json.loads(path.read_text())
    assert resaved["precision"] == "mixed_bfloat16" and "mixed_precision" not in resaved
    for optimizer, policy in ((keras.optimizers.Adam(), "mixed_bfloat16"), (
            keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()), "mixed_float16")):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer.build(model.trainable_variables)
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer),
                                   str(tmp_path / "checkpoints"), max_to_keep=1).save(7)
        path.write_text(json.dumps(dict(saved, mixed_precision=True)))
        assert settings.recorded_settings(str(tmp_path))["precision"] == policy
    path.write_text(json.dumps(dict(saved, mixed_precision=False)))
    settings.write_or_check_config(tiny_config(tmp_path, data_dir))
    with pytest.raises(ValueError, match="precision must be one of"):
        tiny_config(tmp_path, data_dir, precision="bfloat16")
    with pytest.raises(ValueError, match="ema_decay must be in"):
        tiny_config(tmp_path, data_dir, ema_decay=1.0)
    with flagsaver.flagsaver(training_precision="mixed_bfloat16", ema_decay=0.99):
        config = train.config_from_flags()
    assert (config.precision, config.ema_decay) == ("mixed_bfloat16", 0.99)


def test_presets():
    phase1 = settings.make_config("paper_phase1", model_dir="x")
    assert (phase1.steps, phase1.learning_rate, phase1.loss,
            phase1.batch_size, phase1.crop_size, phase1.beta_1, phase1.beta_2) == (
        200_000, 1e-4, {"mae": 1.0}, 4, 512, 0.9, 0.99)
    phase2 = settings.make_config("paper_phase2", model_dir="x", init_from="runs/p1")
    assert (phase2.steps, phase2.learning_rate, phase2.loss) == (
        100_000, 5e-5, {"mae": 1.0, "perceptual": 7e-4})
    with pytest.raises(ValueError, match="init_from"):
        settings.make_config("paper_phase2", model_dir="x")
    assert settings.make_config("paper_phase1", model_dir="x", steps=10).steps == 10


def test_the_objective_is_named_losses_and_the_old_weight_still_reads(tmp_path, data_dir):
    """--loss=NAME:WEIGHT,... is the objective; --perceptual_weight, and an old run
    folder's recorded perceptual_weight, read as MAE + weight x perceptual."""
    config = settings.make_config(None, model_dir="x", loss="mae:1, charbonnier:0.5")
    assert config.loss == {"mae": 1.0, "charbonnier": 0.5}
    assert settings.make_config(None, model_dir="x", perceptual_weight=7e-4).loss == {
        "mae": 1.0, "perceptual": 7e-4}
    assert settings.make_config(None, model_dir="x", perceptual_weight=0.0).loss == {
        "mae": 1.0}
    assert settings.make_config("paper_phase2", model_dir="x", init_from="p1",
                                perceptual_weight=0.01).loss == {"mae": 1.0,
                                                                 "perceptual": 0.01}
    for bad, match in (("mse:1", "loss 'mse' is not one of charbonnier, mae, perceptual"),
                       ("mae:-1", "'mae': the weight must be a positive number, got '-1'"),
                       ("mae:x", "got 'x'"), ("mae:1,mae:2", "'mae' is given twice")):
        with pytest.raises(ValueError, match=re.escape(match)):
            settings.make_config(None, model_dir="x", loss=bad)
    with pytest.raises(ValueError, match="--loss .* or --perceptual_weight, not both"):
        settings.make_config(None, model_dir="x", loss="mae:1", perceptual_weight=0.1)
    # A run folder written before `loss` resumes with the same objective.
    old = tiny_config(tmp_path, data_dir, perceptual_weight=0.1)
    settings.write_or_check_config(old)
    path = tmp_path / "config.json"
    recorded = json.loads(path.read_text())
    assert recorded["loss"] == {"mae": 1.0, "perceptual": 0.1}
    del recorded["loss"]
    path.write_text(json.dumps(dict(recorded, perceptual_weight=0.1)))
    assert settings.recorded_settings(str(tmp_path))["loss"] == {"mae": 1.0,
                                                                 "perceptual": 0.1}
    settings.write_or_check_config(tiny_config(tmp_path, data_dir,
                                               loss="mae:1,perceptual:0.1"))
    with pytest.raises(ValueError, match=re.escape(
            "loss: {'mae': 1.0, 'perceptual': 0.1} -> {'mae': 1.0}")):
        settings.write_or_check_config(tiny_config(tmp_path, data_dir))
