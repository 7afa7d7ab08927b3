r"""Exports a model for TF Serving (SavedModel), LiteRT (TFLite) or ONNX.

python -m experiments.export --export_dir=serving/kpac             # SavedModel
python -m experiments.export --format=litert --output=kpac.tflite  # one file
python -m experiments.export --format=onnx --output=kpac.onnx      # one file

saved_model writes --export_dir/<version>/ (the next free number unless --version is
given) with signatures `serving_encoded` (PNG / JPEG files `images_bytes` -> PNG
files `deblurred_bytes` at each input's bit depth), `serving_default` (uint8 `images`
-> uint8 `deblurred`, any size), `serving_uint16` (uint16) and `float` (float32 in
[0, 1]); an image with a side above --serve_tile_size (1024) is deblurred in blended
tiles inside the graph, so a server's memory follows the tile. litert and onnx
write one file (--output, replaced atomically if it exists): input `images` float32
(batch, height, width, 3) in [0, 1], any height and width, output `deblurred` float32
of the same shape in [0, 1]. The dual network takes `center`, `left`, `right`.
Without --checkpoint, the bundled model (`kpac_tf.deploy.bundled`): a network trained on
synthetic defocus, not DPDD.
"""

from absl import app, flags, logging

from kpac_tf.deploy import export

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, is_given, keras_model_from_flags, run_app)

_FORMAT = flags.DEFINE_enum("format", "saved_model", ["saved_model", "litert", "onnx"],
                            "saved_model (TF Serving folder), litert (.tflite file) or "
                            "onnx (.onnx file).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "saved_model: model base folder "
                                  "for TF Serving.")
_VERSION = flags.DEFINE_integer("version", None, "saved_model: version number (default: "
                                "next free).")
_SERVE_TILE_SIZE = flags.DEFINE_integer(
    "serve_tile_size", export.SERVE_TILE_SIZE, "saved_model: the served graph deblurs an "
    "image with a side above this in blended tiles of at most this side, so a server's "
    "memory follows the tile, not the photo (0: always whole).")
_LITERT_WEIGHTS = flags.DEFINE_enum(
    "litert_weights", "float32", list(export.LITERT_WEIGHTS),
    "litert: float32; float16 (half the size); int8 (dynamic-range quantisation, a "
    "quarter of the size). WORKSPACE.md has each one's size, latency and PSNR.")


def _check_flags():
    """The output flag the chosen format needs, and no other's."""
    needed, unused = ((_EXPORT_DIR, (_OUTPUT,)) if _FORMAT.value == "saved_model"
                      else (_OUTPUT, (_EXPORT_DIR, _VERSION)))
    if _SERVE_TILE_SIZE.value < 0 or 0 < _SERVE_TILE_SIZE.value <= 2 * export.SERVE_OVERLAP:
        raise app.UsageError(f"--serve_tile_size must be 0 (never tile) or above "
                             f"{2 * export.SERVE_OVERLAP} (twice the tiles' overlap), got "
                             f"{_SERVE_TILE_SIZE.value}")
    if _FORMAT.value != "saved_model" and is_given(_SERVE_TILE_SIZE):
        raise app.UsageError("--serve_tile_size applies to --format=saved_model only")
    for holder in unused:
        if holder.value is not None:
            raise app.UsageError(f"--{holder.name} is not used by --format={_FORMAT.value}"
                                 f"; give --{needed.name}")
    if needed.value is None:
        raise app.UsageError(f"--format={_FORMAT.value} needs --{needed.name}")
    if _FORMAT.value != "litert" and _LITERT_WEIGHTS.value != "float32":
        raise app.UsageError("--litert_weights applies to --format=litert only")


def main(argv):
    del argv  # run_app refuses extra arguments
    _check_flags()
    try:
        model = keras_model_from_flags()
        if _FORMAT.value == "saved_model":
            path = export.export_saved_model(model, _EXPORT_DIR.value, _VERSION.value,
                                             _SERVE_TILE_SIZE.value or None)
        elif _FORMAT.value == "litert":
            path = export.export_litert(model, _OUTPUT.value, _LITERT_WEIGHTS.value)
        else:
            path = export.export_onnx(model, _OUTPUT.value)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        # An existing SavedModel version is never overwritten: the flag picks another.
        version = _FORMAT.value == "saved_model" and isinstance(e, FileExistsError)
        raise SystemExit(f"export: {e}" + (" (--version)" if version else "")) from None
    logging.info("Exported %s to %s", model.name, path)
    print(path)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Export": [_FORMAT, _EXPORT_DIR, _VERSION, _SERVE_TILE_SIZE, _OUTPUT, _LITERT_WEIGHTS],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_EXPORT_DIR.name: "unset; --format=saved_model needs it",
                 _OUTPUT.name: "unset; --format=litert and onnx need it"}


def run():
    """Console-script entry point (`kpac-export`)."""
    run_app(main)


if __name__ == "__main__":
    run()
