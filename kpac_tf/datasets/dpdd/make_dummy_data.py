"""Writes dummy_data/: tiny 16-bit PNGs in the official DPDD archive's layout and naming.

python datasets/dpdd/make_dummy_data.py

The names are real ones (the archive's file lists: `DPDNet/file_names/` of GitHub
Abdullah-Abuolaim/defocus-deblurring-dual-pixel): a target is its own capture,
numbered one below or one above its source, and the left/right views are the source
stem plus _L / _R, so only the sorted file lists paired by position say which files
form a scene. The pixels say it too: the red channel of every image holds
`CODE * (scene + 1) + view` (`scene` counted over all splits, `view` an index into
VIEWS), green and blue are random 16-bit values; `decode` reads it back.
"""

import pathlib

import numpy as np
import tensorflow as tf

from kpac_tf.datasets.dpdd.stand_in import scene_paths

ROOT = pathlib.Path(__file__).parent / "dummy_data" / "dd_dp_dataset_canon"
SCENES = {  # split -> [(source stem, target stem)], as in the real archive
    "train": [("1P0A0890", "1P0A0891"), ("1P0A0911", "1P0A0910"),
              ("1P0A0929", "1P0A0928")],
    "val": [("1P0A0894", "1P0A0895"), ("1P0A0983", "1P0A0982")],
    "test": [("1P0A0917", "1P0A0916"), ("1P0A0984", "1P0A0985")],
}
HEIGHT, WIDTH = 16, 24
VIEWS = ("source", "target", "left", "right")
CODE = 4096


def decode(image):
    """(scene, view) that a dummy image's red channel encodes.

    Args:
        image: uint16 array (16, 24, 3) of a dummy PNG.
    """
    red = int(np.asarray(image)[0, 0, 0])
    return red // CODE - 1, VIEWS[red % CODE]


def main():
    """Rewrites ROOT (any earlier dummy files are removed)."""
    for old in ROOT.glob("*/*/*.png"):
        old.unlink()
    rng = np.random.RandomState(0)
    scene = 0
    for split, pairs in SCENES.items():
        for source, target in pairs:
            for view, path in scene_paths(ROOT, split, source, target).items():
                image = rng.randint(0, 65536, (HEIGHT, WIDTH, 3)).astype(np.uint16)
                image[..., 0] = CODE * (scene + 1) + VIEWS.index(view)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tf.io.encode_png(image).numpy())
            scene += 1


if __name__ == "__main__":
    main()
