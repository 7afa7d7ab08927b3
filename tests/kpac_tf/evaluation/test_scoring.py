"""kpac_tf.evaluation.scoring: one scene at a time; LPIPS as the lpips package scores."""

import logging

import numpy as np

from kpac_tf import Deblurrer, build_model
from kpac_tf.evaluation import items as evaluation_items, scoring


def test_evaluate_takes_one_scene_at_a_time(tmp_path, caplog):
    """A stream of items is never drawn ahead: item i is taken only after item i - 1
    was scored and written, and each is loaded once, when its turn comes."""
    loads = []

    def stream(out):
        for i in range(3):
            assert len(list((out / "images").glob("*.png"))) == i, "drew ahead"

            def load(i=i):
                loads.append(i)
                x = np.full((1, 8, 12, 3), 0.1 * i, np.float32)
                return x, x
            yield f"scene{i}", load

    model = Deblurrer.from_keras(build_model("single_2level", channels=4))
    summary = scoring.evaluate(model, stream(tmp_path / "a"), str(tmp_path / "a"),
                                  count=3)
    assert summary["images"] == 3 and loads == [0, 1, 2]
    items = evaluation_items.Items(3, lambda: stream(tmp_path / "b"))
    assert len(items) == 3 and len(loads) == 3  # the count costs no loading
    assert scoring.evaluate(model, items, str(tmp_path / "b"))["images"] == 3
    # No count: the progress bar runs without a total, and closes with the final count.
    with caplog.at_level(logging.INFO, logger="absl"):
        assert scoring.evaluate(model, stream(tmp_path / "c"), str(tmp_path / "c"))[
            "images"] == 3
    assert loads == [0, 1, 2] * 3
    assert caplog.records[-1].getMessage().startswith("3 images, ")


def test_lpips_scores_match_the_lpips_package(reference_dir, tmp_path):
    """The LPIPS column against what the reference `lpips` package computed for the
    same image pairs (tests/data/lpips_alex_io.npz), not against our own metric:
    evaluation scores 8-bit images, which moves these distances by at most 1.3e-5."""
    from kpac_tf.evaluation.lpips import LPIPS

    io = np.load(reference_dir / "lpips_alex_io.npz")
    metric = LPIPS.from_files(reference_dir / "lpips_alex_alexnet_trunk.pth",
                              reference_dir / "lpips_v0.1_alex.pth")
    outputs = iter(io["in0"])
    items = [(f"pair{i}", lambda i=i: (io["in1"][i:i + 1], io["in1"][i:i + 1]))
             for i in range(len(io["in0"]))]
    summary = scoring.evaluate(lambda inputs: next(outputs)[None], items,
                               str(tmp_path / "out"), lpips=metric)
    rows = (tmp_path / "out" / "per_image.csv").read_text().splitlines()[1:]
    np.testing.assert_allclose([float(row.split(",")[-2]) for row in rows],
                               io["distance"], atol=5e-5)
    assert summary["input_lpips"] == 0  # the "blurry" input is the sharp image itself
