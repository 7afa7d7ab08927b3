r"""How much the 16-to-8-bit conversion changes PSNR (`kpac_tf.data.pixels.to_uint8`).

python benchmarks/bit_depth.py [--dpdd_dir=kpac_tf/datasets/dpdd/dummy_data/dd_dp_dataset_canon]

DPDD's PNGs are 16-bit; we score 8-bit images made by round(x / 257) ("round", our
choice), while Pillow / scipy.misc.imread, which the authors' code reads images
with, give x >> 8 ("high_byte"). For each blurry/sharp pair it reports the blurry
input's PSNR under both conversions and the PSNR between the two 8-bit versions of
the same image:

1. every `<split>_c/source` / `<split>_c/target` pair under --dpdd_dir (default: the
   repository's dummy DPDD data, random 16-bit noise);
2. full-size 1680x1120 16-bit pairs rendered here: scikit-image photos resized
   (bicubic) as the sharp image, defocus growing from the top of the frame (in
   focus) to the bottom (--max_radius px) rendered in linear light with
   `kpac_tf.rendering.defocus`, plus sensor noise, both quantised to 16 bits.

Prints a table and one JSON line. Expect high_byte about 0.034 dB lower: x >> 8 is
floor(x / 256), 257/256 times the contrast of x / 257, and 20 log10(257/256) =
0.034 dB.
"""

import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kpac_tf.data import images, pixels
from kpac_tf.evaluation import metrics
from kpac_tf.rendering import defocus

DUMMY = (pathlib.Path(__file__).resolve().parents[1] / "kpac_tf" / "datasets" / "dpdd"
         / "dummy_data" / "dd_dp_dataset_canon")
_DPDD_DIR = flags.DEFINE_string("dpdd_dir", str(DUMMY), "An extracted DPDD archive "
                                "(or the dummy data): <split>_c/{source,target}/*.png.")
_PHOTOS = flags.DEFINE_list("photos", ["chelsea", "coffee", "rocket"],
                            "scikit-image photos (3:2) to render at --size.")
_SIZE = flags.DEFINE_list("size", ["1120", "1680"], "Rendered height,width (DPDD's).")
_MAX_RADIUS = flags.DEFINE_float("max_radius", 8.0, "Blur radius at the bottom (px).")


def psnr_8bit(a, b, to_8bit):
    """PSNR (dB) of two uint16 images after `to_8bit` to 8 bits."""
    a, b = (pixels.to_unit(pixels.to_uint8(x, to_8bit)) for x in (a, b))
    return float(metrics.psnr(a, b))


def compare(blurry, sharp):
    """Scores of one uint16 (h, w, 3) pair under both conversions."""
    scores = {to_8bit: psnr_8bit(blurry, sharp, to_8bit) for to_8bit in pixels.TO_8BIT}
    return dict(input_psnr_round=scores["round"],
                input_psnr_high_byte=scores["high_byte"],
                change_db=scores["high_byte"] - scores["round"],
                round_vs_high_byte_sharp=float(metrics.psnr(
                    *(pixels.to_unit(pixels.to_uint8(sharp, m)) for m in pixels.TO_8BIT))),
                round_vs_high_byte_blurry=float(metrics.psnr(
                    *(pixels.to_unit(pixels.to_uint8(blurry, m)) for m in pixels.TO_8BIT))))


def dpdd_pairs(root):
    """{name: (blurry, sharp)} uint16 over every split's centre view."""
    pairs = {}
    for target in sorted(pathlib.Path(root).glob("*_c/target/*.png")):
        source = target.parent.parent / "source" / target.name
        pairs[target.stem] = (images.read_image(source), images.read_image(target))
    if not pairs:
        raise FileNotFoundError(f"{root}: no <split>_c/target/*.png files")
    return pairs


def rendered_pair(photo, height, width, max_radius, seed=0):
    """(blurry, sharp) uint16 (height, width, 3): a photo with defocus from 0 (top)
    to max_radius (bottom) and sensor noise."""
    from skimage import data, transform

    sharp = transform.resize(pixels.to_unit(getattr(data, photo)()[..., :3], np.float64),
                             (height, width), order=3, anti_aliasing=True)
    sharp = np.clip(sharp, 0, 1)
    blurry = defocus.graded_defocus(sharp, max_radius, np.random.default_rng(seed))
    return pixels.from_unit(blurry, np.uint16), pixels.from_unit(sharp, np.uint16)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    height, width = (int(v) for v in _SIZE.value)
    results = {"dpdd": {name: compare(*pair)
                        for name, pair in dpdd_pairs(_DPDD_DIR.value).items()},
               "rendered": {photo: compare(*rendered_pair(photo, height, width,
                                                          _MAX_RADIUS.value))
                            for photo in _PHOTOS.value}}
    print(f"{'image':<22} {'input PSNR round':>17} {'high_byte':>10} {'change':>9} "
          f"{'round vs high_byte (sharp / blurry)':>36}")
    for group, rows in results.items():
        for name, r in rows.items():
            print(f"{group + '/' + name:<22} {r['input_psnr_round']:17.4f} "
                  f"{r['input_psnr_high_byte']:10.4f} {r['change_db']:+9.4f} "
                  f"{r['round_vs_high_byte_sharp']:17.2f} / "
                  f"{r['round_vs_high_byte_blurry']:.2f}")
        mean = np.mean([r["change_db"] for r in rows.values()])
        print(f"{group + ' mean change':<22} {'':>17} {'':>10} {mean:+9.4f}")
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
