"""experiments/ablations (kpac_tf.paper.ablations): every variant trained alike."""

import json

from absl.testing import flagsaver

from experiments import ablations


def test_ablations_app_trains_every_variant_alike(tmp_path, capsys):
    data_dir = str(tmp_path / "tfds")
    with flagsaver.flagsaver(table="1", steps=2, channels=4, dataset_config="tiny",
                             data_dir=data_dir, crop_size=32, batch_size=2,
                             output=str(tmp_path / "out")):
        ablations.main(["ablations"])
    result = json.loads((tmp_path / "out" / "table1.json").read_text())
    assert set(result["results"]) == {"w/o weight sharing", "w/ weight sharing"}
    # The ablations_cpu preset, then the flags given.
    assert result["preset"] == "ablations_cpu"
    assert (result["budget"]["steps"], result["budget"]["learning_rate"]) == (2, 1e-3)
    sharing = result["results"]
    assert sharing["w/o weight sharing"]["params"] > sharing["w/ weight sharing"]["params"]
    for variant in ("w_o_weight_sharing", "w_weight_sharing"):
        config = json.loads((tmp_path / "out" / "table1" / variant / "config.json").read_text())
        assert (config["steps"], config["seed"]) == (2, 0)
    # Each variant against the paper's model, image by image, with an interval.
    assert sharing["w/ weight sharing"]["versus_reference"] is None
    versus = sharing["w/o weight sharing"]["versus_reference"]["psnr"]
    assert versus["difference"]["images"] == 3 and versus["wins_a"] + versus["wins_b"] + \
        versus["ties"] == 3
    assert versus["difference"]["low"] <= versus["difference"]["mean"] <= \
        versus["difference"]["high"]
    printed = capsys.readouterr().out
    assert "paper PSNR" in printed and "vs reference (95% CI)" in printed
    row = next(line for line in printed.splitlines() if line.startswith("w/o weight"))
    assert f"{versus['difference']['mean']:+.3f} dB [" in row
