"""Running a model over evaluation images and scoring it (PSNR, SSIM, MAE, and LPIPS
when its weight files are given: `kpac_tf.lpips`).

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

import numpy as np
import tensorflow as tf

from kpac_tf import images as image_io, metrics, pixels
from kpac_tf.files import atomic_output
from kpac_tf.inference import Deblurrer
from kpac_tf.models import center_view
from kpac_tf.progress import progress_bar


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

    `lpips`: a `kpac_tf.lpips.LPIPS` or None; it scores the same 8-bit images (back
    in [-1, 1]) when they are at least `lpips.min_size` (31) pixels high and wide.
    """
    sharp = metrics.to_unit(sharp)
    output, blurry = metrics.to_unit(output), metrics.to_unit(blurry)
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


# The paper's Table 4 (DPDD test set) and Table 3's blurry input, for comparison.
PAPER_TABLE4 = {"single_2level": dict(psnr=25.24, ssim=0.845, lpips=0.229, params=1.58),
                "single_3level": dict(psnr=25.24, ssim=0.842, lpips=0.225, params=2.06)}
PAPER_INPUT = dict(psnr=23.92, ssim=0.812)


class Items:
    """A re-iterable of (name, load) pairs whose length is known without loading
    anything: what `evaluate` takes when the pairs come from a stream (a tf.data
    split) rather than a list.

    Args:
        count: int, how many pairs `make_iterator()` yields.
        make_iterator: callable returning a fresh iterator of (name, load) pairs.
    """

    def __init__(self, count, make_iterator):
        self.count = int(count)
        self._make_iterator = make_iterator

    def __len__(self):
        return self.count

    def __iter__(self):
        return iter(self._make_iterator())


def evaluate(model, items, output_dir, skip_bad=False, to_8bit=None, count=None,
             lpips=None, lpips_unavailable=None):
    """Deblurs and scores every item; writes images, per_image.csv and metrics.json.

    Streams: items are taken one at a time, each loaded only when its turn comes and
    released before the next is taken, so memory holds one scene (plus the model)
    however many there are.

    Args:
        model: keras.Model or `inference.Deblurrer` (any input size works).
        items: iterable of (name, load) where `load()` returns (inputs, sharp) in
            [-1, 1] with batch 1, and may raise `images.ImageReadError`/ValueError
            (a list, an `Items` stream, or any iterator; it is never copied).
        output_dir: str; receives `images/<name>.png`, `per_image.csv`, `metrics.json`.
        skip_bad: bool; skip (and list) unreadable items instead of aborting.
        to_8bit: str or None, how `load()` brought 16-bit images to 8 bits ("round"
            or "high_byte", see `kpac_tf.pixels`); recorded in metrics.json, since
            "high_byte" scores about 0.034 dB lower (None: not stated).
        count: int or None, how many items there are, for the progress bar (None:
            `len(items)` if it has one, else the bar runs without a total).
        lpips: `kpac_tf.lpips.LPIPS` or None (no LPIPS column).
        lpips_unavailable: str or None, why there is no LPIPS (recorded).

    Returns:
        dict: `summarize` of the scores (with `lpips` and `input_lpips` means when
        measured, else `lpips` None and `lpips_unavailable`), `skipped`
        [(name, reason)] and `to_8bit`.
    """
    if count is None and hasattr(items, "__len__"):
        count = len(items)
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    deblurrer = model if isinstance(model, Deblurrer) else Deblurrer.from_keras(model)
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
    with atomic_output(os.path.join(output_dir, "metrics.json")) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def format_table(summary, model_name, params, with_paper=False):
    """The paper's Table 4 layout; with_paper adds the paper's rows (DPDD only)."""
    rows = [("Model", "PSNR", "SSIM", "LPIPS", "Params (M)")]
    if with_paper:
        rows.append(("Blurry input (paper)", f"{PAPER_INPUT['psnr']:.2f}",
                     f"{PAPER_INPUT['ssim']:.3f}", "-", "-"))
    def lpips_cell(key):
        return "n/a" if summary.get(key) is None else f"{summary[key]:.3f}"

    rows.append(("Blurry input (ours)", f"{summary['input_psnr']:.2f}",
                 f"{summary['input_ssim']:.3f}", lpips_cell("input_lpips"), "-"))
    paper = PAPER_TABLE4.get(model_name)
    if with_paper and paper:
        rows.append((f"{model_name} (paper)", f"{paper['psnr']:.2f}", f"{paper['ssim']:.3f}",
                     f"{paper['lpips']:.3f}", f"{paper['params']:.2f}"))
    rows.append((f"{model_name} (ours)", f"{summary['psnr']:.2f}", f"{summary['ssim']:.3f}",
                 lpips_cell("lpips"), f"{params / 1e6:.2f}" if params else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
