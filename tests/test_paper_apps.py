"""The paper-reproduction apps: key idea, complexity, ablations, attention."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from experiments import (ablations, attention as attention_app,
                         complexity as complexity_app, inverse_kernels as inverse_app)
from kpac_tf import build_model
from kpac_tf.evaluation import metrics, wiener
from kpac_tf.paper import attention, inverse_kernels as ik
from kpac_tf.paper.complexity import count_flops, count_macs, mac_breakdown
from kpac_tf.rendering import defocus


def test_inverse_kernel_tools():
    k = defocus.aperture_kernel(2.0)
    same = ik.lanczos_upsample(k, 1.0)  # scale 1: the kernel, inside a zero margin
    margin = (same.shape[0] - k.shape[0]) // 2
    np.testing.assert_allclose(same[margin:-margin, margin:-margin], k, atol=1e-12)
    assert same.sum() == pytest.approx(1)
    assert ik.lanczos_upsample(k, 3.0).sum() / 9 == pytest.approx(1, abs=0.02)
    dilated = ik.dilate(k, 3)
    assert dilated.shape == (13, 13) and dilated.sum() == pytest.approx(1)
    assert not dilated[1::3].any()
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    inverse = ik.wiener_inverse(delta, 9, snr=99.0)
    assert inverse[4, 4] == pytest.approx(0.99) and abs(inverse).sum() == pytest.approx(0.99)
    # A Wiener inverse undoes most of the blur it was made for.
    sharp = np.random.RandomState(0).uniform(0, 1, (64, 64))
    blurry = ik.convolve(sharp, k)
    restored = ik.convolve(blurry, ik.wiener_inverse(k, 31, snr=1e4))
    inner = (slice(8, -8), slice(8, -8), None)
    assert metrics.psnr(restored[inner], sharp[inner]) > metrics.psnr(
        blurry[inner], sharp[inner]) + 5


def test_inverse_kernels_app_confirms_eqs_4_and_5(tmp_path, capsys):
    with flagsaver.flagsaver(output=str(tmp_path), images=["camera"]):
        inverse_app.main(["inverse_kernels"])
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["psnr_scaled_inverse_vs_inverse_of_scaled"] > 45     # Eq. 4
    assert result["psnr_dilated_vs_scaled_inverse"] > 45               # Sec. 4.1
    assert result["accuracy_nnls"] >= result["accuracy_alpha_half"] > 0.85   # Eq. 5
    assert (tmp_path / "camera_fig1c_scaled_inverse.png").exists()
    assert "psnr_dilated_vs_scaled_inverse" in capsys.readouterr().out


def test_macs_by_formula_agree_with_the_profiler():
    for name in ("single_2level", "single_3level", "dual"):
        model = build_model(name, channels=8)
        assert 2 * count_macs(model, 64, 96) == pytest.approx(count_flops(model, 64, 96),
                                                              rel=0.01)


@pytest.mark.large
def test_paper_table5_flops_are_ours_without_transposed_convs():
    for name, paper in (("single_2level", 358), ("single_3level", 197)):
        model = build_model(name)
        flops = count_flops(model, 720, 1280)
        without = flops - 2 * mac_breakdown(model, 720, 1280)["transposed_conv"]
        assert without / 1e9 == pytest.approx(paper, abs=0.6)


def test_complexity_app(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(complexity_app, "HEIGHT", 64)
    monkeypatch.setattr(complexity_app, "WIDTH", 96)
    with flagsaver.flagsaver(output=str(tmp_path), runs=1):
        complexity_app.main(["complexity"])
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["single_2level"]["params"] == 1_578_277
    assert result["dual"]["gflops"] > result["dual"]["gflops_without_transposed_convs"]


def test_ablations_app_trains_every_variant_alike(tmp_path, capsys):
    data_dir = str(tmp_path / "tfds")
    with flagsaver.flagsaver(table="1", steps=2, channels=4, dataset_config="tiny",
                             data_dir=data_dir, crop_size=32, batch_size=2,
                             output=str(tmp_path / "out")):
        ablations.main(["ablations"])
    result = json.loads((tmp_path / "out" / "table1.json").read_text())
    assert set(result["results"]) == {"w/o weight sharing", "w/ weight sharing"}
    assert result["budget"]["steps"] == 2
    sharing = result["results"]
    assert sharing["w/o weight sharing"]["params"] > sharing["w/ weight sharing"]["params"]
    for variant in ("w_o_weight_sharing", "w_weight_sharing"):
        config = json.loads((tmp_path / "out" / "table1" / variant / "config.json").read_text())
        assert (config["steps"], config["seed"]) == (2, 0)
    assert "paper PSNR" in capsys.readouterr().out


def test_constant_attention_modulation(rng):
    model = build_model("single_2level")  # at c = 4 the blocks barely reach the output
    x = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    ones = attention.modulated_model(model, [1, 1, 1, 1, 1])
    block = model.get_layer("kpac_0")
    first_only = attention.modulated_model(model, [1, 0, 0, 0, 0])
    assert not np.allclose(ones(x), first_only(x))
    # With every map forced to 1 the block equals the original with alpha = 1.
    import keras
    inner = keras.Model(model.inputs, block.input)(x)
    np.testing.assert_allclose(
        ones.get_layer("kpac_0")(inner).numpy(),
        block(inner, scale_attention_maps=np.ones((1, 8, 8, 5), np.float32)).numpy(),
        atol=1e-6)
    with pytest.raises(ValueError, match="3 alphas for 5 rates"):
        attention.modulated_model(model, [1, 0, 0])


def test_weighted_dilation_and_maps(rng):
    maps = np.zeros((2, 2, 5))
    maps[0, 0] = [1, 0, 0, 0, 0]
    maps[0, 1] = [0, 0, 0, 0, 1]
    maps[1, :] = [1, 1, 1, 1, 1]
    np.testing.assert_allclose(attention.weighted_dilation(maps, [1, 2, 3, 4, 5]),
                               [[1, 5], [3, 3]])
    model = build_model("single_3level", channels=4)
    out = attention.block_attention(model, rng.uniform(-1, 1, (1, 30, 44, 3)))
    assert set(out) == {"kpac_0", "kpac_1"} and out["kpac_0"].shape == (30, 44, 5)


def test_attention_app_on_synthetic(tmp_path, capsys):
    model = build_model("single_2level", channels=4)
    model.save(tmp_path / "m.keras")
    with flagsaver.flagsaver(checkpoint=str(tmp_path / "m.keras"), model=None,
                             dataset_config="tiny", data_dir=str(tmp_path / "tfds"),
                             output=str(tmp_path / "out")):
        attention_app.main(["attention"])
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    correlation = result["weighted_dilation_vs_blur_radius_pearson"]
    # Reported per block; its value (noise for an untrained network) is tested below.
    assert set(correlation) == {"kpac_0", "kpac_1"}
    for name in ("input.png", "deblurred.png", "kpac_1_rate5.png",
                 "deblurred_alpha_10000.png"):
        assert (tmp_path / "out" / name).exists()


def test_blur_radius_correlation_of_attention_that_follows_the_radius(monkeypatch, rng):
    """Catches a correlation that pairs dilations with the wrong pixels or images,
    pools the wrong images, or takes the wrong rates or coefficient: attention moving
    from rate 1 to rate 5 as the radius grows must give r = +1 (kpac_0), the reverse
    r = -1 (kpac_1)."""
    levels = rng.randint(0, 256, (3, 16, 16))  # each test image's radius, in its pixels
    levels[0] = 100  # flat: correlates only when pooled with the next image
    radii = levels / 50
    radii[2] = 5.1 - radii[2]  # contradicts its attention, but lies beyond the limit
    examples = [{"blurry": tf.constant(np.repeat(v[..., None], 3, -1), tf.uint8),
                 "blur_radius": tf.constant(r, tf.float32)} for v, r in zip(levels, radii)]
    builder = SimpleNamespace(as_dataset=lambda split: {"test": examples}[split])

    def radius_following_attention(model, inputs):
        t = (np.asarray(inputs)[0, ..., :1] + 1) / 2  # the pixel level / 255
        zeros = np.zeros_like(t).repeat(3, -1)
        return {"kpac_0": np.concatenate([1 - t, zeros, t], -1),
                "kpac_1": np.concatenate([t, zeros, 1 - t], -1)}

    monkeypatch.setattr(attention, "block_attention", radius_following_attention)
    correlation = attention.blur_radius_correlation(
        build_model("single_2level", channels=4), builder, 2)
    assert correlation == pytest.approx({"kpac_0": 1, "kpac_1": -1}, abs=1e-6)


def test_wiener_deconvolution_undoes_a_known_blur(rng):
    sharp = ik.convolve(rng.uniform(0, 1, (48, 56, 3)), defocus.aperture_kernel(1.0))
    kernel = defocus.aperture_kernel(3.0)
    blurry = ik.convolve(sharp, kernel)
    restored = wiener.wiener_deconvolve(blurry, kernel, snr=1e3)
    inner = (slice(8, -8), slice(8, -8))
    assert restored.shape == blurry.shape
    assert metrics.psnr(restored[inner], sharp[inner]) > metrics.psnr(
        blurry[inner], sharp[inner]) + 5


def test_wiener_baseline_app(tmp_path, capsys):
    from experiments import wiener_baseline

    with flagsaver.flagsaver(dataset_config="tiny", data_dir=str(tmp_path / "tfds"),
                             output=str(tmp_path / "out"), snrs=["10", "100"]):
        wiener_baseline.main(["wiener_baseline"])
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(result["by_snr"]) == {"10.0", "100.0"}
    assert result["by_snr"]["10.0"]["images"] == 3
    assert "Wiener with the true mean radius" in capsys.readouterr().out
