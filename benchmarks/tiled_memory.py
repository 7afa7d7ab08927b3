r"""Peak memory and time of `kpac_tf.deblur` on large photos, tiled and whole.

python benchmarks/tiled_memory.py [--checkpoint=outputs/embedded_default/model.keras |
    --bundled]

Each case runs in a fresh process so its peak RSS is its own; the bytes per pixel
beyond a 64x64 photo's peak are printed beside `deblurring.memory_needed`'s estimate,
which the deblur app checks against the memory available. Also reports the PSNR
between tiled and whole-image results on a 1280x720 photo (scikit-image's rocket,
resized), which shows how closely tiling reproduces the untiled output.
"""

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Model (default: random-weight "
                                  "single_2level).")
_BUNDLED = flags.DEFINE_boolean("bundled", False, "Measure the bundled model.")
_TILE = flags.DEFINE_integer("tile_size", 1024, "Tile size of the tiled cases.")
CASES = [("64px", 64, 64, None), ("720p", 720, 1280, None), ("720p", 720, 1280, "tiled"),
         ("6MP", 2000, 3000, None), ("12MP", 3000, 4000, "tiled"),
         ("24MP", 4000, 6000, "tiled")]


def child(height, width, tile_size, checkpoint, bundled):
    """Runs one case in this process; prints JSON with seconds and peak RSS."""
    import numpy as np

    from kpac_tf import build_model, deblur, load_deblurrer

    model = (load_deblurrer(checkpoint) if checkpoint or bundled
             else build_model("single_2level"))
    image = np.random.RandomState(0).randint(0, 256, (height, width, 3)).astype(np.uint8)
    start = time.perf_counter()
    deblur(model, image, tile_size=tile_size)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(seconds=seconds, peak_rss_mb=peak_mb)))


def tiled_vs_whole_psnr(checkpoint, tile_size):
    """PSNR between tiled and whole results at 1280x720 (random-init weights when no
    checkpoint: a harsh case, their residual is large everywhere)."""
    import keras
    import numpy as np
    from skimage import data, transform

    from kpac_tf import build_model, deblur, load_deblurrer
    from kpac_tf.data import pixels
    from kpac_tf.evaluation import metrics

    keras.utils.set_random_seed(0)
    model = load_deblurrer(checkpoint) if checkpoint else build_model("single_2level")
    photo = pixels.from_unit(transform.resize(data.rocket(), (720, 1280), anti_aliasing=True),
                             np.uint8)
    whole = pixels.to_unit(deblur(model, photo), np.float64)
    tiled = pixels.to_unit(deblur(model, photo, tile_size=tile_size // 2, overlap=64),
                           np.float64)
    return float(metrics.psnr(whole, tiled))


def main(argv):
    if len(argv) == 5 and argv[1] == "child":
        tile = None if argv[4] == "None" else int(argv[4])
        child(int(argv[2]), int(argv[3]), tile, _CHECKPOINT.value, _BUNDLED.value)
        return
    from kpac_tf.deploy.deblurring import memory_needed

    results = []
    for label, height, width, mode in CASES:
        tile = _TILE.value if mode else None
        command = [sys.executable, __file__, "child", str(height), str(width), str(tile)]
        if _CHECKPOINT.value:
            command.append(f"--checkpoint={_CHECKPOINT.value}")
        if _BUNDLED.value:
            command.append("--bundled")
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        beyond = (result["peak_rss_mb"] - results[0]["peak_rss_mb"]) * 2**20 if results else 0
        result.update(case=label, tile_size=tile, bytes_per_pixel=beyond / (height * width),
                      estimated_bytes_per_pixel=memory_needed(height, width, tile)
                      / (height * width))
        results.append(result)
        print(f"{label:<5} {width}x{height} tile {str(tile):<5} {result['seconds']:7.1f} s  "
              f"peak RSS {result['peak_rss_mb']:7.0f} MB, beyond 64x64: "
              f"{result['bytes_per_pixel']:4.0f} B/px (estimate "
              f"{result['estimated_bytes_per_pixel']:4.0f})")
    psnr = {label: tiled_vs_whole_psnr(path, _TILE.value)
            for label, path in (("checkpoint", _CHECKPOINT.value), ("random_init", None))
            if label == "random_init" or path}
    for label, value in psnr.items():
        print(f"tiled ({_TILE.value // 2} px tiles, overlap 64) vs whole at 1280x720, "
              f"{label} weights: PSNR {value:.1f} dB")
    print(json.dumps(dict(cases=results, tiled_vs_whole_psnr=psnr)))


if __name__ == "__main__":
    app.run(main)
