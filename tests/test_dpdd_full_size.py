"""The full-size DPDD path end to end on a stand-in archive (synthetic scenes, NOT
DPDD): 1680x1120 16-bit PNGs in the archive's layout and naming, built with both
configs, 2 training steps on 512 crops, the test split evaluated at full size."""

import json

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from experiments import evaluate
from kpac_tf.data import images, pipelines
from kpac_tf.datasets.dpdd import stand_in as dpdd_stand_in
from kpac_tf.training import loop, settings

COUNTS = {"train": 2, "val": 1, "test": 2}


@pytest.mark.large
def test_stand_in_archive_builds_trains_and_evaluates_at_full_size(tmp_path, capsys):
    manual_dir = tmp_path / "stand_in"
    dpdd_stand_in.write_archive(manual_dir, COUNTS, seed=0)
    data_dir = str(tmp_path / "tfds")
    for config in ("single", "dual"):
        builder = pipelines.prepare("dpdd", data_dir, config, manual_dir)
        assert {name: split.num_examples for name, split in builder.info.splits.items()
                } == {"train": 2, "validation": 1, "test": 2}
        assert builder.info.metadata["stand_in"] is True
        example = next(iter(builder.as_dataset(split="validation")))
        assert example["image"].dtype == tf.uint16
        assert example["image"].shape == example["target"].shape == (1120, 1680, 3)

    run = tmp_path / "run"
    summary = loop.train(settings.make_config(
        None, model_dir=str(run), dataset="dpdd", data_dir=data_dir, steps=2,
        batch_size=4, crop_size=512, eval_every=2, save_every=2, eval_images=1,
        log_every=1, model_overrides={"channels": 8}))
    assert summary["step"] == 2 and np.isfinite(summary["last_loss"])

    out = tmp_path / "eval"
    with flagsaver.flagsaver(checkpoint=str(run), dataset="dpdd", data_dir=data_dir,
                             manual_dir=str(manual_dir), split="test",
                             output_dir=str(out)):
        evaluate.main(["evaluate"])
    assert "single_2level" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 2 and np.isfinite(metrics["psnr"])
    names = sorted(source for source, _ in
                   dpdd_stand_in.capture_names(COUNTS, seed=0)["test"])
    rows = (out / "per_image.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == names
    for name in names:
        assert images.read_image(out / "images" / f"{name}.png").shape == (1120, 1680, 3)
