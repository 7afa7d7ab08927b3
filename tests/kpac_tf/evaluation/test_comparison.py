"""kpac_tf.evaluation.comparison: paired bootstrap intervals with known answers, and two
models' per-image scores compared."""

import math

import numpy as np
import pytest

from kpac_tf.evaluation import comparison
from kpac_tf.evaluation.scoring import ImageScore


def test_a_constant_difference_has_no_spread():
    d = comparison.paired_bootstrap([25.3, 24.1, 26.0], [25.2, 24.0, 25.9])
    assert (d.mean, d.low, d.high) == pytest.approx((0.1, 0.1, 0.1))
    assert not d.within_noise and d.images == 3


def test_the_interval_is_the_normal_theorys_for_many_images():
    """Differences ~ N(0.12, 0.3) on 400 images: the 95% interval is the mean +- 1.96
    standard errors (within a tenth) and excludes 0; centred on 0 it holds it."""
    rng = np.random.default_rng(3)
    differences = rng.normal(0.12, 0.3, 400)
    d = comparison.paired_bootstrap(differences, np.zeros(400))
    half_width = 1.96 * differences.std(ddof=1) / math.sqrt(400)
    assert d.mean == pytest.approx(differences.mean())
    assert d.low == pytest.approx(d.mean - half_width, abs=0.1 * half_width)
    assert d.high == pytest.approx(d.mean + half_width, abs=0.1 * half_width)
    assert not d.within_noise
    centred = comparison.paired_bootstrap(differences - differences.mean(), np.zeros(400))
    assert centred.within_noise


def test_the_95_percent_interval_covers_the_true_mean_95_percent_of_the_time():
    """200 simulated test sets of 76 images (DPDD's count), skewed differences: the
    interval holds the true mean 0.1 in about 95% of them (binomial spread: 89-99%),
    and a 50% interval in about half."""
    rng = np.random.default_rng(4)
    covered = {0.95: 0, 0.5: 0}
    for trial in range(200):
        differences = rng.gamma(2.0, 0.05, 76)  # mean 0.1, skewed
        for confidence in covered:
            d = comparison.paired_bootstrap(differences, np.zeros(76), resamples=2000,
                                            confidence=confidence, seed=trial)
            covered[confidence] += d.low <= 0.1 <= d.high
    assert 0.89 <= covered[0.95] / 200 <= 0.99
    assert 0.38 <= covered[0.5] / 200 <= 0.62


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        comparison.paired_bootstrap([1.0], [2.0])
    with pytest.raises(ValueError, match="equal-length"):
        comparison.paired_bootstrap([1.0, 2.0], [2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="confidence"):
        comparison.paired_bootstrap([1.0, 2.0], [2.0, 3.0], confidence=95)


def score(name, psnr, mae, ssim=0.8):
    return ImageScore(name, psnr, ssim, mae, 20.0, 0.7, 0.1)


def test_compare_pairs_by_name_and_counts_wins_in_each_metrics_direction():
    a = [score("x", 26.0, 0.02), score("y", 25.0, 0.03), score("z", math.inf, 0.0),
         score("w", 24.0, 0.05)]
    b = [score("w", 24.5, 0.04), score("y", 24.0, 0.04), score("x", 25.0, 0.03),
         score("z", 30.0, 0.01)]
    result = comparison.compare(a, b, resamples=500)
    psnr = result["psnr"]
    assert psnr["left_out"] == ["z"]  # inf PSNR: identical images
    assert psnr["difference"].mean == pytest.approx((1.0 + 1.0 - 0.5) / 3)
    assert (psnr["wins_a"], psnr["wins_b"], psnr["ties"]) == (2, 1, 0)
    assert psnr["largest"][0][1] == pytest.approx(1.0) and psnr["largest"][-1] == ("w", -0.5)
    mae = result["mae"]  # lower is better: a wins where its MAE is smaller
    assert (mae["wins_a"], mae["wins_b"]) == (3, 1)
    assert result["ssim"]["ties"] == 4 and result["ssim"]["difference"].within_noise
    assert "lpips" not in result  # not measured
    text = comparison.format_comparison(result, "a", "b")
    assert "PSNR" in text and "3 images, paired" in text and "left out (infinite PSNR): z" in text
    with pytest.raises(ValueError, match=r"only the first: \['x'\].*only the second: \['v'\]"):
        comparison.compare(a, [score("v", 1, 1)] + b[:1] + b[1:2] + b[3:])


def test_format_difference():
    noise = comparison.Difference(0.01, -0.03, 0.05, 0.95, 76)
    assert comparison.format_difference("psnr", noise) == \
        "+0.010 dB [-0.030, 0.050], within noise"
    real = comparison.Difference(0.12, 0.05, 0.19, 0.95, 76)
    assert comparison.format_difference("psnr", real) == "+0.120 dB [0.050, 0.190]"
    assert comparison.format_difference("ssim", comparison.Difference(
        -0.004, -0.006, -0.002, 0.95, 76)) == "-0.00400 [-0.00600, -0.00200]"
