"""Two models scored on the same images: the mean difference of each metric with a 95%
paired bootstrap confidence interval, the per-image wins, and the images where they
differ most.

A difference is "within noise" when its interval holds 0: on 76 test scenes the
scene-to-scene spread of a per-image PSNR difference is often larger than the gaps
that separate variants in the paper's Tables 1-3.
"""

import dataclasses
import math

import numpy as np

from kpac_tf.utils.tables import text_table

METRICS = {"psnr": ("PSNR", "dB", True, 2), "ssim": ("SSIM", "", True, 4),
           "mae": ("MAE", "", False, 4), "lpips": ("LPIPS", "", False, 4)}
"""Metric -> (label, unit, higher is better, decimals printed)."""


@dataclasses.dataclass(frozen=True)
class Difference:
    """Mean of per-image differences `a - b` with its bootstrap interval."""

    mean: float
    low: float
    high: float
    confidence: float
    images: int

    @property
    def within_noise(self):
        return self.low <= 0 <= self.high


def paired_bootstrap(a, b, resamples=10_000, confidence=0.95, seed=0):
    """The mean of `a - b` over paired values, with a percentile bootstrap interval.

    Args:
        a, b: sequences of floats, one per image, paired by position (same length).
        resamples: int, bootstrap resamples of the images (with replacement).
        confidence: float in (0, 1), the interval's coverage (0.95: the 2.5th and
            97.5th percentiles of the resampled means).
        seed: int; the same seed gives the same interval.

    Returns:
        `Difference`.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"paired_bootstrap needs two equal-length lists of at least 2 "
                         f"values, got shapes {a.shape} and {b.shape}")
    differences = a - b
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(float(differences.mean()), float(low), float(high), confidence,
                      len(differences))


def compare(scores_a, scores_b, resamples=10_000, seed=0, largest=3):
    """Compares two models' `scoring.ImageScore` lists on the same images (paired by
    name; both must hold the same names).

    Returns:
        {metric: {"a", "b" (means), "difference" (`Difference` of a - b), "wins_a",
        "wins_b", "ties" (per image, by the metric's own direction), "largest"
        [(name, a - b)] (the `largest` differences each way, best for a first),
        "left_out" [names] (a non-finite value: identical images' inf PSNR)}} for
        each metric of `METRICS` both lists measured.
    """
    by_name_a = {s.name: s for s in scores_a}
    by_name_b = {s.name: s for s in scores_b}
    if by_name_a.keys() != by_name_b.keys():
        only_a = sorted(by_name_a.keys() - by_name_b.keys())
        only_b = sorted(by_name_b.keys() - by_name_a.keys())
        raise ValueError(f"the two evaluations scored different images (only the first: "
                         f"{only_a[:5] or 'none'}; only the second: {only_b[:5] or 'none'})"
                         "; score both on the same images")
    names = sorted(by_name_a)
    result = {}
    for metric, (_, _, higher_better, _) in METRICS.items():
        pairs = [(n, getattr(by_name_a[n], metric), getattr(by_name_b[n], metric))
                 for n in names]
        kept = [(n, x, y) for n, x, y in pairs if math.isfinite(x) and math.isfinite(y)]
        if len(kept) < 2:
            continue  # not measured (LPIPS without its files), or too few images
        kept_names, a, b = zip(*kept)
        sign = 1 if higher_better else -1
        gains = sign * (np.array(a) - np.array(b))
        order = np.argsort(-gains, kind="stable")
        picked = list(order[:largest]) + [i for i in order[::-1][:largest]
                                          if i not in order[:largest]]
        result[metric] = dict(
            a=float(np.mean(a)), b=float(np.mean(b)),
            difference=paired_bootstrap(a, b, resamples, seed=seed),
            wins_a=int(np.sum(gains > 0)), wins_b=int(np.sum(gains < 0)),
            ties=int(np.sum(gains == 0)),
            largest=[(kept_names[i], float(a[i] - b[i])) for i in picked],
            left_out=[n for n, x, y in pairs if not (math.isfinite(x) and math.isfinite(y))])
    return result


def format_difference(metric, difference):
    """"+0.120 dB [0.050, 0.190]" or "+0.010 dB [-0.030, 0.050], within noise": one
    decimal more than the metric's means (the differences are small)."""
    _, unit, _, digits = METRICS[metric]
    digits += 1
    unit = f" {unit}" if unit else ""
    text = (f"{difference.mean:+.{digits}f}{unit} "
            f"[{difference.low:.{digits}f}, {difference.high:.{digits}f}]")
    return text + (", within noise" if difference.within_noise else "")


def format_comparison(result, name_a, name_b):
    """`compare`'s result as printed lines: one row per metric, then the images
    where the two differ most in PSNR."""
    rows = [("Metric", name_a, name_b, f"{name_a} - {name_b} (95% CI)", "wins", "")]
    for metric, r in result.items():
        label, _, higher_better, digits = METRICS[metric]
        rows.append((label, f"{r['a']:.{digits}f}", f"{r['b']:.{digits}f}",
                     format_difference(metric, r["difference"]),
                     f"{r['wins_a']}-{r['wins_b']}" + (f" ({r['ties']} ties)"
                                                       if r["ties"] else ""),
                     "higher is better" if higher_better else "lower is better"))
    lines = [text_table(rows, left=len(rows[0]))]
    images = next(iter(result.values()))["difference"].images if result else 0
    lines.append(f"{images} images, paired; wins: images where {name_a} scores better "
                 f"- where {name_b} does")
    if "psnr" in result:
        lines.append("Largest PSNR differences (dB): " + ", ".join(
            f"{name} {value:+.2f}" for name, value in result["psnr"]["largest"]))
        if result["psnr"]["left_out"]:
            lines.append(f"left out (infinite PSNR): {', '.join(result['psnr']['left_out'])}")
    return "\n".join(lines)


def as_json(result):
    """`compare`'s result with each `Difference` as a dict (for a JSON file)."""
    return {metric: dict(r, difference=dataclasses.asdict(r["difference"]))
            for metric, r in result.items()}
