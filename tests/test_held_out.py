"""Held-out checks (kpac_tf.held_out): photographs, the second renderer, the scores."""

import importlib.util

import numpy as np
import pytest

from kpac_tf.evaluation import held_out
from kpac_tf.rendering import gather_defocus, synthetic


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


def test_cat_eye_aperture_is_a_lens_shape_brighter_at_the_rim():
    from kpac_tf.rendering.defocus import aperture_kernel

    assert np.array_equal(gather_defocus.cat_eye_aperture(0.3), np.ones((1, 1)))
    kernel = gather_defocus.cat_eye_aperture(8.0, angle=0.0)
    assert kernel.shape == (17, 17) and np.isclose(kernel.sum(), 1)
    support = kernel > 0
    # Narrower along the offset axis (x) than across it: 2 (1 - 0.35) R vs ~1.87 R.
    assert support[8].sum() < 0.75 * support[:, 8].sum()
    assert kernel[8, 12] > kernel[8, 8] and kernel[3, 8] > kernel[8, 8]  # bright rim
    turned = gather_defocus.cat_eye_aperture(8.0, angle=np.pi / 2)
    np.testing.assert_allclose(turned, kernel.T, atol=1e-12)
    # Not the training apertures: no disc or polygon of any size is within 0.3 of it
    # (L1 between normalised kernels, at most 2; the closest, a 6-px disc, is 0.37).
    for radius in (5.0, 6.0, 7.0, 8.0):
        for blades in (0, 5, 6, 7, 8):
            disc = aperture_kernel(radius, blades)
            pad = (17 - disc.shape[0]) // 2
            assert np.abs(np.pad(disc, pad) - kernel).sum() > 0.3


def test_gather_renderer_blurs_by_each_pixels_radius(rng):
    sharp = rng.uniform(0, 1, (40, 60, 3))
    radius = np.zeros((40, 60))
    np.testing.assert_allclose(gather_defocus.render_gather(sharp, radius), sharp, atol=1e-9)
    radius[:, 30:] = 4.0
    blurry = gather_defocus.render_gather(sharp, radius)
    np.testing.assert_allclose(blurry[:, :30], sharp[:, :30], atol=1e-9)  # no spill-over
    assert np.std(blurry[10:30, 40:50]) < 0.5 * np.std(sharp[10:30, 40:50])
    flat = np.full((20, 20, 3), 0.3)
    np.testing.assert_allclose(gather_defocus.render_gather(flat, np.full((20, 20), 3.0)), flat,
                               atol=1e-9)


def test_renders_are_fixed_and_partly_in_focus():
    first, again = held_out.defocused_photos(), held_out.defocused_photos()
    assert [r[0] for r in first] == [f"{n}_r{r:g}" for n in held_out.PHOTOS
                                     for r in held_out.MAX_RADII]
    for (name, blurry, sharp, _), (_, blurry2, _, _) in zip(first, again):
        assert blurry.dtype == np.uint8 and blurry.shape == sharp.shape
        np.testing.assert_array_equal(blurry, blurry2)
        assert 15 < held_out.metrics.psnr(held_out.metrics.quantised_unit(blurry),
                                          held_out.metrics.quantised_unit(sharp)) < 35, name


def test_check_scores_a_model_that_changes_nothing():
    result = held_out.check(lambda image: image)
    assert len(result["defocus"]) == len(held_out.PHOTOS) * len(held_out.MAX_RADII)
    assert all(row["gain"] == 0 for row in result["defocus"])
    assert [row["name"] for row in result["in_focus"]] == list(held_out.IN_FOCUS)
    assert not set(held_out.IN_FOCUS) & set(synthetic.SOURCES["train"])
    assert result["min_in_focus_psnr"] == float("inf")
    assert [row["name"] for row in result["soft"]] == list(held_out.SOFT)
    assert not set(held_out.SOFT) & (set(held_out.IN_FOCUS) | set(synthetic.SOURCES["train"]))
    report = held_out.format_report(result)
    assert "mean gain +0.00 dB" in report and "brick" in report.split("soft photographs")[1]


def test_in_focus_photographs_are_crisper_than_the_soft_ones():
    """The line between `IN_FOCUS` and `SOFT`, without a model: shrinking a photograph
    2x and enlarging it back loses an in-focus photograph's finest detail (PSNR to
    itself under 30 dB) and leaves a soft one nearly as it was (over 35 dB), as it
    leaves gravel blurred by a 1.5 px disc, defocus the synthetic test asks a model to
    remove."""
    from skimage.transform import resize

    from kpac_tf.rendering.defocus import render_defocus

    def round_trip_psnr(x):  # x: float (h, w, 3) in [0, 1]
        small = resize(x, (x.shape[0] // 2, x.shape[1] // 2), order=3, anti_aliasing=True)
        back = resize(small, x.shape, order=3)
        return -10 * np.log10(((back - x)[8:-8, 8:-8] ** 2).mean())

    in_focus = {name: photo / 255
                for name, photo in held_out.unblurred_photos(held_out.IN_FOCUS)}
    assert all(round_trip_psnr(photo) < 30 for photo in in_focus.values())
    assert all(round_trip_psnr(photo / 255) > 35
               for _, photo in held_out.unblurred_photos(held_out.SOFT))
    gravel = in_focus["gravel"]
    defocused, _ = render_defocus(gravel, np.full(gravel.shape[:2], 1.5), 0.0, 1.0)
    assert round_trip_psnr(defocused) > 35


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
