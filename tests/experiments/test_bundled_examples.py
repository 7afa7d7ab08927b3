"""experiments/bundled_examples: crops and scores of the bundled model on photographs."""

import json

import imageio
from absl.testing import flagsaver

from kpac_tf.deploy import bundled, examples


def test_bundled_examples_app_writes_crops_and_scores(tmp_path):
    from experiments import bundled_examples as examples_app

    with flagsaver.flagsaver(checkpoint=None, model=None, output=str(tmp_path)):
        examples_app.main(["bundled_examples"])
    results = json.loads((tmp_path / "bundled_examples.json").read_text())
    assert results["model"] == bundled.label(bundled.bundled_info()["network"])
    held = "{}_r{:g}".format(*examples.HELD_OUT)
    for photo in examples.PHOTOS + (held,):
        panel = imageio.v3.imread(tmp_path / f"bundled_{photo}.png")
        assert panel.shape == (2 * examples.CROP, 2 * (3 * examples.CROP + 8), 3)
        (psnr_in, _), (psnr_out, _) = results[photo]["blurry"], results[photo]["deblurred"]
        assert 20 < psnr_in < 40 and 20 < psnr_out < 40
    # coffee's blurred part dominates the photo: the bundled model improves it.
    assert results["coffee"]["deblurred"][0] > results["coffee"]["blurry"][0]
