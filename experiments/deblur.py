r"""Deblurs photos of any size with a KPAC model.

python -m experiments.deblur --checkpoint=outputs/embedded_default/model.keras \
    --input=photos/ --output=deblurred/ [--tile_size=1024] [--save_attention]

--checkpoint: a .keras file, a training run folder, an exported SavedModel, or an
authors' .npz (with --model). Without it, the bundled model (`kpac_tf.deploy.bundled`): a
network trained on synthetic defocus, not DPDD. --input is a PNG/JPEG file (8- or
16-bit; EXIF orientation respected; read by content, whatever its name says) or a
folder of them; results are PNGs of the same bit depth.

A folder's photos are its files holding PNG or JPEG, whatever their names, and those
named .png / .jpg / .jpeg (anything else they hold is named as it fails). Nothing is
lost: no output ever replaces an input (compared as the files they reach, through
links) or a file this app did not write (its outputs are recorded in
<output>/.kpac-deblur.json); the output folder is never the input folder; photos
sharing a name (e.jpg, e.png) get distinct outputs (e.jpg.png, e.png.png); outputs
already there are skipped, so rerunning a stopped run resumes it (--overwrite redoes
them). Photos over --max_megapixels are refused before decoding. A photo that fails
is named and the others go on; a read-only or full output folder stops the run at
once. The summary lists done, skipped and failed photos; the exit code is 1 if any
failed.
"""

from absl import flags, logging

from kpac_tf.data import images
from kpac_tf.deploy import photo_files, tiling
from kpac_tf.models import forward

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MAX_MEGAPIXELS as
                           _MAX_MEGAPIXELS, MAX_MEGAPIXELS_DEFAULTS, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, deblurrer_from_flags, run_app, value_or)

_INPUT = flags.DEFINE_string("input", None, "Photo (PNG/JPEG) or folder of photos.")
_TILE_SIZE = flags.DEFINE_integer("tile_size", None, "Deblur in overlapping tiles of "
                                  "this side in pixels (bounds memory for large photos; "
                                  "1024 is a good start). Unset: whole photos.")
_OVERLAP = flags.DEFINE_integer("overlap", tiling.OVERLAP, "Tile overlap in pixels "
                                "(below half the tile side).")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Redo outputs an earlier run of this app wrote (files it did not "
    "write are never replaced).")
_PRECISION = flags.DEFINE_enum("precision", "float32", forward.INFERENCE_PRECISIONS,
                               "bfloat16: faster on CPUs with AVX512-BF16 / AMX "
                               "(benchmarks/latency.py).")
_SAVE_ATTENTION = flags.DEFINE_boolean(
    "save_attention", False, "Also write the first KPAC block's scale-attention maps "
    "(<name>_attention.png, one panel per dilation rate) and its blur map "
    "(<name>_blur_map.png: the attention-weighted dilation per pixel, coloured over the "
    "photo).")


def _checked_settings():
    """SystemExit naming the flag when --tile_size, --overlap or --max_megapixels
    cannot work (checked once, before any photo)."""
    if _TILE_SIZE.value is not None:
        try:
            tiling.check_tiling(_TILE_SIZE.value, _OVERLAP.value)
        except ValueError as e:
            raise SystemExit(f"deblur: --tile_size={_TILE_SIZE.value} --overlap="
                             f"{_OVERLAP.value}: {e}; leave --tile_size unset to deblur "
                             "whole photos") from None
    if not 0 < _max_megapixels() < float("inf"):
        raise SystemExit(f"deblur: --max_megapixels must be a number above 0, got "
                         f"{_max_megapixels():g}")


def _max_megapixels():
    return value_or(_MAX_MEGAPIXELS, MAX_MEGAPIXELS_DEFAULTS["deblur"])


def _worded(error):
    """A failed photo's reason, with the flag that is the way on."""
    if isinstance(error, images.PhotoTooLarge):
        return f"{error} (--max_megapixels); raise it to deblur this photo"
    if isinstance(error, photo_files.OutOfMemory):
        if error.tile_size is None:
            return f"{error}; deblur it in tiles (--tile_size=1024)"
        return (f"{error}; try a smaller --tile_size, or a machine with more memory (the "
                "photo's own buffers grow with its size at any tile size)")
    return str(error)


_SKIP_HINTS = {"done_before": " (--overwrite redoes it)", "in_the_way": "", "not_a_file": ""}


def _summary(report):
    """Logs what was done, skipped, ignored and failed; SystemExit if the run stopped
    or any photo failed."""
    left = len(report.jobs) - len(report.done) - len(report.failed)
    counts = [f"{len(items)} {word}" for items, word in (
        (report.skipped, "skipped"), (report.failed, "failed"),
        (range(left), "not attempted")) if len(items)]
    logging.info("Deblurred %d of %d photos into %s%s", len(report.done),
                 len(report.jobs) + len(report.skipped), report.folder,
                 f" ({', '.join(counts)})" if counts else "")
    for _, kind, reason in report.skipped:
        logging.warning("skipped: %s%s", reason, _SKIP_HINTS[kind])
    for _, error in report.failed:
        logging.error("failed: %s", _worded(error))
    if report.ignored:
        logging.info("passed over %d files holding no PNG or JPEG: %s", len(report.ignored),
                     ", ".join(report.ignored))
    if report.broken_model:
        raise SystemExit(f"deblur: {report.stopped}. Nothing further was deblurred: give "
                         "a checkpoint whose weights are finite")
    if report.stopped:
        raise SystemExit(f"deblur: {report.stopped}. The run stopped; the photos done are "
                         "complete, and rerunning the same command goes on from there")
    if report.failed:
        raise SystemExit(f"deblur: {len(report.failed)} of "
                         f"{len(report.jobs) + len(report.skipped)} photos failed (listed "
                         "above)")


def main(argv):
    del argv  # run_app refuses extra arguments
    _checked_settings()
    try:
        report = photo_files.plan(_INPUT.value, _OUTPUT.value, _SAVE_ATTENTION.value,
                                  _OVERWRITE.value)
        deblurrer = deblurrer_from_flags(_PRECISION.value)
    except ValueError as e:  # PlanError, CheckpointError
        raise SystemExit(f"deblur: {e}") from None
    if _SAVE_ATTENTION.value and deblurrer.keras_model is None:
        raise SystemExit(f"deblur: --save_attention needs a Keras model; --checkpoint "
                         f"{_CHECKPOINT.value} is an exported SavedModel")
    try:
        photo_files.run(deblurrer, report, _TILE_SIZE.value, _OVERLAP.value,
                        int(_max_megapixels() * 1e6))
    except photo_files.PlanError as e:  # the output folder cannot be written
        raise SystemExit(f"deblur: {e}") from None
    _summary(report)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL, _PRECISION],
    "Photos": [_INPUT, _OUTPUT, _OVERWRITE, _MAX_MEGAPIXELS, _TILE_SIZE, _OVERLAP,
               _SAVE_ATTENTION],
    "Logging": LOGGING,
}
REQUIRED_FLAGS = ["input", "output"]


def run():
    """Console-script entry point (`kpac-deblur`)."""
    run_app(main)


if __name__ == "__main__":
    run()
