"""Running a model over evaluation images and scoring it (PSNR, SSIM, MAE).

Scores are computed on 8-bit images, as the paper evaluates: network outputs are
quantised with `clip(round((y + 1) * 127.5), 0, 255)` before comparison. 16-bit
sources (DPDD) reach 8 bits before they get here, by the items' loader
(`data.to_unit_range`, whose `to_8bit` chooses how; `round(x / 257)` is our default).
"""

import csv
import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from kpac_tf import images as image_io, metrics, pixels
from kpac_tf.files import atomic_output
from kpac_tf.inference import Deblurrer
from kpac_tf.models import center_view


@dataclasses.dataclass
class ImageScore:
    """Scores of one image: the model's output and, for reference, the blurry input."""

    name: str
    psnr: float
    ssim: float
    mae: float
    input_psnr: float
    input_ssim: float
    input_mae: float


def score_image(name, blurry, output, sharp):
    """Scores one (1, h, w, 3) triple of [-1, 1] tensors; returns an `ImageScore`."""
    sharp = metrics.to_unit(sharp)
    output, blurry = metrics.to_unit(output), metrics.to_unit(blurry)
    return ImageScore(
        name=name,
        psnr=float(metrics.psnr(output, sharp)[0]),
        ssim=float(metrics.ssim(output, sharp)[0]),
        mae=float(metrics.mae(output, sharp)[0]),
        input_psnr=float(metrics.psnr(blurry, sharp)[0]),
        input_ssim=float(metrics.ssim(blurry, sharp)[0]),
        input_mae=float(metrics.mae(blurry, sharp)[0]),
    )


def summarize(scores):
    """Mean of every score field over images (finite PSNRs only, as inf would swamp)."""
    fields = [f.name for f in dataclasses.fields(ImageScore) if f.name != "name"]
    summary = {"images": len(scores)}
    for field in fields:
        values = [getattr(s, field) for s in scores if math.isfinite(getattr(s, field))]
        summary[field] = float(np.mean(values)) if values else float("nan")
    return summary


# The paper's Table 4 (DPDD test set) and Table 3's blurry input, for comparison.
PAPER_TABLE4 = {"single_2level": dict(psnr=25.24, ssim=0.845, lpips=0.229, params=1.58),
                "single_3level": dict(psnr=25.24, ssim=0.842, lpips=0.225, params=2.06)}
PAPER_INPUT = dict(psnr=23.92, ssim=0.812)
LPIPS_UNAVAILABLE = (
    "LPIPS needs the pretrained LPIPS network (ImageNet AlexNet/VGG features plus "
    "LPIPS's learned linear layers); kpac-tf and its dependencies ship no copy and "
    "nothing is downloaded at run time")


def evaluate(model, items, output_dir, skip_bad=False, to_8bit=None):
    """Deblurs and scores every item; writes images, per_image.csv and metrics.json.

    Args:
        model: keras.Model or `inference.Deblurrer` (any input size works).
        items: iterable of (name, load) where `load()` returns (inputs, sharp) in
            [-1, 1] with batch 1, and may raise `images.ImageReadError`/ValueError.
        output_dir: str; receives `images/<name>.png`, `per_image.csv`, `metrics.json`.
        skip_bad: bool; skip (and list) unreadable items instead of aborting.
        to_8bit: str or None, how `load()` brought 16-bit images to 8 bits ("round"
            or "high_byte", see `kpac_tf.pixels`); recorded in metrics.json, since
            "high_byte" scores about 0.034 dB lower (None: not stated).

    Returns:
        dict: `summarize` of the scores plus `skipped` [(name, reason)], `to_8bit`
        and `lpips` (None, with `lpips_unavailable`).
    """
    items = list(items)
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    deblurrer = model if isinstance(model, Deblurrer) else Deblurrer.from_keras(model)
    progress = keras.utils.Progbar(len(items), unit_name="image")
    scores, skipped = [], []
    for name, load in items:
        try:
            inputs, sharp = load()
        except (image_io.ImageReadError, ValueError) as e:
            if not skip_bad:
                raise image_io.ImageReadError(f"{name}: {e} (use --skip_bad to skip it)") \
                    from None
            skipped.append((name, str(e)))
            progress.add(1)
            continue
        output = deblurrer(inputs)
        scores.append(score_image(name, center_view(inputs), output, sharp))
        image_io.write_png(os.path.join(output_dir, "images", f"{name}.png"),
                           pixels.from_network(output[0], tf.uint8))
        progress.add(1, values=[("psnr", scores[-1].psnr)])
    summary = summarize(scores)
    summary.update(skipped=skipped, to_8bit=to_8bit, lpips=None,
                   lpips_unavailable=LPIPS_UNAVAILABLE)
    fields = [f.name for f in dataclasses.fields(ImageScore)]
    with atomic_output(os.path.join(output_dir, "per_image.csv")) as tmp, \
            open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for score in scores:
            writer.writerow([getattr(score, k) if k == "name" else f"{getattr(score, k):.6f}"
                             for k in fields])
    with atomic_output(os.path.join(output_dir, "metrics.json")) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def format_table(summary, model_name, params, with_paper=False):
    """The paper's Table 4 layout; with_paper adds the paper's rows (DPDD only)."""
    rows = [("Model", "PSNR", "SSIM", "LPIPS", "Params (M)")]
    if with_paper:
        rows.append(("Blurry input (paper)", f"{PAPER_INPUT['psnr']:.2f}",
                     f"{PAPER_INPUT['ssim']:.3f}", "-", "-"))
    rows.append(("Blurry input (ours)", f"{summary['input_psnr']:.2f}",
                 f"{summary['input_ssim']:.3f}", "-", "-"))
    paper = PAPER_TABLE4.get(model_name)
    if with_paper and paper:
        rows.append((f"{model_name} (paper)", f"{paper['psnr']:.2f}", f"{paper['ssim']:.3f}",
                     f"{paper['lpips']:.3f}", f"{paper['params']:.2f}"))
    rows.append((f"{model_name} (ours)", f"{summary['psnr']:.2f}", f"{summary['ssim']:.3f}",
                 "n/a", f"{params / 1e6:.2f}" if params else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
