"""Training: a tiny run end to end, exact resume, NaN stop, strategies, init, losses."""

import dataclasses
import glob
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from kpac_tf import build_model
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.data import pipelines
from kpac_tf.training import loop, run_folder, settings, warm_start

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(model_dir, data_dir, **overrides):
    values = dict(model_dir=str(model_dir), dataset="synthetic", dataset_config="tiny",
                  data_dir=data_dir, steps=4, batch_size=2, crop_size=32,
                  model_overrides={"channels": 4}, log_every=2, eval_every=2,
                  save_every=2, eval_images=2, learning_rate=1e-3)
    values.update(overrides)
    return settings.make_config(None, **values)


def weights_of(model_dir):
    return [w.numpy() for w in keras.models.load_model(
        os.path.join(model_dir, "model.keras")).weights]


def test_tiny_run_writes_everything(tmp_path, data_dir):
    final = loop.train(tiny_config(tmp_path, data_dir))
    assert final["step"] == 4 and final["images"] == 3
    assert np.isfinite(final["last_loss"])
    for name in ("config.json", "model.keras", "weights_tf1.npz", "metrics.json"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 4
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["step"] == 4 and saved["split"] == "test" and saved["images"] == 3
    assert saved["validation"]["images"] == 2 and saved["best"]["split"] == "validation"
    assert re.fullmatch(r"synthetic_defocus/tiny/\d+\.\d+\.\d+", saved["dataset"]), saved
    assert (tmp_path / "checkpoints" / "best" / "best.json").exists()
    assert run_folder.newest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    # The authors'-format weights are the final model's.
    model = tf1_npz.load_tf1_npz(build_model("single_2level", channels=4),
                                     tmp_path / "weights_tf1.npz")
    for a, b in zip([w.numpy() for w in model.weights], weights_of(tmp_path)):
        np.testing.assert_array_equal(a, b)
    tags = set()
    for event_file in tmp_path.glob("*/events.out.tfevents.*"):
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in record.summary.value)
    assert {"loss", "learning_rate", "steps_per_second", "psnr", "ssim", "input_psnr",
            "best_psnr", "blurry_output_sharp", "scale_attention_kpac_0_rates_1_to_n"} <= tags
    assert {"train", "validation", "test"} <= {p.name for p in tmp_path.iterdir()}


