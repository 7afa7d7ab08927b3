"""experiments/train: flags to a run."""

import json
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from absl.testing import flagsaver

from kpac_tf.data import images
from tests.test_case import REPO, tiny_config


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
    assert "Beside the bundled model" not in printed  # only on the default config

    # How a run on the default config closes, here on this tiny run's test images.
    recorded = train.settings.recorded_settings(str(tmp_path))
    train.print_beside_the_bundled_model(train.settings.make_config(
        None, **{**recorded, "model_dir": str(tmp_path)}))
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "Beside the bundled model, on the same 3 test images:"
    assert lines[1].startswith("  blurry input ") and lines[2].startswith(
        "  this run (2 steps) ") and lines[3].startswith("  bundled single_3level (68,000 steps)")
    run = json.loads((tmp_path / "metrics.json").read_text())
    assert f"PSNR {run['psnr']:.2f} dB  SSIM {run['ssim']:.4f}" in lines[2]
    assert f"PSNR {run['input_psnr']:.2f} dB" in lines[1]
    assert "2 steps show the pipeline working end to end" in printed
    picture = tmp_path / "beside_bundled" / "before_after.png"
    assert f"(blurry | this run | bundled model | sharp): {picture}" in printed
    drawn = images.read_image(picture)
    assert drawn.shape[1] == 4 * drawn.shape[0] + 3 * 4  # four square panels, three gaps
    assert lines[-1] == 'See it on your own photos: pip install -e ".[demo]" && python -m ' \
        "experiments.demo"


def test_a_run_folder_alone_resumes_with_its_recorded_settings(tmp_path, data_dir, capsys):
    """--model_dir with nothing else resumes the run as config.json recorded it;
    --steps may be raised; a flag that contradicts the record is refused, naming it."""
    from experiments import train

    cache = tmp_path.parent / f"{tmp_path.name}_cache"
    with flagsaver.flagsaver(model_dir=str(tmp_path), dataset_config="tiny",
                             data_dir=data_dir, steps=2, batch_size=2, crop_size=32,
                             channels=4, eval_images=1, save_every=2, eval_every=2,
                             cache_dir=str(cache)):
        train.main(["train"])
    assert (cache / "train-round" / "manifest.json").exists()  # --cache_dir, used
    with flagsaver.flagsaver(model_dir=str(tmp_path), steps=4):
        train.main(["train"])
    assert "final model at step 4" in capsys.readouterr().out
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["steps"], saved["model_overrides"], saved["crop_size"]) == (
        4, {"channels": 4}, 32)
    with flagsaver.flagsaver(model_dir=str(tmp_path)):
        train.main(["train"])  # nothing left to train: the final files again
    assert "final model at step 4" in capsys.readouterr().out
    with flagsaver.flagsaver(model_dir=str(tmp_path), channels=8):
        with pytest.raises(SystemExit, match=r"holds a different run \(model_overrides: "
                                             r"\{'channels': 4\} -> \{'channels': 8\}\)"):
            train.main(["train"])



def test_a_preset_is_overridden_only_by_flags_given(tmp_path, monkeypatch):
    """A flag's own default (seed 0, ema_decay 0, to_8bit round, float32) never
    overrides what the preset sets; a flag given does."""
    from experiments import train

    monkeypatch.setitem(train.settings.PRESETS, "embedded_default", dict(
        train.settings.PRESETS["embedded_default"], seed=7, ema_decay=0.5,
        to_8bit="high_byte", precision="mixed_bfloat16", model="single_3level"))
    with flagsaver.flagsaver(model_dir=str(tmp_path / "a")):
        config = train.config_from_flags()
    assert (config.seed, config.ema_decay, config.to_8bit, config.precision,
            config.model) == (7, 0.5, "high_byte", "mixed_bfloat16", "single_3level")
    with flagsaver.flagsaver(model_dir=str(tmp_path / "b"), seed=0, ema_decay=0.0,
                             model="single_2level"):
        config = train.config_from_flags()
    assert (config.seed, config.ema_decay, config.model) == (0, 0.0, "single_2level")


def test_rerunning_a_perceptual_weight_command_resumes(tmp_path, data_dir):
    """--perceptual_weight, the objective's flag before --loss, given again on a run
    folder that recorded the objective as `loss`, resumes it; another weight is
    refused as a different run."""
    from experiments import train

    train.settings.write_or_check_config(tiny_config(tmp_path, data_dir,
                                                     perceptual_weight=0.1))
    with flagsaver.flagsaver(model_dir=str(tmp_path), perceptual_weight=0.1):
        config = train.config_from_flags()
    assert config.loss == {"mae": 1.0, "perceptual": 0.1}
    train.settings.write_or_check_config(config)
    with flagsaver.flagsaver(model_dir=str(tmp_path), perceptual_weight=0.2):
        with pytest.raises(ValueError, match="holds a different run \\(loss: "):
            train.settings.write_or_check_config(train.config_from_flags())


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                    reason="this machine has a GPU")
def test_require_gpu_refuses_at_once_and_writes_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "experiments.train",
                             f"--model_dir={tmp_path / 'run'}", "--require_gpu"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert re.search(r"train: no GPU visible to TensorFlow \(.+\); --require_gpu refuses to "
                     r"train on the CPU", result.stderr), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
