"""kpac_tf.training.loop: a tiny run end to end, exact resume, NaN stop, strategies,
precisions, moving averages, kills at any point."""

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

from kpac_tf import CheckpointError, build_model, load_deblurrer
from kpac_tf.checkpoints import tf1_npz
from kpac_tf.data import images, pipelines
from kpac_tf.training import loop, losses, run_folder, warm_start
from kpac_tf.utils import devices
from tests.test_case import (DPDD_DUMMY, REPO, remount, run_folder_held, small_disk, tiny_config,
                             weights_of)


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


def test_validation_and_test_take_images_of_any_size(tmp_path):
    """Evaluation images whose sides are not multiples of the network's (DPDD
    cropped to 15x22; single_2level needs multiples of 4) are padded and cropped,
    as in deblurring, not refused."""
    manual = tmp_path / "dpdd"
    for png in DPDD_DUMMY.rglob("*.png"):
        cropped = manual / png.relative_to(DPDD_DUMMY)
        cropped.parent.mkdir(parents=True, exist_ok=True)
        images.write_png(cropped, images.read_image(png)[:15, :22])
    final = loop.train(tiny_config(tmp_path / "run", str(tmp_path / "tfds"), steps=2,
                                   dataset="dpdd", dataset_config="single", crop_size=8,
                                   manual_dir=str(manual)))
    assert final["images"] == 2 and np.isfinite([final["psnr"], final["validation"][
        "psnr"]]).all()


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


def test_a_nan_validation_never_becomes_the_best(tmp_path):
    """Broken outputs score NaN (`scoring.summarize`): such an evaluation never beats
    the best, and any number beats a NaN best."""
    (tmp_path / "config.json").write_text("{}")
    best = loop._BestCheckpoint(str(tmp_path), dict(step=tf.Variable(0, dtype=tf.int64)))

    def scores(psnr):
        return dict(images=1, psnr=psnr, ssim=0.5, mae=0.1, input_psnr=20.0,
                    input_ssim=0.5, input_mae=0.1)
    assert best.update(2, scores(float("nan")), "validation")  # the first is the best
    assert best.update(4, scores(10.0), "validation")
    assert not best.update(6, scores(float("nan")), "validation")
    assert best.record["step"] == 4


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


def test_two_replicas_match_one_and_resume_exactly(tmp_path, data_dir):
    """The CPU split into two logical devices under MirroredStrategy, each replica fed
    its own slice by tf.distribute: the same training as the default strategy (the
    moving average, updated in cross-replica context, too); and a two-replica run of
    2 steps per compiled loop, stopped at step 2 and resumed, ends with the weights
    (the average and the trained ones) of an uninterrupted run of one step per loop."""
    script = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import numpy as np
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from absl import logging
        from kpac_tf.training import loop, run_folder
        from tests.test_case import tiny_config
        logging.set_verbosity(logging.INFO)

        def run(name, **settings):
            settings = dict(dict(steps=1, batch_size=2, eval_images=1), **settings)
            return loop.train(tiny_config(os.path.join({str(tmp_path)!r}, name),
                                          {data_dir!r}, **settings))

        def checkpointed(name):  # the average's and the trained weights
            reader = tf.train.load_checkpoint(run_folder.newest_checkpoint(
                os.path.join({str(tmp_path)!r}, name)))
            return {{key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
                     if key.startswith(("model/", "trained_model/"))}}

        out = {{}}
        for strategy, ema_decay in (("default", 0.0), ("mirrored", 0.0),
                                    ("default", 0.5), ("mirrored", 0.5)):
            name = f"{{strategy}}_{{ema_decay}}"
            final = run(name, steps=1 if ema_decay == 0 else 2, strategy=strategy,
                        ema_decay=ema_decay)
            model = keras.models.load_model(os.path.join({str(tmp_path)!r}, name,
                                                         "model.keras"))
            out[name] = dict(loss=final["last_loss"],
                             kernel=model.get_layer("c0").kernel.numpy().ravel()[:50].tolist())
        looped = dict(strategy="mirrored", batch_size=4, ema_decay=0.5, log_every=4,
                      eval_every=4, save_every=4)
        run("straight", steps=4, steps_per_loop=1, **looped)
        out["first_step"] = run("split", steps=2, steps_per_loop=2, **looped)["step"]
        run("split", steps=4, steps_per_loop=2, **looped)
        straight, split = checkpointed("straight"), checkpointed("split")
        out["keys"] = len(straight)
        out["resumed_same"] = set(straight) == set(split) and all(
            np.array_equal(straight[key], split[key]) for key in straight)
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for ema_decay in (0.0, 0.5):
        default, mirrored = out[f"default_{ema_decay}"], out[f"mirrored_{ema_decay}"]
        assert default["loss"] == pytest.approx(mirrored["loss"], rel=1e-5)
        np.testing.assert_allclose(default["kernel"], mirrored["kernel"], atol=1e-6)
    assert out["first_step"] == 2 and out["keys"] > 20 and out["resumed_same"]
    assert "2 replicas on CPU:0, CPU:1" in result.stderr


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
    # Not every machine's kernels have a float16 gradient of dilated convolutions, so
    # the KPAC blocks give way to Table 2's residual blocks here; KPAC blocks train in
    # float16 where the probe finds one, and are refused in a sentence where not.
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
    kpac = tiny_config(tmp_path / "kpac", data_dir, steps=1, precision="mixed_float16")
    if devices.has_float16_dilated_gradients():
        assert np.isfinite(loop.train(kpac)["last_loss"])
    else:
        with pytest.raises(ValueError, match="no float16 gradient of dilated convolutions "
                           r"\(KPAC blocks\); use mixed_bfloat16 \(or float32\) here"):
            loop.train(kpac)


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


