"""Held-out checks (kpac_tf.held_out): photographs, the second renderer, the scores."""

import importlib.util

import numpy as np
import pytest

from kpac_tf import held_out, synthetic


def test_held_out_photographs_are_never_training_sources():
    names = set(held_out.PHOTOS)
    assert not names & set().union(*synthetic.SOURCES.values())
    assert {package for package, _ in held_out.PHOTOS.values()} == {"matplotlib", "sklearn"}
    for name in held_out.PHOTOS:
        assert held_out.photo_path(name).endswith(".jpg")


def test_missing_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="china.jpg of the sklearn.*pip install"):
        held_out.photo_path("china")


def test_rim_aperture_is_normalised_soft_and_bright_at_the_rim():
    assert np.array_equal(held_out.rim_aperture(0.3), np.ones((1, 1)))
    kernel = held_out.rim_aperture(6.0)
    assert kernel.shape == (15, 15) and np.isclose(kernel.sum(), 1)
    centre = kernel[7, 7]
    assert kernel[7, 12] > 1.3 * centre      # r = 5: brighter towards the rim
    assert 0 < kernel[7, 13] < kernel[7, 12]  # r = 6: the soft edge
    assert kernel[7, 14] == 0


def test_gather_renderer_blurs_by_each_pixels_radius(rng):
    sharp = rng.uniform(0, 1, (40, 60, 3))
    radius = np.zeros((40, 60))
    np.testing.assert_allclose(held_out.render_gather(sharp, radius), sharp, atol=1e-9)
    radius[:, 30:] = 4.0
    blurry = held_out.render_gather(sharp, radius)
    np.testing.assert_allclose(blurry[:, :30], sharp[:, :30], atol=1e-9)  # no spill-over
    assert np.std(blurry[10:30, 40:50]) < 0.5 * np.std(sharp[10:30, 40:50])
    flat = np.full((20, 20, 3), 0.3)
    np.testing.assert_allclose(held_out.render_gather(flat, np.full((20, 20), 3.0)), flat,
                               atol=1e-9)


def test_renders_are_fixed_and_partly_in_focus():
    first, again = held_out.defocused_photos(), held_out.defocused_photos()
    assert [r[0] for r in first] == [f"{n}_r{r:g}" for n in held_out.PHOTOS
                                     for r in held_out.MAX_RADII]
    for (name, blurry, sharp, _), (_, blurry2, _, _) in zip(first, again):
        assert blurry.dtype == np.uint8 and blurry.shape == sharp.shape
        np.testing.assert_array_equal(blurry, blurry2)
        assert 15 < held_out.metrics.psnr(held_out.metrics.to_unit(blurry),
                                          held_out.metrics.to_unit(sharp)) < 35, name


def test_check_scores_a_model_that_changes_nothing():
    result = held_out.check(lambda image: image)
    assert len(result["defocus"]) == len(held_out.PHOTOS) * len(held_out.MAX_RADII)
    assert all(row["gain"] == 0 for row in result["defocus"])
    assert [row["name"] for row in result["in_focus"]] == (
        list(held_out.PHOTOS) + list(synthetic.SOURCES["test"]))
    assert result["min_in_focus_psnr"] == float("inf")
    assert "mean gain +0.00 dB" in held_out.format_report(result)


def test_app_reports_and_writes_json(tmp_path, monkeypatch, capsys):
    import json

    from absl.testing import flagsaver

    from experiments import held_out as held_out_app
    from kpac_tf import build_model

    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    monkeypatch.setattr(held_out, "PHOTOS", {"flower": held_out.PHOTOS["flower"]})
    monkeypatch.setattr(held_out, "MAX_RADII", (3.0,))
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
