"""Training: a tiny run end to end, exact resume, NaN stop, strategies, init, losses."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from kpac_tf import build_model, checkpoints, data, training

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds"))
    data.prepare("synthetic", path, "tiny")
    return path


def tiny_config(model_dir, data_dir, **settings):
    values = dict(model_dir=str(model_dir), dataset="synthetic", dataset_config="tiny",
                  data_dir=data_dir, steps=4, batch_size=2, crop_size=32,
                  model_overrides={"channels": 4}, log_every=2, eval_every=2,
                  save_every=2, eval_images=2, learning_rate=1e-3)
    values.update(settings)
    return training.make_config(None, **values)


def weights_of(model_dir):
    return [w.numpy() for w in keras.models.load_model(
        os.path.join(model_dir, "model.keras")).weights]


def test_tiny_run_writes_everything(tmp_path, data_dir):
    final = training.train(tiny_config(tmp_path, data_dir))
    assert final["step"] == 4 and final["images"] == 3
    assert np.isfinite(final["last_loss"])
    for name in ("config.json", "model.keras", "weights_tf1.npz", "metrics.json"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 4
    assert checkpoints.training_checkpoint(str(tmp_path)).endswith("ckpt-4")
    # The authors'-format weights are the final model's.
    model = checkpoints.load_tf1_npz(build_model("single_2level", channels=4),
                                     tmp_path / "weights_tf1.npz")
    for a, b in zip([w.numpy() for w in model.weights], weights_of(tmp_path)):
        np.testing.assert_array_equal(a, b)
    tags = set()
    for event_file in tmp_path.glob("*/events.out.tfevents.*"):
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in record.summary.value)
    assert {"loss", "learning_rate", "steps_per_second", "psnr", "ssim", "input_psnr",
            "blurry_output_sharp", "scale_attention_kpac_0_rates_1_to_n"} <= tags


def test_resume_is_exact(tmp_path, data_dir, caplog):
    straight = tmp_path / "straight"
    training.train(tiny_config(straight, data_dir, steps=6))
    split = tmp_path / "split"
    training.train(tiny_config(split, data_dir, steps=2))
    with caplog.at_level("INFO", logger="absl"):
        training.train(tiny_config(split, data_dir, steps=6))
    assert "Restored from step 2" in caplog.text
    for a, b in zip(weights_of(straight), weights_of(split)):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_a_different_run(tmp_path, data_dir):
    training.train(tiny_config(tmp_path, data_dir, steps=2))
    with pytest.raises(ValueError, match="holds a different run .*model_overrides"):
        training.train(tiny_config(tmp_path, data_dir, model_overrides={"channels": 8}))


def test_to_8bit_is_part_of_a_run_identity(tmp_path, data_dir):
    from experiments import train

    config = tiny_config(tmp_path, data_dir)
    training._write_or_check_config(config)
    path = tmp_path / "config.json"
    assert json.loads(path.read_text())["to_8bit"] == "round"
    high_byte = tiny_config(tmp_path, data_dir, to_8bit="high_byte")
    with pytest.raises(ValueError, match="different run .*to_8bit: 'round' -> 'high_byte'"):
        training.train(high_byte)
    # A run folder from before the setting existed was trained with "round".
    saved = json.loads(path.read_text())
    del saved["to_8bit"]
    path.write_text(json.dumps(saved))
    training._write_or_check_config(config)
    with pytest.raises(ValueError, match="to_8bit: 'round' -> 'high_byte'"):
        training._write_or_check_config(high_byte)
    with pytest.raises(ValueError, match="to_8bit must be one of"):
        tiny_config(tmp_path, data_dir, to_8bit="truncate")
    with flagsaver.flagsaver(to_8bit="high_byte"):
        assert train.config_from_flags().to_8bit == "high_byte"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir,
                                                           monkeypatch):
    original = data.training_dataset

    def poisoned(*args, **kwargs):  # the 4th batch holds NaNs
        return original(*args, **kwargs).enumerate().map(
            lambda i, batch: (tf.where(i >= 3, np.nan, batch[0]), batch[1]))

    monkeypatch.setattr(data, "training_dataset", poisoned)
    with pytest.raises(training.TrainingDiverged, match="at step 4.*ckpt-2"):
        training.train(tiny_config(tmp_path, data_dir, steps=6))
    assert checkpoints.training_checkpoint(str(tmp_path)).endswith("ckpt-2")
    assert not (tmp_path / "model.keras").exists()
    restored = build_model("single_2level", channels=4)
    checkpoints.initialize_weights(restored, str(tmp_path))
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
        from kpac_tf import training
        out = {{}}
        for strategy in ("default", "mirrored"):
            config = training.make_config(
                None, model_dir=os.path.join({str(tmp_path)!r}, strategy),
                dataset="synthetic", dataset_config="tiny", data_dir={data_dir!r},
                steps=1, batch_size=2, crop_size=32, model_overrides={{"channels": 4}},
                learning_rate=1e-3, eval_images=1, strategy=strategy)
            final = training.train(config)
            model = keras.models.load_model(os.path.join(config.model_dir, "model.keras"))
            out[strategy] = dict(loss=final["last_loss"],
                                 kernel=model.get_layer("c0").kernel.numpy().ravel()[:50].tolist())
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["default"]["loss"] == pytest.approx(out["mirrored"]["loss"], rel=1e-5)
    np.testing.assert_allclose(out["default"]["kernel"], out["mirrored"]["kernel"],
                               atol=1e-6)


def test_mixed_precision_runs(tmp_path, data_dir):
    final = training.train(tiny_config(tmp_path, data_dir, steps=1, mixed_precision=True))
    assert np.isfinite(final["last_loss"])
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored



def test_perceptual_loss_training(tmp_path, data_dir, vgg_weights):
    final = training.train(tiny_config(tmp_path, data_dir, steps=2,
                                       perceptual_weight=7e-4, vgg19_weights=vgg_weights))
    assert np.isfinite(final["last_loss"])


def test_perceptual_loss_refuses_to_start_without_weights(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="vgg19_weights_tf_dim_ordering"):
        training.train(tiny_config(tmp_path, data_dir, perceptual_weight=7e-4,
                                   vgg19_weights=str(tmp_path / "none.h5")))
    assert checkpoints.training_checkpoint(str(tmp_path)) is None


@pytest.mark.parametrize("source", ["npz", "keras", "run"])
def test_init_from(tmp_path, data_dir, source):
    first = tmp_path / "first"
    training.train(tiny_config(first, data_dir, steps=2))
    path = {"npz": first / "weights_tf1.npz", "keras": first / "model.keras",
            "run": first}[source]
    second = tmp_path / "second"
    training.train(tiny_config(second, data_dir, steps=0, init_from=str(path)))
    for a, b in zip(weights_of(first), weights_of(second)):
        np.testing.assert_array_equal(a, b)


def test_presets():
    phase1 = training.make_config("paper_phase1", model_dir="x")
    assert (phase1.steps, phase1.learning_rate, phase1.perceptual_weight,
            phase1.batch_size, phase1.crop_size, phase1.beta_1, phase1.beta_2) == (
        200_000, 1e-4, 0.0, 4, 512, 0.9, 0.99)
    phase2 = training.make_config("paper_phase2", model_dir="x", init_from="runs/p1")
    assert (phase2.steps, phase2.learning_rate, phase2.perceptual_weight) == (
        100_000, 5e-5, 7e-4)
    with pytest.raises(ValueError, match="init_from"):
        training.make_config("paper_phase2", model_dir="x")
    assert training.make_config("paper_phase1", model_dir="x", steps=10).steps == 10


def test_train_app(tmp_path, data_dir, capsys):
    from experiments import train

    with flagsaver.flagsaver(model_dir=str(tmp_path), dataset_config="tiny",
                             data_dir=data_dir, steps=2, batch_size=2, crop_size=32,
                             channels=4, eval_images=1, num_blocks=1):
        train.main(["train"])
    printed = capsys.readouterr().out
    assert "blurry input  PSNR" in printed and "single_2level PSNR" in printed
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_overrides"] == {"channels": 4, "num_blocks": 1}
    assert saved["dataset"] == "synthetic"  # from the embedded_default preset


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, data_dir):
    """SIGKILL mid-run (possibly mid-save) leaves a checkpoint the next run resumes."""
    import signal
    import time

    run = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.train", f"--model_dir={run}",
               "--dataset_config=tiny", f"--data_dir={data_dir}", "--steps=100000",
               "--batch_size=2", "--crop_size=32", "--channels=4", "--save_every=1",
               "--log_every=1", "--eval_every=100000"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(list((run / "checkpoints").glob("*.index"))) < 3:
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    latest = checkpoints.training_checkpoint(str(run))
    assert latest is not None
    step = int(latest.rsplit("-", 1)[1])
    final = training.train(tiny_config(run, data_dir, steps=step + 2, eval_images=1,
                                       log_every=1, eval_every=100000, save_every=1,
                                       learning_rate=1e-4))
    assert final["step"] == step + 2
    assert not [p for p in run.rglob("*") if p.name.startswith(".tmp-")]