def scalars(run_dir, split, tag="psnr"):
    """{step: value} of a scalar in a run's TensorBoard folder `split`."""
    values = {}
    for event_file in sorted((run_dir / split).glob("events.out.tfevents.*")):
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in record.summary.value:
                if value.tag == tag:
                    values[record.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_validation_chooses_and_test_is_scored_once_at_the_end(tmp_path, data_dir,
                                                                monkeypatch):
    from kpac_tf import load_deblurrer

    splits = []
    original = pipelines.evaluation_dataset

    def recording(builder, split="test", to_8bit="round"):
        splits.append(split)
        return original(builder, split, to_8bit)

    monkeypatch.setattr(pipelines, "evaluation_dataset", recording)
    final = loop.train(tiny_config(tmp_path, data_dir, steps=6, eval_every=2,
                                       save_every=3))
    assert splits == ["validation", "test"]  # test read once, after training
    assert final["images"] == 3 and final["split"] == "test"  # every test image
    validation = scalars(tmp_path, "validation")
    assert sorted(validation) == [2, 4, 6]  # periodic + final, on validation only
    assert sorted(scalars(tmp_path, "test")) == [6]
    best = final["best"]
    assert best["step"] == max(validation, key=lambda s: (validation[s], -s))
    assert best["psnr"] == pytest.approx(validation[best["step"]], abs=1e-4)
    assert final["validation"]["psnr"] == pytest.approx(validation[6], abs=1e-4)
    folder = tmp_path / "checkpoints" / "best"
    assert json.loads((folder / "best.json").read_text()) == best
    assert sorted(p.name for p in folder.glob("*.index")) == [f"ckpt-{best['step']}.index"]
    assert tf.train.load_variable(str(folder / f"ckpt-{best['step']}"),
                                  "step/.ATTRIBUTES/VARIABLE_VALUE") == best["step"]
    # The last N checkpoints are kept besides it.
    assert run_folder.newest_checkpoint(str(tmp_path)).endswith("ckpt-6")
    # It restores, and loads like a run folder (its config.json names the network).
    restored = warm_start.initialize_weights(build_model("single_2level", channels=4),
                                              str(folder))
    loaded = load_deblurrer(str(folder)).keras_model
    for a, b in zip(restored.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if best["step"] == 6:
        for a, b in zip([w.numpy() for w in restored.weights], weights_of(tmp_path)):
            np.testing.assert_array_equal(a, b)


def test_the_best_record_survives_a_restart(tmp_path):
    """A resumed run compares against the best so far, read from the best checkpoint
    itself (so a kill between its files cannot make them disagree)."""
    (tmp_path / "config.json").write_text("{}")
    step = tf.Variable(0, dtype=tf.int64)
    objects = dict(model=build_model("single_2level", channels=4), step=step)

    def scores(psnr):
        return dict(images=2, psnr=psnr, ssim=0.5, mae=0.1, input_psnr=20.0,
                    input_ssim=0.4, input_mae=0.2)

    best = loop._BestCheckpoint(str(tmp_path), objects)
    assert best.record is None
    step.assign(2)
    assert best.update(2, scores(30.0), "validation")
    (tmp_path / "checkpoints" / "best" / "best.json").unlink()  # a kill before it
    again = loop._BestCheckpoint(str(tmp_path), objects)
    assert (again.record["step"], again.record["psnr"]) == (2, 30.0)
    step.assign(4)
    assert not again.update(4, scores(29.0), "validation")
    assert not again.update(4, scores(30.0), "validation")  # a tie keeps the earlier
    step.assign(6)
    assert again.update(6, scores(31.0), "validation")
    folder = tmp_path / "checkpoints" / "best"
    assert sorted(p.name for p in folder.glob("*.index")) == ["ckpt-6.index"]
    assert json.loads((folder / "best.json").read_text())["step"] == 6


def test_resume_is_exact(tmp_path, data_dir, caplog):
    straight = tmp_path / "straight"
    loop.train(tiny_config(straight, data_dir, steps=6))
    split = tmp_path / "split"
    loop.train(tiny_config(split, data_dir, steps=2))
    with caplog.at_level("INFO", logger="absl"):
        loop.train(tiny_config(split, data_dir, steps=6))
    assert "Restored from step 2" in caplog.text
    for a, b in zip(weights_of(straight), weights_of(split)):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_holds_the_model_optimizer_and_step_not_images(tmp_path, data_dir):
    """The data stream restarts from the step, so a checkpoint holds the model's and
    Adam's variables and a few scalars: its size does not grow with the images."""
    loop.train(tiny_config(tmp_path, data_dir, steps=2))
    path = run_folder.newest_checkpoint(str(tmp_path))
    assert not [n for n, _ in tf.train.list_variables(path) if "iterator" in n]
    model = build_model("single_2level", channels=4)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    variables = sum(np.asarray(v.numpy()).nbytes
                    for v in model.weights + optimizer.variables)
    stored = sum(os.path.getsize(f) for f in glob.glob(path + ".data-*"))
    image = 64 * 64 * 3 * 4  # one float 64x64 view of the tiny dataset
    # The rest is the object graph (23 kB here) and the step counters.
    assert variables <= stored < variables + image, (stored, variables)


def test_resume_refuses_a_different_run(tmp_path, data_dir):
    loop.train(tiny_config(tmp_path, data_dir, steps=2))
    with pytest.raises(ValueError, match="holds a different run .*model_overrides"):
        loop.train(tiny_config(tmp_path, data_dir, model_overrides={"channels": 8}))


def test_every_setting_either_defines_the_run_or_may_change_on_resume():
    fields = {f.name for f in dataclasses.fields(settings.TrainConfig)} | {"workers"}
    assert set(settings.IDENTITY) | set(settings.MAY_CHANGE) == fields
    assert not set(settings.IDENTITY) & set(settings.MAY_CHANGE)


# Another value of each setting that shapes what is trained or what the stream yields.
OTHER_VALUES = dict(
    model="single_3level", model_overrides={"channels": 8}, dataset="dpdd",
    dataset_config="default", to_8bit="high_byte", seed=1, batch_size=4, crop_size=64,
    flips=True, learning_rate=5e-4, beta_1=0.8, beta_2=0.999, epsilon=1e-7,
    perceptual_weight=0.1, precision="mixed_bfloat16", ema_decay=0.9, workers=2)


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


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir,
                                                           monkeypatch):
    original = pipelines.training_dataset

    def poisoned(*args, **kwargs):  # the 4th batch holds NaNs
        return original(*args, **kwargs).enumerate().map(
            lambda i, batch: (tf.where(i >= 3, np.nan, batch[0]), batch[1]))

    monkeypatch.setattr(pipelines, "training_dataset", poisoned)
    with pytest.raises(loop.TrainingDiverged, match="at step 4.*ckpt-2"):
        loop.train(tiny_config(tmp_path, data_dir, steps=6))
    assert run_folder.newest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    assert not (tmp_path / "model.keras").exists()
    restored = build_model("single_2level", channels=4)
    warm_start.initialize_weights(restored, str(tmp_path))
    assert all(np.isfinite(w.numpy()).all() for w in restored.weights)


def test_mirrored_strategy_matches_default(tmp_path, data_dir):
    script = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from kpac_tf.training import loop
        from kpac_tf.training import run_folder
        from kpac_tf.training import settings
        out = {{}}
        # The moving average is updated in cross-replica context: the same too.
        for strategy, ema_decay in (("default", 0.0), ("mirrored", 0.0),
                                    ("default", 0.5), ("mirrored", 0.5)):
            name = f"{{strategy}}_{{ema_decay}}"
            config = settings.make_config(
                None, model_dir=os.path.join({str(tmp_path)!r}, name),
                dataset="synthetic", dataset_config="tiny", data_dir={data_dir!r},
                steps=1 if ema_decay == 0 else 2, batch_size=2, crop_size=32,
                model_overrides={{"channels": 4}}, learning_rate=1e-3, eval_images=1,
                strategy=strategy, ema_decay=ema_decay)
            final = loop.train(config)
            model = keras.models.load_model(os.path.join(config.model_dir, "model.keras"))
            out[name] = dict(loss=final["last_loss"],
                             kernel=model.get_layer("c0").kernel.numpy().ravel()[:50].tolist())
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for ema_decay in (0.0, 0.5):
        default, mirrored = out[f"default_{ema_decay}"], out[f"mirrored_{ema_decay}"]
        assert default["loss"] == pytest.approx(mirrored["loss"], rel=1e-5)
        np.testing.assert_allclose(default["kernel"], mirrored["kernel"], atol=1e-6)


def policies(model):
    """The dtype policy names of every layer of `model`, sublayers included."""
    return {layer.dtype_policy.name for layer in model._flatten_layers(include_self=False)}


def test_a_mixed_bfloat16_run_saves_a_float32_model(tmp_path, data_dir):
    final = loop.train(tiny_config(tmp_path, data_dir, steps=2,
                                       precision="mixed_bfloat16"))
    assert np.isfinite(final["last_loss"])
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored
    saved = keras.models.load_model(tmp_path / "model.keras")
    assert policies(saved) == {"float32"}
    # The trained weights (float32 variables under the mixed policy), computing in
    # float32: the output of a float32 build holding the checkpoint's weights.
    trained = build_model("single_2level", channels=4)
    tf.train.Checkpoint(model=trained).restore(
        run_folder.newest_checkpoint(str(tmp_path))).expect_partial()
    for a, b in zip(trained.weights, saved.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = np.random.RandomState(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    assert saved(x).dtype == "float32"
    np.testing.assert_allclose(saved(x).numpy(), trained(x).numpy(), atol=1e-6)


def test_a_mixed_float16_step_uses_loss_scaling(tmp_path, data_dir):
    # TensorFlow's CPU kernels have no float16 gradient of dilated convolutions, so
    # the KPAC blocks give way to Table 2's residual blocks here.
    overrides = {"channels": 4, "block_type": "residual", "num_blocks": 1}
    final = loop.train(tiny_config(tmp_path, data_dir, steps=1, eval_images=1,
                                       precision="mixed_float16",
                                       model_overrides=overrides))
    assert np.isfinite(final["last_loss"])
    path = run_folder.newest_checkpoint(str(tmp_path))
    assert tf.train.load_variable(path, "optimizer/dynamic_scale/.ATTRIBUTES/"
                                  "VARIABLE_VALUE") > 1  # a LossScaleOptimizer
    assert tf.train.load_variable(path, "optimizer/inner_optimizer/_iterations/"
                                  ".ATTRIBUTES/VARIABLE_VALUE") == 1  # applied, not skipped
    assert policies(keras.models.load_model(tmp_path / "model.keras")) == {"float32"}
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ValueError, match="use mixed_bfloat16"):
            loop.train(tiny_config(tmp_path / "kpac", data_dir, steps=1,
                                       precision="mixed_float16"))


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
    # without a GPU, mixed_float16 with one.
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    del saved["precision"], saved["ema_decay"]
    path.write_text(json.dumps(dict(saved, mixed_precision=True)))
    if not tf.config.list_physical_devices("GPU"):
        settings.write_or_check_config(bf16)  # resumes
        resaved = json.loads(path.read_text())
        assert resaved["precision"] == "mixed_bfloat16" and "mixed_precision" not in resaved
    path.write_text(json.dumps(dict(saved, mixed_precision=False)))
    settings.write_or_check_config(tiny_config(tmp_path, data_dir))
    with pytest.raises(ValueError, match="precision must be one of"):
        tiny_config(tmp_path, data_dir, precision="bfloat16")
    with pytest.raises(ValueError, match="ema_decay must be in"):
        tiny_config(tmp_path, data_dir, ema_decay=1.0)
    with flagsaver.flagsaver(training_precision="mixed_bfloat16", ema_decay=0.99):
        config = train.config_from_flags()
    assert (config.precision, config.ema_decay) == ("mixed_bfloat16", 0.99)


def test_resume_with_a_moving_average_is_exact(tmp_path, data_dir):
    straight, split = tmp_path / "straight", tmp_path / "split"
    loop.train(tiny_config(straight, data_dir, steps=6, ema_decay=0.9))
    loop.train(tiny_config(split, data_dir, steps=2, ema_decay=0.9))
    loop.train(tiny_config(split, data_dir, steps=6, ema_decay=0.9))
    for a, b in zip(weights_of(straight), weights_of(split)):  # the averages
        np.testing.assert_array_equal(a, b)
    trained = []
    for run in (straight, split):
        model = build_model("single_2level", channels=4)
        tf.train.Checkpoint(trained_model=model).restore(
            run_folder.newest_checkpoint(str(run))).expect_partial()
        trained.append([w.numpy() for w in model.weights])
    for a, b in zip(*trained):
        np.testing.assert_array_equal(a, b)


def test_the_final_model_is_the_moving_average(tmp_path, data_dir):
    decay = 0.5
    loop.train(tiny_config(tmp_path, data_dir, steps=2, save_every=1, eval_every=100,
                               ema_decay=decay))

    def restore(step):
        average, trained = (build_model("single_2level", channels=4) for _ in range(2))
        tf.train.Checkpoint(model=average, trained_model=trained).restore(
            str(tmp_path / "checkpoints" / f"ckpt-{step}")).expect_partial()
        return [w.numpy() for w in average.weights], [w.numpy() for w in trained.weights]

    keras.utils.set_random_seed(0)  # the run's initial weights (seed 0)
    initial = [w.numpy() for w in build_model("single_2level", channels=4).weights]
    (average_1, trained_1), (average_2, trained_2) = restore(1), restore(2)
    for average, before, after in zip(average_1, initial, trained_1):
        np.testing.assert_allclose(average, decay * before + (1 - decay) * after,
                                   rtol=1e-6, atol=1e-7)
    for average, before, after in zip(average_2, average_1, trained_2):
        np.testing.assert_allclose(average, decay * before + (1 - decay) * after,
                                   rtol=1e-6, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(average_2, trained_2))
    for a, b in zip(average_2, weights_of(tmp_path)):  # model.keras is the average,
        np.testing.assert_array_equal(a, b)
    loaded = warm_start.initialize_weights(  # and so is what a run folder loads
        build_model("single_2level", channels=4), str(tmp_path))
    for a, b in zip(average_2, loaded.weights):
        np.testing.assert_array_equal(a, b.numpy())



def test_perceptual_loss_training(tmp_path, data_dir, vgg_weights):
    final = loop.train(tiny_config(tmp_path, data_dir, steps=2,
                                       perceptual_weight=7e-4, vgg19_weights=vgg_weights))
    assert np.isfinite(final["last_loss"])


def test_perceptual_loss_refuses_to_start_without_weights(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="vgg19_weights_tf_dim_ordering"):
        loop.train(tiny_config(tmp_path, data_dir, perceptual_weight=7e-4,
                                   vgg19_weights=str(tmp_path / "none.h5")))
    assert run_folder.newest_checkpoint(str(tmp_path)) is None


@pytest.mark.parametrize("source", ["npz", "keras", "run"])
def test_init_from(tmp_path, data_dir, source):
    first = tmp_path / "first"
    loop.train(tiny_config(first, data_dir, steps=2))
    path = {"npz": first / "weights_tf1.npz", "keras": first / "model.keras",
            "run": first}[source]
    second = tmp_path / "second"
    loop.train(tiny_config(second, data_dir, steps=0, init_from=str(path)))
    for a, b in zip(weights_of(first), weights_of(second)):
        np.testing.assert_array_equal(a, b)


def test_presets():
    phase1 = settings.make_config("paper_phase1", model_dir="x")
    assert (phase1.steps, phase1.learning_rate, phase1.perceptual_weight,
            phase1.batch_size, phase1.crop_size, phase1.beta_1, phase1.beta_2) == (
        200_000, 1e-4, 0.0, 4, 512, 0.9, 0.99)
    phase2 = settings.make_config("paper_phase2", model_dir="x", init_from="runs/p1")
    assert (phase2.steps, phase2.learning_rate, phase2.perceptual_weight) == (
        100_000, 5e-5, 7e-4)
    with pytest.raises(ValueError, match="init_from"):
        settings.make_config("paper_phase2", model_dir="x")
    assert settings.make_config("paper_phase1", model_dir="x", steps=10).steps == 10


def test_train_app(tmp_path, data_dir, capsys):
    from experiments import train

    with flagsaver.flagsaver(model_dir=str(tmp_path), dataset_config="tiny",
                             data_dir=data_dir, steps=2, batch_size=2, crop_size=32,
                             channels=4, eval_images=1, num_blocks=1):
        train.main(["train"])
    printed = capsys.readouterr().out
    assert "blurry input  PSNR" in printed and "single_2level PSNR" in printed
    assert "synthetic test split (3 images, scored once, at the end)" in printed
    assert "synthetic validation split (1 images, chooses the best checkpoint): final " \
        "model PSNR" in printed
    assert "best" in printed and "checkpoints/best/ckpt-2" in printed
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_overrides"] == {"channels": 4, "num_blocks": 1}
    assert saved["dataset"] == "synthetic"  # from the embedded_default preset


def leftovers(run):
    """Temporary files of interrupted writes (ours and TensorFlow's checkpoints')."""
    return [p for p in pathlib.Path(run).rglob("*") if p.name.startswith(".tmp-")
            or p.name.endswith("_temp") or ".tempstate" in p.name
            or p.name.startswith("checkpoint.tmp")]


def final_state(run):
    """What a finished run leaves: its final weights and scores (model.keras,
    weights_tf1.npz, metrics.json; `last_loss` aside, None when a rerun trains no
    step), and the step of its latest checkpoint."""
    metrics = json.loads((pathlib.Path(run) / "metrics.json").read_text())
    metrics.pop("last_loss")
    npz = tf1_npz.load_tf1_npz(build_model("single_2level", channels=4),
                                   pathlib.Path(run) / "weights_tf1.npz")
    return (weights_of(run), [w.numpy() for w in npz.weights], metrics,
            run_folder.newest_checkpoint(str(run)).rsplit("-", 1)[1])


def assert_same_final_state(a, b):
    for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[2:] == b[2:]


def test_a_run_killed_anywhere_resumes_to_the_same_weights(tmp_path, data_dir):
    """SIGKILL at a random moment (mid-step, mid-evaluation, mid-save) loses no
    checkpoint the run had listed, and rerunning the same command ends with exactly
    the weights, scores and best checkpoint of an uninterrupted run."""
    import random
    import time

    def command(run):
        return [sys.executable, "-m", "experiments.train", f"--model_dir={run}",
                "--dataset_config=tiny", f"--data_dir={data_dir}", "--steps=40",
                "--batch_size=2", "--crop_size=32", "--channels=4", "--learning_rate=1e-3",
                "--save_every=1", "--log_every=1", "--eval_every=3", "--eval_images=1"]

    def listed_step(run):  # the newest checkpoint the state file lists
        latest = run_folder.latest_checkpoint(str(run / "checkpoints"))
        return int(latest.rsplit("-", 1)[1]) if latest else None

    straight, run = tmp_path / "straight", tmp_path / "run"
    delay = random.uniform(0.0, 2.5)
    uninterrupted = subprocess.Popen(command(straight), cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
    process = subprocess.Popen(command(run), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and (listed_step(run) or 0) < 2:
            time.sleep(0.02)
        time.sleep(delay)
        listed = listed_step(run)
        assert process.poll() is None, f"the run ended before the kill ({delay:.2f} s)"
    finally:
        process.kill()  # SIGKILL
        process.wait()
        try:
            _, errors = uninterrupted.communicate(timeout=300)
        finally:
            if uninterrupted.poll() is None:
                uninterrupted.kill()
                uninterrupted.wait()
    assert uninterrupted.returncode == 0, errors[-3000:]
    assert not (run / "metrics.json").exists()
    rerun = subprocess.run(command(run), cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    restored = int(re.search(r"Restored from step (\d+)", rerun.stderr).group(1))
    assert restored >= listed, (restored, listed, delay)  # no checkpoint lost
    assert_same_final_state(final_state(run), final_state(straight))
    assert not leftovers(run)


def test_a_run_killed_after_its_last_checkpoint_finishes_alike(tmp_path, data_dir,
                                                               monkeypatch):
    """Killed between the final checkpoint and the final files (simulated by an error
    while writing weights_tf1.npz, with a kill's half-written files planted), a rerun
    trains nothing, writes the same final model and scores, and removes the debris."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    loop.train(tiny_config(straight, data_dir, steps=4))
    original = tf1_npz.save_tf1_npz

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_tf1_npz", killed)
    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny_config(run, data_dir, steps=4))
    monkeypatch.setattr(loop, "save_tf1_npz", original)
    assert (run / "model.keras").exists() and not (run / "metrics.json").exists()
    (run / ".tmp-x1y2.npz").write_bytes(b"half")
    (run / "checkpoints" / "ckpt-6_temp").mkdir()
    (run / "checkpoints" / "ckpt-6_temp" / "part-00000-of-00001.index").write_bytes(b"")
    (run / "checkpoints" / "checkpoint.tmp0123abcd").write_text("half")
    (run / "checkpoints" / "ckpt-6.index.tempstate123").write_bytes(b"")
    # Killed after a best checkpoint, before its best.json: an older description.
    best_json = run / "checkpoints" / "best" / "best.json"
    best_json.write_text(json.dumps(dict(json.loads(best_json.read_text()), step=0)))
    final = loop.train(tiny_config(run, data_dir, steps=4))
    assert final["step"] == 4 and final["last_loss"] is None  # no step ran
    assert json.loads(best_json.read_text()) == final["best"]
    assert_same_final_state(final_state(run), final_state(straight))
    assert not leftovers(run)
