"""kpac_tf.deploy.shipping (the ship_model app): a run is gated on its targets, then its
weights and provenance become the bundled model."""

import json
import os

import numpy as np
import pytest
from absl.testing import flagsaver

from kpac_tf.deploy import bundled
from kpac_tf.deploy.loading import load_deblurrer


PARAMS = {"single_2level": 1_578_277, "single_3level": 2_057_893}


# The bundled network; single_2level ships through the same code (test_bundled.py loads both).
@pytest.mark.parametrize("network", ["single_3level"])
def test_ship_model_gates_then_writes_weights_and_provenance(network, tmp_path, monkeypatch):
    from experiments import ship_model as ship_app
    from kpac_tf.data import pipelines
    from kpac_tf.deploy import shipping
    from kpac_tf.training import loop, settings

    data_dir = str(tmp_path / "tfds")
    pipelines.prepare("synthetic", data_dir, "tiny")

    def tiny_run(name, **overrides):
        config = settings.make_config(
            None, model_dir=str(tmp_path / name), dataset="synthetic",
            dataset_config="tiny", data_dir=data_dir, steps=2, batch_size=2, crop_size=32,
            eval_every=2, save_every=2, eval_images=1, model=network, **overrides)
        loop.train(config)
        return config.model_dir

    first = tiny_run("phase_a", learning_rate=1e-3)
    second = tiny_run("phase_b", learning_rate=1e-4, seed=1, init_from=first)
    weights, info = tmp_path / "ship" / "w.npz", tmp_path / "ship" / "w.json"
    monkeypatch.setattr(bundled, "WEIGHTS_PATH", str(weights))
    monkeypatch.setattr(bundled, "INFO_PATH", str(info))
    common = dict(run=second, data_dir=data_dir, eval_dir=str(tmp_path / "eval"))
    with flagsaver.flagsaver(**common), pytest.raises(SystemExit, match="not shipped"):
        ship_app.main(["ship_model"])
    assert not weights.parent.exists()  # a failed gate writes nothing

    # A model that passes: the targets are tested below, not here.
    monkeypatch.setattr(shipping.wiener, "wiener_scores",
                        lambda builder, snrs: {10.0: dict(psnr=0.0, ssim=0.0)})
    passing = dict(defocus=[dict(name="a", gain=1.5)], mean_gain=1.5, min_gain=1.5,
                   in_focus=[dict(name="b", psnr=45.0)], min_in_focus_psnr=45.0)
    monkeypatch.setattr(shipping.held_out, "check", lambda deblurrer: passing)
    monkeypatch.setattr(shipping.held_out, "format_report", lambda result: "")
    with flagsaver.flagsaver(min_gain_db=-100.0, notes="tiny", **common):
        ship_app.main(["ship_model"])
    provenance = bundled.bundled_info()
    assert provenance["label"] == bundled.label(network) and provenance["notes"] == "tiny"
    assert [p["steps"] for p in provenance["training"]] == [2, 2]
    assert {p["dataset"] for p in provenance["training"]} == {
        pipelines.get_builder("synthetic", data_dir, "tiny").info.full_name}
    assert "--init_from=" + first in provenance["training"][1]["command"]
    assert provenance["steps"] == 4 and provenance["parameters"] == PARAMS[network]
    assert provenance["chosen_on_validation"]["step"] == 2
    # The test scores it records are those the evaluation wrote beside its images.
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert provenance["synthetic_test"] == {
        k: evaluated[k] for k in ("images", "psnr", "ssim", "input_psnr", "input_ssim")}
    # What ships is the checkpoint chosen on validation.
    x = np.random.RandomState(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        load_deblurrer().keras_model(x).numpy(),
        load_deblurrer(os.path.join(second, "checkpoints", "best")).keras_model(x).numpy())


@pytest.mark.parametrize("config", [
    dict(model="dual", dataset="synthetic"),
    dict(model="single_3level", dataset="dpdd"),
    dict(model="single_2level", dataset="synthetic", model_overrides=dict(num_blocks=1))])
def test_ship_model_refuses_runs_the_bundled_model_cannot_be(config, tmp_path):
    from experiments import ship_model as ship_app

    (tmp_path / "config.json").write_text(json.dumps(config))
    refusal = "one of .'single_2level', 'single_3level'. as built"
    with flagsaver.flagsaver(run=str(tmp_path)), pytest.raises(SystemExit, match=refusal):
        ship_app.main(["ship_model"])


def test_provenance_follows_every_form_of_init_from(tmp_path):
    """A run continued from another run's folder (with or without a trailing slash), its
    `checkpoints/`, `checkpoints/best` or its final `model.keras` / `weights_tf1.npz`
    names that run; any other weights file ends the chain."""
    from kpac_tf.training import run_folder

    run = tmp_path / "phase_a"
    (run / "checkpoints" / "best").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / "best" / "best.json").write_text('{"step": 750}')
    (run / "model.keras").write_bytes(b"")
    (tmp_path / "other.keras").write_bytes(b"")
    assert run_folder.run_of(str(run)) == (str(run), None)
    assert run_folder.run_of(str(run) + "/") == (str(run), None)
    assert run_folder.run_of(str(run / "checkpoints")) == (str(run), None)
    assert run_folder.run_of(str(run / "model.keras")) == (str(run), None)
    assert run_folder.run_of(str(run / "weights_tf1.npz")) == (str(run), None)
    assert run_folder.run_of(str(run / "checkpoints" / "best")) == (str(run), 750)
    assert run_folder.run_of(str(tmp_path / "other.keras")) == (None, None)


def test_ship_model_names_every_missed_target():
    from kpac_tf.deploy import shipping

    test = dict(psnr=29.0, input_psnr=27.5)
    held = dict(defocus=[dict(name="china_r5", gain=1.2), dict(name="flower_r10", gain=-0.1)],
                mean_gain=0.55, in_focus=[dict(name="chelsea", psnr=33.3),
                                          dict(name="text", psnr=46.0)])
    targets = shipping.Targets(min_gain_db=2.0, min_held_out_gain_db=1.0,
                               min_in_focus_psnr=40.0)
    missed = shipping.missed_targets(test, dict(psnr=29.5), held, targets)
    assert missed == [
        "synthetic test gain +1.50 dB < +2.0 dB",
        "synthetic test 29.00 dB <= Wiener 29.50 dB",
        "held-out mean gain +0.55 dB < +1.0 dB",
        "held-out flower_r10: no gain (-0.10 dB)",
        "in-focus chelsea: output 33.30 dB from the input < 40.0 dB"]
    good = dict(defocus=[dict(name="x", gain=1.1)], mean_gain=1.1,
                in_focus=[dict(name="y", psnr=40.0)],
                soft=[dict(name="brick", psnr=25.0)])  # reported, not a target
    assert shipping.missed_targets(dict(psnr=30.0, input_psnr=28.0),
                                   dict(psnr=25.0), good, targets) == []
    nan = float("nan")
    assert len(shipping.missed_targets(
        dict(psnr=nan, input_psnr=28.0), dict(psnr=25.0),
        dict(defocus=[dict(name="x", gain=nan)], mean_gain=nan,
             in_focus=[dict(name="y", psnr=nan)]), targets)) == 5
