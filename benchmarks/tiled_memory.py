r"""Peak memory and time of `kpac_tf.deblur` on large photos, tiled and whole.

python benchmarks/tiled_memory.py [--checkpoint=outputs/embedded_default/model.keras |
    --bundled] [--precision=bfloat16]

Each case runs in a fresh process so its peak RSS is its own; the bytes per pixel
beyond a 64x64 photo's peak are printed beside `tiling.memory_needed`'s estimate,
which the deblur app checks against the memory available. Also reports how closely
tiles reproduce the whole-image output: PSNR and the largest 8-bit difference between
tiled and whole results on five of scikit-image's photos resized to 3000x2000, in tiles
of --tile_size and twice that at the default overlap. Last, what
tiling costs in speed: a 12 MP photo in tiles of both sizes and whole, in turns in one
process after each has run once (best of two), as pixel rates and their ratios, beside
1280x720 whole; and a 24 MP photo in the larger tiles beside the least time its network
work can take at this machine's matmul rate in the same precision, timed in the same
turns.
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


PHOTOS = ("rocket", "astronaut", "chelsea", "coffee", "immunohistochemistry")


def tiled_vs_whole(checkpoint, bundled, tile_sizes, height=2000, width=3000):
    """{tile size: [(photo, PSNR dB, largest difference in 8-bit levels)]}: tiled
    against whole results (float32) on scikit-image's photos resized to width x height,
    at the default overlap (random-init weights when no checkpoint: a harsh case,
    their residual is large everywhere)."""
    import keras
    import numpy as np
    from skimage import data, transform

    from kpac_tf.data import pixels
    from kpac_tf.deploy import tiling
    from kpac_tf.evaluation import metrics

    keras.utils.set_random_seed(0)
    deblurrer = _deblurrer(checkpoint, bundled, "float32")
    results = {tile: [] for tile in tile_sizes}
    for name in PHOTOS:
        photo = pixels.from_unit(transform.resize(getattr(data, name)()[..., :3],
                                                  (height, width), anti_aliasing=True),
                                 np.uint8)
        x = pixels.to_network(photo[None])
        whole = np.asarray(deblurrer.network(x))
        for tile in tile_sizes:
            tiled = tiling.predict_tiled(deblurrer, x, tile)
            levels = np.abs(pixels.from_network(tiled, np.uint8).astype(int)
                            - pixels.from_network(whole, np.uint8))
            psnr = metrics.psnr(pixels.network_to_unit(whole), pixels.network_to_unit(tiled))
            results[tile].append((name, float(psnr[0]), int(levels.max())))
    return results


def network_megapixels(size, tile_size):
    """Megapixels the network runs on for a (height, width) photo in `tile_size` tiles
    at the default overlap: the overlaps count once per tile."""
    from kpac_tf.deploy import tiling

    pixels = 1
    for side in size:
        origins, length = tiling.tile_layout(side, tile_size, tiling.OVERLAP)
        pixels *= int(origins.shape[0]) * int(length)
    return pixels / 1e6


def tiling_speed(checkpoint, bundled, precision, tile_sizes):
    """What tiling costs in speed, and how far the network is from this machine's
    arithmetic rate at `precision`.

    Returns {case: megapixels per second} for 12 MP in tiles of each size and whole,
    1280x720 whole and 24 MP in tiles of the larger size, timed in turns (best of two,
    each shape run once before; 1280x720 best of three); each 12 MP tiled rate over
    the whole ones; each tiled case's network rate (the pixels its tiles add up to,
    per second) over 1280x720's; and for the 24 MP photo its seconds, its network
    pixels, and the least time that network work can take at the best rate of a
    matmul at `precision` timed in the same turns (the network's FLOPs per pixel by
    TF's profiler).
    """
    import numpy as np
    from timing import MATMUL_FLOP, matmul_fn

    from kpac_tf import deblur
    from kpac_tf.paper.complexity import count_flops

    deblurrer = _deblurrer(checkpoint, bundled, precision)
    if deblurrer.keras_model is None:
        raise SystemExit(f"--checkpoint={checkpoint} is an exported SavedModel: the speed "
                         "part counts the network's FLOPs on the Keras model it came from")
    rng = np.random.RandomState(0)
    photos = {"24MP": rng.randint(0, 256, (4000, 6000, 3)).astype(np.uint8),
              "12MP": rng.randint(0, 256, (3000, 4000, 3)).astype(np.uint8),
              "720p": rng.randint(0, 256, (720, 1280, 3)).astype(np.uint8)}
    big_tile = max(tile_sizes)
    cases = [(f"12MP tiled {tile}", "12MP", tile) for tile in tile_sizes] + [
        ("12MP whole", "12MP", None), ("720p whole", "720p", None),
        (f"24MP tiled {big_tile}", "24MP", big_tile)]
    matmul = matmul_fn(precision)
    best = {}
    for repeat in range(3):  # the first round runs each shape once, untimed
        for label, photo, tile in cases + [("matmul", None, None)]:
            if repeat == 2 and label not in ("720p whole", "matmul"):
                continue
            start = time.perf_counter()
            matmul() if photo is None else deblur(deblurrer, photos[photo], tile_size=tile)
            seconds = time.perf_counter() - start
            if repeat:
                best[label] = min(best.get(label, seconds), seconds)
    rates = {label: photos[photo].shape[0] * photos[photo].shape[1] / 1e6 / best[label]
             for label, photo, _ in cases}
    ratios = {f"{label} over {whole}": rates[label] / rates[whole]
              for label, photo, tile in cases if photo == "12MP" and tile
              for whole in ("12MP whole", "720p whole")}
    # The network's own rate in tiles: the pixels all tiles add up to, per second.
    ratios.update({f"{label} network rate over 720p whole": network_megapixels(
        photos[photo].shape[:2], tile) / best[label] / rates["720p whole"]
        for label, photo, tile in cases if tile})
    work = network_megapixels(photos["24MP"].shape[:2], big_tile) * 1e6
    model = deblurrer.keras_model
    flop_per_pixel = count_flops(model, 720, 1280) / (720 * 1280)
    matmul_rate = MATMUL_FLOP / best["matmul"]
    return dict(rates, **ratios, **{
        "24MP seconds": best[f"24MP tiled {big_tile}"], "24MP network megapixels": work / 1e6,
        "network GFLOP per megapixel": flop_per_pixel / 1e3,
        "matmul GFLOP/s": matmul_rate / 1e9,
        "720p whole fraction of matmul": rates["720p whole"] * 1e6 * flop_per_pixel
        / matmul_rate,
        "24MP least seconds at the matmul rate": work * flop_per_pixel / matmul_rate})


def main(argv):
    if len(argv) == 5 and argv[1] == "child":
        tile = None if argv[4] == "None" else int(argv[4])
        child(int(argv[2]), int(argv[3]), tile, _CHECKPOINT.value, _BUNDLED.value,
              _PRECISION.value)
        return
    if len(argv) == 2 and argv[1] == "speed":
        print(json.dumps(tiling_speed(_CHECKPOINT.value, _BUNDLED.value, _PRECISION.value,
                                      _tile_sizes())))
        return
    from kpac_tf.deploy import tiling

    results = []
    for label, height, width, mode in CASES:
        tile = _TILE.value if mode else None
        out = subprocess.run(_child_command("child", str(height), str(width), str(tile)),
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        beyond = (result["peak_rss_mb"] - results[0]["peak_rss_mb"]) * 2**20 if results else 0
        result.update(case=label, tile_size=tile, bytes_per_pixel=beyond / (height * width),
                      estimated_bytes_per_pixel=tiling.memory_needed(height, width, tile)
                      / (height * width))
        results.append(result)
        print(f"{label:<5} {width}x{height} tile {str(tile):<5} {result['seconds']:7.1f} s  "
              f"peak RSS {result['peak_rss_mb']:7.0f} MB, beyond 64x64: "
              f"{result['bytes_per_pixel']:4.0f} B/px (estimate "
              f"{result['estimated_bytes_per_pixel']:4.0f})")
    tile_sizes = _tile_sizes()
    fidelity = tiled_vs_whole(_CHECKPOINT.value, _BUNDLED.value, tile_sizes)
    for tile, rows in fidelity.items():
        print(f"tiled ({tile} px, overlap {tiling.OVERLAP}) vs whole at 3000x2000: "
              + ", ".join(f"{name} {psnr:.1f} dB / {levels} levels"
                          for name, psnr, levels in rows)
              + f"; mean {sum(r[1] for r in rows) / len(rows):.1f} dB")
    out = subprocess.run(_child_command("speed"), stdout=subprocess.PIPE, text=True)
    if out.returncode:
        raise SystemExit(out.returncode)  # its reason is on stderr
    speed = json.loads(out.stdout.strip().splitlines()[-1])
    for tile in tile_sizes:
        tiled = f"12MP tiled {tile}"
        print(f"{_PRECISION.value}, {tile}-px tiles: 12 MP tiled {speed[tiled]:.3f} MP/s, "
              f"whole {speed['12MP whole']:.3f} MP/s: ratio "
              f"{speed[tiled + ' over 12MP whole']:.2f}; 1280x720 whole "
              f"{speed['720p whole']:.3f} MP/s: ratio {speed[tiled + ' over 720p whole']:.2f}; "
              f"the network in those tiles (overlaps counted once per tile) at "
              f"{speed[tiled + ' network rate over 720p whole']:.2f} of 1280x720's rate")
    print(f"{_PRECISION.value}, 24 MP (6000x4000) in {max(tile_sizes)}-px tiles: "
          f"{speed['24MP seconds']:.1f} s, {speed['24MP network megapixels']:.1f} MP through "
          f"the network at {speed['network GFLOP per megapixel']:.0f} GFLOP/MP; a "
          f"{_PRECISION.value} matmul runs at {speed['matmul GFLOP/s']:.0f} GFLOP/s (1280x720 "
          f"whole reaches {speed['720p whole fraction of matmul']:.0%} of it), at which that "
          f"work takes at least {speed['24MP least seconds at the matmul rate']:.1f} s")
    print(json.dumps(dict(precision=_PRECISION.value, cases=results,
                          tiled_vs_whole=fidelity, speed=speed)))


def _tile_sizes():
    """--tile_size and twice it, the tile sizes of the fidelity and speed sections."""
    return [_TILE.value, 2 * _TILE.value]


def _child_command(*args):
    """This script run again with `args` and the same model flags."""
    return [sys.executable, __file__, *args, f"--precision={_PRECISION.value}",
            f"--tile_size={_TILE.value}"] + (
        [f"--checkpoint={_CHECKPOINT.value}"] if _CHECKPOINT.value else []) + (
        ["--bundled"] if _BUNDLED.value else [])


if __name__ == "__main__":
    app.run(main)
