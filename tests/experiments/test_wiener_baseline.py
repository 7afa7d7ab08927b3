"""experiments/wiener_baseline: the baseline table."""

import json

from absl.testing import flagsaver


def test_wiener_baseline_app(tmp_path, capsys):
    from experiments import wiener_baseline

    with flagsaver.flagsaver(dataset_config="tiny", data_dir=str(tmp_path / "tfds"),
                             output=str(tmp_path / "out"), snrs=["10", "100"]):
        wiener_baseline.main(["wiener_baseline"])
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(result["by_snr"]) == {"10.0", "100.0"}
    assert result["by_snr"]["10.0"]["images"] == 3
    assert "Wiener with the true mean radius" in capsys.readouterr().out
