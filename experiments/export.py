r"""Exports a model as a SavedModel for TF Serving.

python -m experiments.export --checkpoint=single_2level.npz --model=single_2level \
    --export_dir=serving/kpac

Writes --export_dir/<version>/ (the next free number unless --version is given) with
signatures `serving_default` (uint8 `images` -> uint8 `deblurred`, any size) and
`float` (float32 in [0, 1]); the dual network takes `center`, `left`, `right`.
Without --checkpoint, the bundled model (`kpac_tf.bundled`): a single_2level trained
on synthetic defocus, not DPDD.
"""

from absl import app, flags, logging

from kpac_tf.export import export_saved_model

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           keras_model_from_flags, run_app)

_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Model base folder for TF Serving.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: next free).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        model = keras_model_from_flags()
        path = export_saved_model(model, _EXPORT_DIR.value, _VERSION.value)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"export: {e}") from None
    logging.info("Exported %s to %s", model.name, path)
    print(path)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Export": [_EXPORT_DIR, _VERSION],
    "Logging": LOGGING,
}


def run():
    """Console-script entry point (`kpac-export`)."""
    run_app(main, FLAG_GROUPS, required=["export_dir"])


if __name__ == "__main__":
    run()
