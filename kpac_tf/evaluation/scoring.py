"""Running a model over evaluation images and scoring it (PSNR, SSIM, MAE, and LPIPS
when its weight files are given: `kpac_tf.evaluation.lpips`), under one scoring
protocol or several (`kpac_tf.evaluation.protocols`; the paper's by default: 8-bit
images, network outputs quantised with `clip(round((y + 1) * 127.5), 0, 255)`), with
warnings for scores that mean a broken evaluation rather than a bad model.
"""

import csv
import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from kpac_tf.data import images as image_io, pixels
from kpac_tf.evaluation import metrics, protocols as scoring_protocols
from kpac_tf.models.networks import center_view
from kpac_tf.utils.files import atomic_output, write_json
from kpac_tf.utils.progress import progress_bar

IMPLAUSIBLE_INPUT_PSNR = 15.0
"""dB; a blurry input scoring below this against its target is not a defocus pair."""
FAR_WORSE_THAN_INPUT = 6.0
"""dB; an output this far below its input's PSNR comes from a broken model or range."""


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


def score_image(name, blurry, output, sharp, lpips=None, protocol=scoring_protocols.PAPER):
    """Scores one (1, h, w, 3) triple; returns an `ImageScore`.

    `blurry` and `sharp`: uint8 / uint16 images, or floats in [-1, 1]; `output`: the
    network's float output in [-1, 1]. All reach the metrics through `protocol.unit`
    (8-bit by default). `lpips`: a `kpac_tf.evaluation.lpips.LPIPS` or None; it scores
    the same images (back in [-1, 1]) when they are at least `lpips.min_size` (31)
    pixels high and wide. An output holding NaN or inf scores NaN (quantising it
    would turn it into a number).
    """
    broken = not finite_output(output)
    sharp, output, blurry = (protocol.unit(x) for x in (sharp, output, blurry))
    perceptual = {}
    if lpips is not None and min(sharp.shape[1:3]) >= lpips.min_size:
        reference = pixels.unit_to_network(tf.cast(sharp, tf.float32))
        perceptual = {key: float(lpips(pixels.unit_to_network(tf.cast(image, tf.float32)),
                                       reference)[0])
                      for key, image in (("lpips", output), ("input_lpips", blurry))}
    if broken and perceptual:
        perceptual["lpips"] = math.nan
    return ImageScore(**perceptual,
        name=name,
        psnr=math.nan if broken else float(metrics.psnr(output, sharp)[0]),
        ssim=math.nan if broken else float(metrics.ssim(output, sharp, protocol.ssim)[0]),
        mae=math.nan if broken else float(metrics.mae(output, sharp)[0]),
        input_psnr=float(metrics.psnr(blurry, sharp)[0]),
        input_ssim=float(metrics.ssim(blurry, sharp, protocol.ssim)[0]),
        input_mae=float(metrics.mae(blurry, sharp)[0]),
    )


def summarize(scores):
    """Mean of every score field over images; `lpips` and `input_lpips` only where
    LPIPS was measured (NaN there means not measured).

    One broken output (NaN or inf: its PSNR is NaN, `score_image`) makes the mean of
    every output score NaN, so a model never scores better because some outputs
    broke (`images` counts every image). An infinite PSNR (an output equal to its
    target) is left out of the mean, which it would swamp; a field whose every
    value is infinite is inf.
    """
    fields = [f.name for f in dataclasses.fields(ImageScore) if f.name != "name"]
    broken = any(math.isnan(s.psnr) for s in scores)
    summary = {"images": len(scores)}
    for field in fields:
        values = [getattr(s, field) for s in scores]
        if field in LPIPS_FIELDS:  # NaN: not measured
            values = [v for v in values if not math.isnan(v)]
            if not values:
                continue
        finite = [v for v in values if math.isfinite(v)]
        if not values or (broken and not field.startswith("input_")) or any(
                math.isnan(v) for v in values):
            summary[field] = math.nan
        else:
            summary[field] = float(np.mean(finite)) if finite else math.inf
    return summary


LPIPS_FIELDS = ("lpips", "input_lpips")


def finite_output(output):
    """True when a network output holds no NaN or infinite value."""
    return bool(tf.reduce_all(tf.math.is_finite(output)))


