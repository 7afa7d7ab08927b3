"""experiments/train: flags to a run."""

import json

from absl.testing import flagsaver


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
