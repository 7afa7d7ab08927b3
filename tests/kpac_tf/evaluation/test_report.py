"""kpac_tf.evaluation.report: the picture of an evaluation, and the crops it shows."""

import numpy as np

from kpac_tf.data import images
from kpac_tf.evaluation import report
from kpac_tf.evaluation.scoring import ImageScore


def test_the_crop_is_where_the_error_changed_most():
    sharp = np.zeros((40, 50, 3))
    blurry = sharp.copy()
    blurry[5:15, 30:40] = 0.5   # the input's error, removed by the output below
    output = blurry.copy()
    output[5:15, 30:40] = 0.0
    output[25:35, 2:12] = 0.5  # an error the output adds
    assert report._where_changed(blurry, output, sharp, 10, largest=True) == (5, 30)
    assert report._where_changed(blurry, output, sharp, 10, largest=False) == (25, 2)


def test_the_report_keeps_the_extremes_and_draws_them(tmp_path, rng):
    picture = report.Report(count=2)
    gains = {"a": 3.0, "b": -1.0, "c": 0.5, "d": 2.0, "e": -0.2}
    for name, gain in gains.items():
        sharp = rng.uniform(0, 1, (24, 30, 3))
        picture.add(ImageScore(name, 25 + gain, 0.8, 0.02, 25.0, 0.7, 0.03),
                    sharp, sharp, sharp)
    assert [c.name for c in sorted(picture._best, reverse=True)] == ["a", "d"]
    assert [c.name for c in sorted(picture._worst, reverse=True)] == ["b", "e"]
    assert sorted(picture._best)[0].panel.shape == (24, 3 * 24 + 4, 3)  # 3 crops, 2 gaps
    path = picture.draw(str(tmp_path / "report.png"), "test")
    drawn = images.read_image(path)
    assert drawn.dtype == np.uint8 and drawn.shape[2] == 3 and drawn.shape[0] > 600
    assert report.Report().draw(str(tmp_path / "none.png"), "empty") is None
    assert not (tmp_path / "none.png").exists()