def test_named_losses_train_and_are_logged_and_recorded_by_name(tmp_path, data_dir,
                                                                 vgg_weights, caplog):
    """The objective is any weighted set of named losses, one registered from outside
    the package included: each term is logged and written to TensorBoard by its
    name, and config.json records the objective."""
    def squared_error(config):
        del config
        return lambda y_true, y_pred: tf.reduce_mean(tf.square(y_true - y_pred), [1, 2, 3])

    losses.register_loss("squared_error", squared_error)
    try:
        with caplog.at_level("INFO", logger="absl"):
            final = loop.train(tiny_config(
                tmp_path, data_dir, steps=2, log_every=1, vgg19_weights=vgg_weights,
                loss="mae:1,perceptual:0.0007,squared_error:0.5"))
    finally:
        del losses.LOSSES["squared_error"]
    assert np.isfinite(final["last_loss"])
    assert json.loads((tmp_path / "config.json").read_text())["loss"] == {
        "mae": 1.0, "perceptual": 0.0007, "squared_error": 0.5}
    logged = re.search(r"step 2/2  loss ([\d.]+) \(mae ([\d.]+), perceptual ([\d.]+), "
                       r"squared_error ([\d.]+)\)", caplog.text)
    total, mae, perceptual, squared = (float(v) for v in logged.groups())
    assert total == pytest.approx(mae + 0.0007 * perceptual + 0.5 * squared, abs=2e-5)
    assert scalars(tmp_path, "train", "loss_squared_error")[2] == pytest.approx(squared,
                                                                               abs=1e-5)
    assert set(scalars(tmp_path, "train", "loss_perceptual")) == {1, 2}


def test_perceptual_loss_refuses_to_start_without_weights(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="vgg19_weights_tf_dim_ordering"):
        loop.train(tiny_config(tmp_path, data_dir, perceptual_weight=7e-4,
                                   vgg19_weights=str(tmp_path / "none.h5")))
    assert run_folder.newest_checkpoint(str(tmp_path)) is None


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
            run_folder.checkpoint_step_of_name(run_folder.newest_checkpoint(str(run))))


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
        latest = run_folder.newest_checkpoint(str(run))
        return run_folder.checkpoint_step_of_name(latest) if latest else None

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


