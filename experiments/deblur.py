r"""Deblurs photos of any size with a KPAC model.

python -m experiments.deblur --checkpoint=outputs/embedded_default/model.keras \
    --input=photos/ --output=deblurred/ [--tile_size=1024] [--save_attention]

--checkpoint: a .keras file, a training run folder, an exported SavedModel, or an
authors' .npz (with --model). Without it, the bundled model (`kpac_tf.deploy.bundled`): a
network trained on synthetic defocus, not DPDD. --input is a PNG/JPEG file (8- or
16-bit; EXIF orientation respected) or a folder of them; results are PNGs of the same
bit depth. An input is never overwritten.
"""

from absl import flags, logging

from kpac_tf.deploy import deblurring
from kpac_tf.models import forward

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, run_app)

_INPUT = flags.DEFINE_string("input", None, "Photo (PNG/JPEG) or folder of photos.")
_TILE_SIZE = flags.DEFINE_integer("tile_size", None, "Deblur in overlapping tiles of "
                                  "this size (bounds memory for large photos).")
_OVERLAP = flags.DEFINE_integer("overlap", 64, "Tile overlap in pixels.")
_PRECISION = flags.DEFINE_enum("precision", "float32", forward.INFERENCE_PRECISIONS,
                               "bfloat16: faster on CPUs with AVX512-BF16 / AMX "
                               "(benchmarks/latency.py).")
_SAVE_ATTENTION = flags.DEFINE_boolean(
    "save_attention", False, "Also write the first KPAC block's scale-attention maps "
    "(<name>_attention.png, one panel per dilation rate) and its blur map "
    "(<name>_blur_map.png: the attention-weighted dilation per pixel, coloured over the "
    "photo).")


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        jobs = deblurring.plan_jobs(_INPUT.value, _OUTPUT.value)
        deblurrer = deblurring.load_deblurrer(_CHECKPOINT.value, _MODEL.value,
                                             _PRECISION.value)
        failures = deblurring.deblur_files(deblurrer, jobs, _TILE_SIZE.value, _OVERLAP.value,
                                          _SAVE_ATTENTION.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"deblur: {e}") from None
    logging.info("Deblurred %d of %d images into %s", len(jobs) - len(failures), len(jobs),
                 _OUTPUT.value)
    for source, reason in failures:
        logging.error("failed: %s", reason)
    if failures:
        raise SystemExit(f"deblur: {len(failures)} of {len(jobs)} images failed (listed above)")


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL, _PRECISION],
    "Photos": [_INPUT, _OUTPUT, _TILE_SIZE, _OVERLAP, _SAVE_ATTENTION],
    "Logging": LOGGING,
}


def run():
    """Console-script entry point (`kpac-deblur`)."""
    run_app(main, FLAG_GROUPS, required=["input", "output"])


if __name__ == "__main__":
    run()