def _listed(names, most=5):
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def implausible_scores(scores, outputs_seen):
    """Sentences, each naming the images, for scores that mean a broken evaluation
    rather than a bad model (empty when all is plausible).

    Args:
        scores: [`ImageScore`].
        outputs_seen: {name: (finite, constant)} of each image's network output.
    """
    warnings = []
    def counted(names):
        return f"{len(names)} of {len(outputs_seen)} images ({_listed(names)})"

    low = [s.name for s in scores if s.input_psnr < IMPLAUSIBLE_INPUT_PSNR]
    if low:
        warnings.append(
            f"the blurry input scores below {IMPLAUSIBLE_INPUT_PSNR:g} dB against its "
            f"target on {counted(low)}: defocus "
            "pairs score 20-30 dB, so these are probably not pairs; check that each "
            "blurry image is paired with its own target (DPDD-layout folders pair by "
            "position in each sorted folder, blurry/ + sharp/ by name) and that both are "
            "read at the same bit depth and range")
    broken = [name for name, (finite, _) in outputs_seen.items() if not finite]
    flat = [name for name, (finite, constant) in outputs_seen.items() if finite and constant]
    worse = [s.name for s in scores if s.name not in low + broken + flat
             and s.psnr < s.input_psnr - FAR_WORSE_THAN_INPUT]
    if worse:
        warnings.append(
            f"the output scores over {FAR_WORSE_THAN_INPUT:g} dB below the blurry input on "
            f"{counted(worse)}: a deblurrer does "
            "not do that; check that --model is the network the checkpoint was trained "
            "as, and that the checkpoint holds trained weights")
    if broken:
        warnings.append(
            f"the output holds NaN or infinite values on {counted(broken)}, which make "
            "every output mean NaN: check the model's weights "
            "(a diverged checkpoint?) and its precision")
    if flat:
        warnings.append(
            f"the output is one constant colour on {counted(flat)}: "
            "check that the checkpoint holds trained weights for this network (--model) "
            "and that the inputs are in range")
    return warnings


def write_per_image(path, scores, with_lpips):
    """Writes `per_image.csv` (one row of `ImageScore` fields per image) atomically."""
    fields = [f.name for f in dataclasses.fields(ImageScore)
              if f.name not in LPIPS_FIELDS or with_lpips]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for score in scores:
            writer.writerow([getattr(score, k) if k == "name" else f"{getattr(score, k):.6f}"
                             for k in fields])


def read_per_image(path):
    """A `per_image.csv` (`write_per_image`, or a training run's; on any filesystem
    TensorFlow reads) -> [`ImageScore`]."""
    with tf.io.gfile.GFile(path) as f:
        rows = list(csv.DictReader(f.read().splitlines()))
    fields = {f.name for f in dataclasses.fields(ImageScore)}
    try:
        return [ImageScore(**{k: v if k == "name" else float(v) for k, v in row.items()
                              if k in fields}) for row in rows]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a per_image.csv of scores ({e})") from None


