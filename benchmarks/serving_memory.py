r"""Peak memory and time of a served SavedModel on a large photo, as TF Serving runs it.

python benchmarks/serving_memory.py [--checkpoint=RUN] [--height=4000 --width=6000]
    [--serve_tile_size=1024]

Exports the model (default: the bundled one) as `experiments.export` does, timed,
then, in a fresh process (so its peak RSS is its own), loads the SavedModel and calls its
`serving_default` signature once on a random uint8 photo of --height x --width:
prints the seconds and the peak RSS of that process, beside a 64x64 photo's in
another fresh process (the loaded model's own share).
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Model (default: the bundled one).")
_MODEL = flags.DEFINE_string("model", None, "Network name, for an authors' .npz.")
_HEIGHT = flags.DEFINE_integer("height", 4000, "Photo height (24 MP: 4000 x 6000).")
_WIDTH = flags.DEFINE_integer("width", 6000, "Photo width.")
_SERVE_TILE_SIZE = flags.DEFINE_integer(
    "serve_tile_size", None, "As experiments.export's (default: its default).")


def serve_once(folder, height, width):
    """Runs in this process: {seconds, peak_rss_mb} of one call of the export in
    `folder` on a random (1, height, width, 3) uint8 photo."""
    import numpy as np
    import tensorflow as tf

    served = tf.saved_model.load(folder).signatures["serving_default"]
    photo = np.random.RandomState(0).randint(0, 256, (1, height, width, 3)).astype(np.uint8)
    start = time.perf_counter()
    served(images=tf.constant(photo))
    seconds = time.perf_counter() - start
    return dict(seconds=seconds,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv):
    if len(argv) == 5 and argv[1] == "serve":
        print(json.dumps(serve_once(argv[2], int(argv[3]), int(argv[4]))))
        return
    from kpac_tf import load_deblurrer
    from kpac_tf.deploy import export

    model = load_deblurrer(_CHECKPOINT.value, _MODEL.value).keras_model
    tile_size = (export.SERVE_TILE_SIZE if _SERVE_TILE_SIZE.value is None
                 else _SERVE_TILE_SIZE.value)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        folder = export.export_saved_model(model, os.path.join(work, "serving"),
                                           tile_size=tile_size)
        export_seconds = time.perf_counter() - start
        results = {}
        for label, height, width in (("64x64", 64, 64),
                                     ("photo", _HEIGHT.value, _WIDTH.value)):
            out = subprocess.run([sys.executable, __file__, "serve", folder, str(height),
                                  str(width)], capture_output=True, text=True, check=True)
            results[label] = json.loads(out.stdout.strip().splitlines()[-1])
    photo = results["photo"]
    print(f"exported in {export_seconds:.1f} s; served {_WIDTH.value}x{_HEIGHT.value} "
          f"(serve_tile_size {tile_size}, overlap "
          f"{export.SERVE_OVERLAP}): {photo['seconds']:.1f} s, peak RSS "
          f"{photo['peak_rss_mb']:.0f} MB ({results['64x64']['peak_rss_mb']:.0f} MB for "
          "64x64)")
    print(json.dumps(dict(tile_size=tile_size, overlap=export.SERVE_OVERLAP,
                          export_seconds=export_seconds, **results)))


if __name__ == "__main__":
    app.run(main)
