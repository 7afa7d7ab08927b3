"""kpac_tf.evaluation.scoring: one scene at a time; LPIPS as the lpips package scores."""

import json
import logging

import numpy as np
import pytest

from kpac_tf import Deblurrer, build_model
from kpac_tf.data import images
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


def stored_pairs(rng, dtype, count=2, size=(24, 20)):
    """(name, load) items of stored integer images: a sharp image and a softened copy."""
    peak = np.iinfo(dtype).max
    items = []
    for i in range(count):  # textures of 1/6 the range: 24-27 dB once softened
        sharp = (peak * (0.4 + rng.uniform(0, 1 / 6, (1, *size, 3)))).astype(dtype)
        blurry = ((sharp.astype(np.float64) + np.roll(sharp, 1, axis=2)) / 2).astype(dtype)
        items.append((f"scene{i}", lambda x=blurry, y=sharp: (x, y)))
    return items


def test_each_protocol_scores_what_it_says(rng, tmp_path):
    """16-bit scenes under every protocol: the network runs once per distinct input
    (three: 8-bit round, 8-bit high_byte, 16-bit), each protocol's scores equal
    `score_image` under it, and metrics.json records them; an 8-bit source needs one run."""
    from kpac_tf.evaluation import protocols

    seen = []

    def deblurrer(inputs):
        seen.append(inputs.numpy())
        return inputs * 0.9
    items = stored_pairs(rng, np.uint16)
    summary = scoring.evaluate(deblurrer, items, str(tmp_path / "a"),
                               protocols=protocols.ALL)
    assert len(seen) == 3 * len(items)
    assert summary["protocol"] == protocols.PAPER.as_dict() and summary["to_8bit"] == "round"
    assert summary["source_bit_depth"] == 16
    assert [s["label"] for s in summary["protocols"]] == [p.label for p in protocols.ALL]
    for protocol, recorded in zip(protocols.ALL, summary["protocols"]):
        by_hand = [scoring.score_image(name, blurry, protocol.network_input(blurry) * 0.9,
                                       sharp, protocol=protocol)
                   for name, (blurry, sharp) in ((n, load()) for n, load in items)]
        assert recorded["protocol"] == protocol.as_dict() and recorded["images"] == 2
        for key in ("psnr", "ssim", "mae", "input_psnr", "input_ssim"):
            assert recorded[key] == pytest.approx(np.mean([getattr(x, key) for x in by_hand]),
                                                  abs=1e-12), (protocol, key)
    by_label = {s["label"]: s for s in summary["protocols"]}
    # 16 bits and 8 bits differ (quantisation), the two 8-bit conversions differ, and
    # the two SSIM windows differ; PSNR does not depend on the window.
    assert by_label["16-bit, SSIM uniform"]["psnr"] != by_label["8-bit (round), SSIM uniform"]["psnr"]
    assert by_label["8-bit (high_byte), SSIM uniform"]["input_psnr"] != \
        by_label["8-bit (round), SSIM uniform"]["input_psnr"]
    assert by_label["8-bit (round), SSIM gaussian"]["psnr"] == \
        by_label["8-bit (round), SSIM uniform"]["psnr"]
    assert by_label["8-bit (round), SSIM gaussian"]["ssim"] != \
        by_label["8-bit (round), SSIM uniform"]["ssim"]
    # The output images are written at the first protocol's depth.
    scoring.evaluate(deblurrer, items, str(tmp_path / "b"), protocols=[protocols.Protocol(16)])
    assert images.read_image(tmp_path / "b" / "images" / "scene0.png").dtype == np.uint16
    seen.clear()
    summary = scoring.evaluate(deblurrer, stored_pairs(rng, np.uint8), str(tmp_path / "c"),
                               protocols=protocols.ALL)
    assert len(seen) == 2 and summary["source_bit_depth"] == 8