def evaluate(deblurrer, items, output_dir, skip_bad=False, protocols=(scoring_protocols.PAPER,),
             count=None, lpips=None, lpips_unavailable=None, observe=None):
    """Deblurs and scores every item under each protocol; writes images, per_image.csv
    and metrics.json.

    Streams: items are taken one at a time, each loaded only when its turn comes and
    released before the next is taken, so memory holds one scene (plus the model)
    however many there are. The model runs once per item for each distinct network
    input the protocols ask for (`Protocol.conversion`).

    Args:
        deblurrer: callable, float32 inputs (1, h, w, 3) in [-1, 1] (or the dual
            triple) of any size -> float32 output (1, h, w, 3): a
            `kpac_tf.deploy.deblurring.Deblurrer` (`kpac_tf.load_deblurrer`).
        items: iterable of (name, load) where `load()` returns (inputs, sharp), batch
            1, as stored (uint8 / uint16) or already in [-1, 1], and may raise
            `images.ImageReadError`/ValueError (a list, an `items.Items` stream, or any
            iterator; it is never copied).
        output_dir: str; receives `images/<name>.png` (8- or 16-bit, as the first
            protocol scores them), `per_image.csv`, `metrics.json`.
        skip_bad: bool; skip (and list) unreadable items instead of aborting.
        protocols: sequence of `protocols.Protocol`; the first is the evaluation's
            (its scores are the summary, the images and per_image.csv), and with more
            than one, `protocols` in the summary holds each one's.
        count: int or None, how many items there are, for the progress bar (None:
            `len(items)` if it has one, else the bar runs without a total).
        lpips: `kpac_tf.evaluation.lpips.LPIPS` or None (no LPIPS column).
        lpips_unavailable: str or None, why there is no LPIPS (recorded).
        observe: callable or None, called once per scored item with its first-protocol
            `ImageScore` and the (h, w, 3) blurry input, output and sharp image as the
            metrics saw them (float64 in [0, 1]), e.g. `report.Report.add`.

    Returns:
        dict: `summarize` of the first protocol's scores (with `lpips` and
        `input_lpips` means when measured, else `lpips` None and
        `lpips_unavailable`), `protocol` (its fields), `to_8bit`, `source_bit_depth`
        (8 or 16, of the first item; None if none was scored or the items were given
        in [-1, 1]), `skipped`
        [(name, reason)], `warnings` (`implausible_scores`: the apps print them) and, with
        several protocols, `protocols` [summary with `protocol` and `label`].
    """
    protocols = tuple(dict.fromkeys(protocols))  # each once, in order
    if count is None and hasattr(items, "__len__"):
        count = len(items)
    tf.io.gfile.makedirs(os.path.join(output_dir, "images"))  # local, or gs:// and the like
    progress = progress_bar(count, "image")
    scores = {protocol: [] for protocol in protocols}
    skipped, outputs_seen, source_bits = [], {}, None
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
        outputs, perceptual = {}, {}  # conversion -> output; images seen -> LPIPS
        for protocol in protocols:
            conversion = protocol.conversion(inputs)
            if conversion not in outputs:
                outputs[conversion] = deblurrer(protocol.network_input(inputs))
            output = outputs[conversion]
            seen = (conversion, protocol.bit_depth)  # what LPIPS sees; not the window
            score = score_image(name, center_view(inputs), output, sharp,
                                lpips if seen not in perceptual else None, protocol)
            if seen in perceptual:
                score = dataclasses.replace(score, **perceptual[seen])
            else:
                perceptual[seen] = dict(lpips=score.lpips, input_lpips=score.input_lpips)
            scores[protocol].append(score)
        output = outputs[protocols[0].conversion(inputs)]
        if observe is not None:
            observe(scores[protocols[0]][-1], *(protocols[0].unit(x)[0] for x in
                                                (center_view(inputs), output, sharp)))
        outputs_seen[name] = (finite_output(output), bool(tf.reduce_all(
            tf.reduce_max(output, axis=[0, 1, 2]) == tf.reduce_min(output, axis=[0, 1, 2]))))
        if source_bits is None:
            source_bits = {tf.uint8: 8, tf.uint16: 16}.get(tf.as_dtype(sharp.dtype))
        depth = tf.uint16 if protocols[0].bit_depth == 16 else tf.uint8
        image_io.write_png(os.path.join(output_dir, "images", f"{name}.png"),
                           pixels.from_network(output[0], depth))
        progress.add(1, values=[("psnr", scores[protocols[0]][-1].psnr)])
        # Release this scene before the next one is taken and loaded.
        del inputs, sharp, output, outputs, load
    if count is None:  # the bar could not close itself
        progress.update(len(outputs_seen) + len(skipped), finalize=True)
    summaries = []
    for protocol in protocols:
        summary = summarize(scores[protocol])
        summary.update(protocol=protocol.as_dict(), label=protocol.label)
        if "lpips" not in summary:
            summary.update(lpips=None,
                           lpips_unavailable=lpips_unavailable or "not measured")
        summaries.append(summary)
    summary = dict(summaries[0], to_8bit=protocols[0].to_8bit, source_bit_depth=source_bits,
                   skipped=skipped,
                   warnings=implausible_scores(scores[protocols[0]], outputs_seen))
    if len(protocols) > 1:
        summary["protocols"] = summaries
    write_per_image(os.path.join(output_dir, "per_image.csv"), scores[protocols[0]],
                    lpips is not None)
    write_json(os.path.join(output_dir, "metrics.json"), summary, indent=2)
    return summary
