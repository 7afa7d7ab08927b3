"""Writes dummy_data/: tiny 16-bit PNGs in the official DPDD archive's layout.

python datasets/dpdd/make_dummy_data.py
"""

import pathlib

import numpy as np
import tensorflow as tf

ROOT = pathlib.Path(__file__).parent / "dummy_data" / "dd_dp_dataset_canon"
SCENES = {"train": 3, "val": 2, "test": 2}
HEIGHT, WIDTH = 16, 24


def main():
    rng = np.random.RandomState(0)
    for split, count in SCENES.items():
        for index in range(count):
            name = f"1P0A{split[:2].upper()}{index:02d}"
            sharp = rng.randint(0, 65536, (HEIGHT, WIDTH, 3)).astype(np.uint16)
            files = {
                f"{split}_c/target/{name}.png": sharp,
                f"{split}_c/source/{name}.png": (sharp // 2 + 1000).astype(np.uint16),
                f"{split}_l/source/{name}_L.png": (sharp // 3).astype(np.uint16),
                f"{split}_r/source/{name}_R.png": (sharp // 4).astype(np.uint16),
            }
            for relative, image in files.items():
                path = ROOT / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tf.io.encode_png(image).numpy())


if __name__ == "__main__":
    main()