def test_the_scores_match_scikit_image_under_each_protocol(rng):
    """One image by hand: the target and output as each protocol defines them, scored
    by scikit-image."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from kpac_tf.evaluation.protocols import Protocol

    sharp = rng.randint(0, 65536, (1, 30, 26, 3)).astype(np.uint16)
    output = np.clip(sharp / 32767.5 - 1 + rng.normal(0, 0.02, sharp.shape), -1, 1) \
        .astype(np.float32)
    targets = {8: np.round(sharp[0] / 257) / 255, 16: sharp[0] / 65535}
    outputs = {8: np.round((output[0] + 1) * 127.5).astype(np.float64) / 255,
               16: np.round((output[0] + np.float32(1)) * np.float32(32767.5))
               .astype(np.float64) / 65535}
    for depth in (8, 16):
        for window, kwargs in (("uniform", {}), ("gaussian", dict(
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False))):
            s = scoring.score_image("x", sharp, output, sharp,
                                    protocol=Protocol(depth, "round", window))
            assert s.psnr == pytest.approx(peak_signal_noise_ratio(
                targets[depth], outputs[depth], data_range=1), abs=1e-9)
            assert s.ssim == pytest.approx(structural_similarity(
                outputs[depth], targets[depth], data_range=1, channel_axis=-1, **kwargs),
                abs=1e-6)


def test_scores_that_mean_a_broken_evaluation_are_warned_about(rng, tmp_path):
    """Mismatched pairs (the blurry input far from its target), a NaN output, a
    constant output and an output far worse than its input each give a sentence
    naming the images; a sound evaluation gives none."""
    pairs = stored_pairs(rng, np.uint8, count=4, size=(24, 24))
    good = scoring.evaluate(lambda x: x, pairs, str(tmp_path / "good"))
    assert good["warnings"] == []
    # scene0's blurry image with another, darker scene's target.
    swapped = [(pairs[0][0], lambda: (pairs[0][1]()[0], pairs[1][1]()[1] // 3))] + pairs[1:]
    summary = scoring.evaluate(lambda x: x, swapped, str(tmp_path / "swapped"))
    (warning,) = summary["warnings"]
    assert warning.startswith("the blurry input scores below 15 dB against its target on "
                              "1 of 4 images (scene0): ") and "paired" in warning

    colour = np.array([-0.5, 0.0, 0.5], np.float32)  # constant, though not grey
    behaviours = iter([lambda x: -x, lambda x: x * np.nan, lambda x: x * 0 + colour,
                       lambda x: -x])

    def broken(inputs):  # far worse than the input, NaN, constant, far worse
        return next(behaviours)(inputs)
    summary = scoring.evaluate(broken, pairs, str(tmp_path / "broken"))
    warnings = summary["warnings"]
    assert len(warnings) == 3, warnings
    assert "over 6 dB below the blurry input on 2 of 4 images (scene0, scene3)" in warnings[0]
    assert "NaN or infinite values on 1 of 4 images (scene1), which make every output " \
        "mean NaN" in warnings[1]
    assert "one constant colour on 1 of 4 images (scene2)" in warnings[2]
    recorded = json.loads((tmp_path / "broken" / "metrics.json").read_text())
    assert recorded["warnings"] == warnings
    # The NaN output scores NaN (not as the black image it would quantise to) and
    # makes the output means NaN; its input's scores stay.
    rows = scoring.read_per_image(tmp_path / "broken" / "per_image.csv")
    assert np.isnan(rows[1].psnr) and np.isfinite(rows[1].input_psnr)
    assert np.isnan(summary["psnr"]) and np.isfinite(summary["input_psnr"])


def test_per_image_scores_read_back_as_written(tmp_path, rng):
    summary = scoring.evaluate(lambda x: x * 0.5, stored_pairs(rng, np.uint8), str(tmp_path))
    scores = scoring.read_per_image(tmp_path / "per_image.csv")
    assert [s.name for s in scores] == ["scene0", "scene1"]
    assert np.mean([s.psnr for s in scores]) == pytest.approx(summary["psnr"], abs=1e-6)
    assert np.isnan(scores[0].lpips)  # not measured
    (tmp_path / "bad.csv").write_text("name,psnr\nx,high\n")
    with pytest.raises(ValueError, match="bad.csv: not a per_image.csv"):
        scoring.read_per_image(tmp_path / "bad.csv")


def test_broken_outputs_never_raise_a_mean(rng):
    """An output holding NaN scores NaN under every protocol (8-bit quantising does
    not turn it into a number), and one such image makes every output mean NaN: a
    model never scores better because outputs broke. Perfect (infinite) PSNRs are
    left out of the mean; the input's scores are the input's."""
    sharp = rng.randint(0, 256, (1, 32, 32, 3)).astype(np.uint8)
    close = sharp.astype(np.float32) / 127.5 - 1 + 0.01
    broken = np.full_like(close, np.nan)
    good = scoring.score_image("good", sharp, close, sharp)
    nan = scoring.score_image("nan", sharp, broken, sharp)
    assert np.isnan([nan.psnr, nan.ssim, nan.mae]).all() and nan.input_ssim == 1.0
    summary = scoring.summarize([good, nan])
    assert summary["images"] == 2 and np.isnan([summary[k] for k in (
        "psnr", "ssim", "mae")]).all()
    assert (summary["input_psnr"], summary["input_ssim"]) == (np.inf, 1.0)
    perfect = scoring.score_image("perfect", sharp, sharp.astype(np.float32) / 127.5 - 1,
                                  sharp)
    assert scoring.summarize([good, perfect])["psnr"] == good.psnr
