"""experiments/deblur: never overwrites, reports bad files."""

import os

import numpy as np
import pytest
from absl.testing import flagsaver

from experiments import deblur as deblur_app
from kpac_tf import build_model
from kpac_tf.data import images


def test_deblur_app_never_overwrites_and_reports_bad_files(tmp_path, rng):
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    photos = tmp_path / "photos"
    photos.mkdir()
    images.write_png(photos / "a.png", rng.randint(0, 256, (20, 30, 3)).astype(np.uint8))
    (photos / "broken.png").write_bytes(b"nope")
    common = dict(checkpoint=str(tmp_path / "m.keras"), model=None, input=str(photos))
    with flagsaver.flagsaver(output=str(photos), **common):
        with pytest.raises(SystemExit, match="refusing to overwrite the input .*a.png"):
            deblur_app.main(["deblur"])
    with flagsaver.flagsaver(output=str(tmp_path / "out"), save_attention=True, **common):
        with pytest.raises(SystemExit, match="1 of 2 images failed"):
            deblur_app.main(["deblur"])
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "a_attention.png",
                                                    "a_blur_map.png"]
    attention = images.read_image(tmp_path / "out" / "a_attention.png")
    assert attention.shape == (20, 30 * 5, 1)  # five rates side by side
    assert images.read_image(tmp_path / "out" / "a_blur_map.png").shape[1:] == (900, 3)
    single = tmp_path / "single.png"
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "m.keras"), model=None,
                             input=str(photos / "a.png"), output=str(single)):
        deblur_app.main(["deblur"])
    assert images.read_image(single).shape == (20, 30, 3)
