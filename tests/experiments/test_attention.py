"""experiments/attention: the analysis on synthetic data."""

import json

from absl.testing import flagsaver

from experiments import attention as attention_app
from kpac_tf import build_model


def test_attention_app_on_synthetic(tmp_path, capsys):
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "m.keras"), model=None,
                             dataset_config="tiny", data_dir=str(tmp_path / "tfds"),
                             output=str(tmp_path / "out")):
        attention_app.main(["attention"])
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    correlation = result["weighted_dilation_vs_blur_radius_pearson"]
    # Reported per block; its value (noise for an untrained network) is tested below.
    assert set(correlation) == {"kpac_0", "kpac_1"}
    for name in ("input.png", "deblurred.png", "kpac_1_rate5.png",
                 "deblurred_alpha_10000.png"):
        assert (tmp_path / "out" / name).exists()
