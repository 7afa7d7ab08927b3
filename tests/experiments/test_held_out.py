"""experiments/held_out: a report and a JSON file."""

import pytest

from kpac_tf.evaluation import held_out


def test_app_reports_and_writes_json(tmp_path, monkeypatch, capsys):
    import json

    from absl.testing import flagsaver

    from experiments import held_out as held_out_app
    from kpac_tf import build_model

    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    monkeypatch.setattr(held_out, "PHOTOS", {"flower": held_out.PHOTOS["flower"]})
    monkeypatch.setattr(held_out, "MAX_RADII", (3.0,))
    monkeypatch.setattr(held_out, "IN_FOCUS", ("gravel",))
    monkeypatch.setattr(held_out, "SOFT", ())
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "m.keras"), model=None,
                             output=str(tmp_path / "h.json")):
        held_out_app.main(["held_out"])
    result = json.loads((tmp_path / "h.json").read_text())
    assert [row["name"] for row in result["defocus"]] == ["flower_r3"]
    assert "flower_r3" in capsys.readouterr().out
    build_model("dual", channels=4).save(tmp_path / "d.keras")
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "d.keras"), model=None, output=None):
        with pytest.raises(SystemExit, match="dual-pixel views"):
            held_out_app.main(["held_out"])