def test_a_preempted_run_saves_the_step_it_was_in_and_resumes_exactly(tmp_path, data_dir):
    """SIGTERM (a scheduler's preemption), then SIGINT (Ctrl-C) to a run of 4 steps per
    compiled loop, at a random step between periodic saves: the step (the loop) finishes
    and is saved, the process exits 143 / 130 saying so, and rerunning the same
    command loses no step and ends with exactly the weights, scores and best
    checkpoint of an uninterrupted run of one step per loop."""
    import random
    import signal
    import time

    def command(run, steps_per_loop=1):
        return [sys.executable, "-m", "experiments.train", f"--model_dir={run}",
                "--dataset_config=tiny", f"--data_dir={data_dir}", "--steps=20",
                "--batch_size=2", "--crop_size=32", "--channels=4", "--learning_rate=1e-3",
                "--save_every=10", f"--log_every={steps_per_loop}", "--eval_every=12",
                "--eval_images=1", f"--steps_per_loop={steps_per_loop}"]

    straight = tmp_path / "straight"
    uninterrupted = subprocess.Popen(command(straight), cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
    try:
        for signal_name, exit_code, steps_per_loop in (("SIGTERM", 143, 1),
                                                       ("SIGINT", 130, 4)):
            run, log = tmp_path / signal_name, tmp_path / f"{signal_name}.log"
            with open(log, "w") as stderr:
                process = subprocess.Popen(command(run, steps_per_loop), cwd=REPO,
                                           stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                deadline = time.time() + 300
                while time.time() < deadline and "step 4/20" not in log.read_text():
                    time.sleep(0.02)
                time.sleep(random.uniform(0.0, 0.5))
                assert process.poll() is None, "the run ended before the signal"
                sent = time.time()
                process.send_signal(getattr(signal, signal_name))
                process.wait(timeout=60)
                seconds = time.time() - sent
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            printed = log.read_text()
            assert process.returncode == exit_code, printed[-3000:]
            stopped = re.search(rf"interrupted \({signal_name}\) at step (\d+) of 20: "
                                rf"saved \S+ckpt-(\d+); rerun the same command to resume",
                                printed)
            assert stopped and stopped.group(1) == stopped.group(2), printed[-3000:]
            last_logged = max(int(n) for n in re.findall(r"step (\d+)/20", printed))
            # The step (or loop) it was in, and none lost: a loop of 4 steps also ends
            # at the periodic save (step 10), which logs nothing.
            assert 0 <= int(stopped.group(1)) - last_logged < steps_per_loop
            assert seconds < 30, seconds
            rerun = subprocess.run(command(run, steps_per_loop), cwd=REPO,
                                   capture_output=True, text=True, timeout=300)
            assert rerun.returncode == 0, rerun.stderr[-3000:]
            assert f"Restored from step {stopped.group(1)}" in rerun.stderr
            assert uninterrupted.wait(timeout=300) == 0
            assert_same_final_state(final_state(run), final_state(straight))
            assert not leftovers(run) and not (run / run_folder.LOCK).exists()
    finally:
        if uninterrupted.poll() is None:
            uninterrupted.kill()
            uninterrupted.wait()


def test_a_second_signal_stops_at_once(caplog):
    """The first SIGINT / SIGTERM is recorded for the loop to finish its step and
    save; a second one (Ctrl-C again during a long validation) stops at once."""
    import signal
    import time

    def delivered(number):  # the handler runs between Python instructions
        os.kill(os.getpid(), number)
        for _ in range(100):
            time.sleep(0.01)

    with loop._stop_requests() as received:
        delivered(signal.SIGINT)
        assert received == [signal.SIGINT]
        with pytest.raises(loop.TrainingAborted, match="a second SIGTERM stopped the run "
                           "at once, without saving") as aborted:
            delivered(signal.SIGTERM)
    assert aborted.value.exit_code == 143
    assert "send it again to stop at once" in caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_trainer_on_a_live_run_folder_is_refused(tmp_path, data_dir):
    """`experiments.train` on a run folder another process holds (a second terminal, a
    scheduler's retry): refused at once, naming the holder, without a traceback, and
    nothing written."""
    with run_folder_held(tmp_path) as holder:
        second = subprocess.run(
            [sys.executable, "-m", "experiments.train", f"--model_dir={tmp_path}",
             "--dataset_config=tiny", f"--data_dir={data_dir}", "--steps=4"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1 and f"train: {tmp_path} is in use by another trainer " \
        f"(pid {holder.pid} on host" in second.stderr, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    assert [p.name for p in tmp_path.iterdir()] == [run_folder.LOCK]


def _truncate_data(checkpoint):
    for data in glob.glob(checkpoint + ".data-*"):
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)


def test_a_damaged_newest_checkpoint_names_the_way_on(tmp_path, data_dir):
    """A truncated newest checkpoint (a full disk, a partial copy): the app says which
    is damaged, which is the newest intact one and the flag that resumes from it, with
    no traceback; resuming that way ends exactly as a run never damaged."""
    from absl.testing import flagsaver

    from experiments import train as train_app

    straight, run = tmp_path / "straight", tmp_path / "run"
    loop.train(tiny_config(straight, data_dir, steps=8, save_every=2))
    loop.train(tiny_config(run, data_dir, steps=6, save_every=2))
    _truncate_data(str(run / "checkpoints" / "ckpt-6"))
    with pytest.raises(CheckpointError, match=r"ckpt-6: damaged \(\w+: .*\); load another"):
        load_deblurrer(str(run))
    with flagsaver.flagsaver(model_dir=str(run), dataset_config="tiny", data_dir=data_dir,
                             steps=8, batch_size=2, crop_size=32, channels=4,
                             learning_rate=1e-3, log_every=2, eval_every=2, save_every=2,
                             eval_images=2):
        with pytest.raises(SystemExit, match=(
                r"train: checkpoint \S+ckpt-6 is damaged \(\w+: .*\); the newest intact "
                r"one is ckpt-4: rerun with --resume_from=4 to resume from it")):
            train_app.main(["train"])
    with pytest.raises(ValueError, match=r"lists no checkpoint of step 5 \(it lists "
                                         r"ckpt-2, ckpt-4, ckpt-6\)"):
        loop.train(tiny_config(run, data_dir, steps=8, save_every=2, resume_from=5))
    loop.train(tiny_config(run, data_dir, steps=8, save_every=2, resume_from=4))
    for a, b in zip(weights_of(run), weights_of(straight), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_damaged_best_checkpoint_is_named(tmp_path, data_dir):
    run = tmp_path / "run"
    loop.train(tiny_config(run, data_dir, steps=4, save_every=2))
    (best,) = glob.glob(str(run / "checkpoints" / "best" / "ckpt-*.index"))
    _truncate_data(best[:-len(".index")])
    with pytest.raises(run_folder.DamagedCheckpoint, match=(
            r"the best checkpoint \S+ is damaged .*move \S+best aside to resume without it")):
        loop.train(tiny_config(run, data_dir, steps=6, save_every=2))


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


def test_a_full_disk_or_read_only_run_folder_stops_in_one_sentence(tmp_path, data_dir):
    """A real small disk (tmpfs) that fills up before a checkpoint save, then the same
    disk mounted read-only: each run stops with one sentence naming the file, the
    reason and the step a rerun resumes from, without a traceback; every earlier
    checkpoint and final file stays as it was, and once there is room the same command
    resumes from them."""
    disk = tmp_path / "disk"
    disk.mkdir()
    run = disk / "run"

    def train(steps):
        return subprocess.run(
            [sys.executable, "-m", "experiments.train", f"--model_dir={run}",
             "--dataset_config=tiny", f"--data_dir={data_dir}", f"--steps={steps}",
             "--batch_size=2", "--crop_size=32", "--channels=4", "--save_every=2",
             "--eval_every=100", "--log_every=100", "--eval_images=1"],
            cwd=REPO, capture_output=True, text=True, timeout=300)

    def contents():
        return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*")
                if p.is_file() and p.name != "config.json" and "tfevents" not in p.name}

    way_on = (r"\. Free space on that disk \(or make the folder writable\) and rerun the "
              rf"same command: the run resumes from step 2 \({re.escape(str(run))}/"
              r"checkpoints/ckpt-2\)\n$")
    with small_disk(disk, "64m"):
        assert train(2).returncode == 0
        saved = contents()
        # Room for small writes (lock, config, event headers), not for ckpt-4 (1.4 MB).
        stats = os.statvfs(disk)
        remount(disk, f"size={(stats.f_blocks - stats.f_bfree) * stats.f_frsize + 2**18}")
        full = train(6)
        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
        assert re.search(rf"train: could not write {re.escape(str(run))}/checkpoints/ckpt-4: "
                         rf"No space left on device{way_on}", full.stderr), full.stderr[-3000:]
        remount(disk, "ro")
        read_only = train(6)
        assert read_only.returncode == 1 and "Traceback" not in read_only.stderr
        assert re.search(rf"train: could not write {re.escape(str(run))}/trainer.lock: "
                         rf"Read-only file system{way_on}", read_only.stderr), \
            read_only.stderr[-3000:]
        remount(disk, "rw,size=64m")
        leftover = contents()
        assert {name: leftover[name] for name in saved} == saved  # nothing lost
        for listed in (run_folder.newest_checkpoint(str(run)),
                       run_folder.newest_checkpoint(str(run / "checkpoints" / "best"))):
            assert listed.endswith("ckpt-2") and run_folder.checkpoint_damage(listed) is None
        rerun = train(6)
        assert rerun.returncode == 0 and "Restored from step 2" in rerun.stderr, \
            rerun.stderr[-3000:]
        assert json.loads((run / "metrics.json").read_text())["step"] == 6
        assert not leftovers(run)
