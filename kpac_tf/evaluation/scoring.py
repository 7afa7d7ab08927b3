"""Running a model over evaluation images and scoring it (PSNR, SSIM, MAE, and LPIPS
when its weight files are given: `kpac_tf.evaluation.lpips`).

Scores are computed on 8-bit images, as the paper evaluates: network outputs are
quantised with `clip(round((y + 1) * 127.5), 0, 255)` before comparison. 16-bit
sources (DPDD) reach 8 bits before they get here, by the items' loader
(`kpac_tf.data.pixels.to_8bit_network`, whose `to_8bit` chooses how; `round(x / 257)`
is our default).
"""

import csv
import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from kpac_tf.data import images as image_io, pixels
from kpac_tf.evaluation import metrics
from kpac_tf.models.networks import center_view
from kpac_tf.utils.files import atomic_output, write_json
from kpac_tf.utils.progress import progress_bar


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
    lpips: float = math.nan        # NaN: not measured
    input_lpips: float = math.nan


def score_image(name, blurry, output, sharp, lpips=None):
    """Scores one (1, h, w, 3) triple of [-1, 1] tensors; returns an `ImageScore`.

    `lpips`: a `kpac_tf.evaluation.lpips.LPIPS` or None; it scores the same 8-bit images (back
    in [-1, 1]) when they are at least `lpips.min_size` (31) pixels high and wide.
    """
    sharp = metrics.quantised_unit(sharp)
    output, blurry = metrics.quantised_unit(output), metrics.quantised_unit(blurry)
    perceptual = {}
    if lpips is not None and min(sharp.shape[1:3]) >= lpips.min_size:
        reference = pixels.unit_to_network(sharp)
        perceptual = {key: float(lpips(pixels.unit_to_network(image), reference)[0])
                      for key, image in (("lpips", output), ("input_lpips", blurry))}
    return ImageScore(**perceptual,
        name=name,
        psnr=float(metrics.psnr(output, sharp)[0]),
        ssim=float(metrics.ssim(output, sharp)[0]),
        mae=float(metrics.mae(output, sharp)[0]),
        input_psnr=float(metrics.psnr(blurry, sharp)[0]),
        input_ssim=float(metrics.ssim(blurry, sharp)[0]),
        input_mae=float(metrics.mae(blurry, sharp)[0]),
    )


def summarize(scores):
    """Mean of every score field over images (finite PSNRs only, as inf would swamp);
    `lpips` and `input_lpips` only where LPIPS was measured."""
    fields = [f.name for f in dataclasses.fields(ImageScore) if f.name != "name"]
    summary = {"images": len(scores)}
    for field in fields:
        values = [getattr(s, field) for s in scores if math.isfinite(getattr(s, field))]
        if values or field not in LPIPS_FIELDS:
            summary[field] = float(np.mean(values)) if values else float("nan")
    return summary


LPIPS_FIELDS = ("lpips", "input_lpips")


def evaluate(deblurrer, items, output_dir, skip_bad=False, to_8bit=None, count=None,
             lpips=None, lpips_unavailable=None):
    """Deblurs and scores every item; writes images, per_image.csv and metrics.json.

    Streams: items are taken one at a time, each loaded only when its turn comes and
    released before the next is taken, so memory holds one scene (plus the model)
    however many there are.

    Args:
        deblurrer: callable, float32 inputs (1, h, w, 3) in [-1, 1] (or the dual
            triple) of any size -> float32 output (1, h, w, 3): a
            `kpac_tf.deploy.deblurring.Deblurrer` (`kpac_tf.load_deblurrer`).
        items: iterable of (name, load) where `load()` returns (inputs, sharp) in
            [-1, 1] with batch 1, and may raise `images.ImageReadError`/ValueError
            (a list, an `items.Items` stream, or any iterator; it is never copied).
        output_dir: str; receives `images/<name>.png`, `per_image.csv`, `metrics.json`.
        skip_bad: bool; skip (and list) unreadable items instead of aborting.
        to_8bit: str or None, how `load()` brought 16-bit images to 8 bits ("round"
            or "high_byte", see `kpac_tf.data.pixels`); recorded in metrics.json, since
            the two score differently (None: not stated).
        count: int or None, how many items there are, for the progress bar (None:
            `len(items)` if it has one, else the bar runs without a total).
        lpips: `kpac_tf.evaluation.lpips.LPIPS` or None (no LPIPS column).
        lpips_unavailable: str or None, why there is no LPIPS (recorded).

    Returns:
        dict: `summarize` of the scores (with `lpips` and `input_lpips` means when
        measured, else `lpips` None and `lpips_unavailable`), `skipped`
        [(name, reason)] and `to_8bit`.
    """
    if count is None and hasattr(items, "__len__"):
        count = len(items)
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    progress = progress_bar(count, "image")
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
        scores.append(score_image(name, center_view(inputs), output, sharp, lpips))
        image_io.write_png(os.path.join(output_dir, "images", f"{name}.png"),
                           pixels.from_network(output[0], tf.uint8))
        progress.add(1, values=[("psnr", scores[-1].psnr)])
        # Release this scene before the next one is taken and loaded.
        del inputs, sharp, output, load
    if count is None:  # the bar could not close itself
        progress.update(len(scores) + len(skipped), finalize=True)
    summary = summarize(scores)
    summary.update(skipped=skipped, to_8bit=to_8bit)
    if "lpips" not in summary:
        summary.update(lpips=None, lpips_unavailable=lpips_unavailable or "not measured")
    fields = [f.name for f in dataclasses.fields(ImageScore)
              if f.name not in LPIPS_FIELDS or lpips is not None]
    with atomic_output(os.path.join(output_dir, "per_image.csv")) as tmp, \
            open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for score in scores:
            writer.writerow([getattr(score, k) if k == "name" else f"{getattr(score, k):.6f}"
                             for k in fields])
    write_json(os.path.join(output_dir, "metrics.json"), summary, indent=2)
    return summary


