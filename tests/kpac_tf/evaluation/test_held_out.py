"""kpac_tf.evaluation.held_out: the held-out photographs, their renders, the scores."""

import importlib.util

import numpy as np
import pytest

from kpac_tf.evaluation import held_out
from kpac_tf.rendering import synthetic


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
