r"""Peak memory and time of `kpac_tf.deblur` on large photos, tiled and whole.

python benchmarks/tiled_memory.py [--checkpoint=outputs/embedded_default/model.keras |
    --bundled] [--precision=bfloat16]

Each case runs in a fresh process so its peak RSS is its own; the bytes per pixel
beyond a 64x64 photo's peak are printed beside `deblurring.memory_needed`'s estimate,
which the deblur app checks against the memory available. Also reports the PSNR
between tiled and whole-image results on a 1280x720 photo (scikit-image's rocket,
resized), which shows how closely tiling reproduces the untiled output. Last, what
tiling costs in speed: a 12 MP photo tiled and whole, in turns in one process after
each has run once (best of two), as pixel rates and their ratio, beside 1280x720
whole.
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
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                               "Compute precision (`load_deblurrer(precision=...)`).")
CASES = [("64px", 64, 64, None), ("720p", 720, 1280, None), ("720p", 720, 1280, "tiled"),
         ("6MP", 2000, 3000, None), ("12MP", 3000, 4000, "tiled"),
         ("24MP", 4000, 6000, "tiled")]


def _deblurrer(checkpoint, bundled, precision):
    from kpac_tf import build_model, load_deblurrer
    from kpac_tf.deploy.deblurring import Deblurrer

    if checkpoint or bundled:
        return load_deblurrer(checkpoint, precision=precision)
    return Deblurrer.from_keras(build_model("single_2level"), precision)


def child(height, width, tile_size, checkpoint, bundled, precision):
    """Runs one case in this process; prints JSON with seconds and peak RSS."""
    import numpy as np

    from kpac_tf import deblur

    model = _deblurrer(checkpoint, bundled, precision)
    image = np.random.RandomState(0).randint(0, 256, (height, width, 3)).astype(np.uint8)
    start = time.perf_counter()
    deblur(model, image, tile_size=tile_size)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(seconds=seconds, peak_rss_mb=peak_mb)))


def tiled_vs_whole_psnr(checkpoint, bundled, tile_size):
    """PSNR between tiled and whole results at 1280x720 (random-init weights when no
    checkpoint: a harsh case, their residual is large everywhere)."""
    import keras
    import numpy as np
    from skimage import data, transform

    from kpac_tf import build_model, deblur, load_deblurrer
    from kpac_tf.data import pixels
    from kpac_tf.evaluation import metrics

    keras.utils.set_random_seed(0)
    model = (load_deblurrer(checkpoint) if checkpoint or bundled
             else build_model("single_2level"))
    photo = pixels.from_unit(transform.resize(data.rocket(), (720, 1280), anti_aliasing=True),
                             np.uint8)
    whole = pixels.to_unit(deblur(model, photo), np.float64)
    tiled = pixels.to_unit(deblur(model, photo, tile_size=tile_size // 2, overlap=64),
                           np.float64)
    return float(metrics.psnr(whole, tiled))


def tiling_speed(checkpoint, bundled, precision, tile_size):
    """{case: megapixels per second}: 12 MP tiled and whole, in turns (best of two,
    each shape run once before), and 1280x720 whole (best of three); the ratios."""
    import numpy as np

    from kpac_tf import deblur

    deblurrer = _deblurrer(checkpoint, bundled, precision)
    rng = np.random.RandomState(0)
    photos = {"12MP": rng.randint(0, 256, (3000, 4000, 3)).astype(np.uint8),
              "720p": rng.randint(0, 256, (720, 1280, 3)).astype(np.uint8)}
    cases = [("12MP tiled", "12MP", tile_size), ("12MP whole", "12MP", None),
             ("720p whole", "720p", None)]
    best = {}
    for repeat in range(3):  # the first round runs each shape once, untimed
        for label, photo, tile in cases:
            if repeat == 2 and label != "720p whole":
                continue
            start = time.perf_counter()
            deblur(deblurrer, photos[photo], tile_size=tile)
            seconds = time.perf_counter() - start
            if repeat:
                best[label] = min(best.get(label, seconds), seconds)
    rates = {label: photos[photo].shape[0] * photos[photo].shape[1] / 1e6 / best[label]
             for label, photo, _ in cases}
    return dict(rates, tiled_over_whole=rates["12MP tiled"] / rates["12MP whole"],
                tiled_over_720p=rates["12MP tiled"] / rates["720p whole"])


def main(argv):
    if len(argv) == 5 and argv[1] == "child":
        tile = None if argv[4] == "None" else int(argv[4])
        child(int(argv[2]), int(argv[3]), tile, _CHECKPOINT.value, _BUNDLED.value,
              _PRECISION.value)
        return
    if len(argv) == 2 and argv[1] == "speed":
        print(json.dumps(tiling_speed(_CHECKPOINT.value, _BUNDLED.value, _PRECISION.value,
                                      _TILE.value)))
        return
    from kpac_tf.deploy.deblurring import memory_needed

    results = []
    for label, height, width, mode in CASES:
        tile = _TILE.value if mode else None
        out = subprocess.run(_child_command("child", str(height), str(width), str(tile)),
                             capture_output=True, text=True, check=True)
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
    psnr = {label: tiled_vs_whole_psnr(path, bundled, _TILE.value)
            for label, path, bundled in (
                ("checkpoint", _CHECKPOINT.value, False), ("bundled", None, True),
                ("random_init", None, False))
            if label == "random_init" or path or (bundled and _BUNDLED.value)}
    for label, value in psnr.items():
        print(f"tiled ({_TILE.value // 2} px tiles, overlap 64) vs whole at 1280x720, "
              f"{label} weights: PSNR {value:.1f} dB")
    out = subprocess.run(_child_command("speed"), capture_output=True, text=True, check=True)
    speed = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{_PRECISION.value}, {_TILE.value}-px tiles: 12 MP tiled "
          f"{speed['12MP tiled']:.3f} MP/s, whole {speed['12MP whole']:.3f} MP/s: ratio "
          f"{speed['tiled_over_whole']:.2f}; 1280x720 whole {speed['720p whole']:.3f} MP/s: "
          f"ratio {speed['tiled_over_720p']:.2f}")
    print(json.dumps(dict(precision=_PRECISION.value, cases=results,
                          tiled_vs_whole_psnr=psnr, speed=speed)))


def _child_command(*args):
    """This script run again with `args` and the same model flags."""
    return [sys.executable, __file__, *args, f"--precision={_PRECISION.value}",
            f"--tile_size={_TILE.value}"] + (
        [f"--checkpoint={_CHECKPOINT.value}"] if _CHECKPOINT.value else []) + (
        ["--bundled"] if _BUNDLED.value else [])


if __name__ == "__main__":
    app.run(main)
