"""experiments/compare (kpac_tf.evaluation.comparison): two models on the same images,
with a confidence interval."""

import json

import pytest
from absl.testing import flagsaver

from experiments import compare
from kpac_tf import build_model


def run_app(capsys, **values):
    with flagsaver.flagsaver(**values):
        compare.main(["compare"])
    return capsys.readouterr().out


def test_two_models_compared_with_an_interval(data_dir, tmp_path, capsys):
    """On the synthetic test split, the bundled model against an untrained network: a
    clear PSNR difference whose interval excludes 0, a win on every image; the same
    model against itself: within noise."""
    build_model("single_2level", channels=4).save(tmp_path / "untrained.keras")
    out = tmp_path / "out"
    images = dict(dataset_config="tiny", data_dir=data_dir, split="test")
    printed = run_app(capsys, baseline=str(tmp_path / "untrained.keras"),
                      output_dir=str(out), resamples=1000, **images)
    result = json.loads((out / "comparison.json").read_text())
    psnr = result["metrics"]["psnr"]
    assert psnr["difference"]["low"] > 0 and (psnr["wins_a"], psnr["wins_b"]) == (3, 0)
    assert result["b"] == f"b: {tmp_path / 'untrained.keras'}" and result["resamples"] == 1000
    assert result["protocol"] == {"bit_depth": 8, "to_8bit": "round", "ssim": "uniform"}
    row = next(line for line in printed.splitlines() if line.startswith("PSNR"))
    assert "within noise" not in row and " dB [" in row and "3-0" in row
    for side in ("a", "b"):
        assert len((out / side / "per_image.csv").read_text().splitlines()) == 4

    printed = run_app(capsys, baseline=None, output_dir=str(tmp_path / "same"),
                      resamples=1000, **images)
    row = next(line for line in printed.splitlines() if line.startswith("PSNR"))
    assert "+0.000 dB [0.000, 0.000], within noise" in row and "0-0 (3 ties)" in row
    with pytest.raises(SystemExit, match="--resamples=10: give at least 100"):
        run_app(capsys, output_dir=str(tmp_path / "x"), resamples=10, **images)
