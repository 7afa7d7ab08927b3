"""DPDD: the Dual-Pixel Defocus Deblurring dataset (Abuolaim & Brown, ECCV 2020)."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from kpac_tf.data import images

# A file in dd_dp_dataset_canon/ of an archive written by `stand_in` (not DPDD).
STAND_IN_MARKER = "STAND_IN_NOT_DPDD.txt"
_SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}
_VIEWS = {"image": ("c", "source"), "target": ("c", "target"),
          "left": ("l", "source"), "right": ("r", "source")}


class Builder(tfds.core.GeneratorBasedBuilder):
    """DPDD for defocus deblurring: 350 / 74 / 76 scenes at 1680x1120, 16-bit."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: 16-bit PNGs stored byte for byte.",
        "1.1.0": "Scenes paired by the sorted position of their files in each folder, "
                 "as the official loaders do (a scene's target has its own name: "
                 "test_c/source/1P0A0917.png pairs with test_c/target/1P0A0916.png; "
                 "1.0.0 paired by name and failed on the real archive). New feature "
                 "`target_name`; metadata `stand_in` marks an archive written by "
                 "experiments.dpdd_stand_in.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    DPDD cannot be downloaded automatically.
    1. Download `dd_dp_dataset_canon.zip` ("All images used for training/testing",
       16-bit sRGB PNGs) from the links in the README of
       https://github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel
    2. Unzip it: `unzip dd_dp_dataset_canon.zip -d ~/dpdd` (about 35 GB).
    3. Check the layout: `~/dpdd/dd_dp_dataset_canon/{train,val,test}_{c,l,r}/`,
       with `source/` in each and `target/` in the `_c` folders.
    4. Build: `tfds build datasets/dpdd --manual_dir=~/dpdd --data_dir=DATA_DIR`
       (`--manual_dir` may also point at `dd_dp_dataset_canon` itself).
    """
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(
            name="single", description="Blurry centre image and sharp target."),
        tfds.core.BuilderConfig(
            name="dual", description="Centre, left and right dual-pixel views and "
            "the sharp target."),
    ]

    def _views(self):
        return ("image", "target", "left", "right") if self.builder_config.name == "dual" \
            else ("image", "target")

    def _info(self):
        image = tfds.features.Image(shape=(None, None, 3), dtype=np.uint16,
                                    encoding_format="png")
        features = {view: image for view in self._views()}
        features["name"] = tfds.features.Text(
            doc="Stem of the centre source file, e.g. 1P0A0917.")
        features["target_name"] = tfds.features.Text(
            doc="File name of the paired target in <split>_c/target/, e.g. 1P0A0916.png.")
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "target"),
            homepage="https://github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        root = _find_root(epath.Path(dl_manager.manual_dir))
        # List and pair every split before anything is written.
        scenes = {split: _list_scenes(root, folder, self._views())
                  for split, folder in _SPLIT_FOLDERS.items()}
        stand_in = (root / STAND_IN_MARKER).exists()
        if stand_in:
            logging.warning("DPDD: %s holds a stand-in archive written by "
                            "experiments.dpdd_stand_in (synthetic scenes, NOT DPDD): "
                            "its scores are no DPDD numbers", root)
        self.info.metadata["stand_in"] = stand_in
        return {split: self._generate_examples(pairs) for split, pairs in scenes.items()}

    def _generate_examples(self, scenes):
        for name, paths in scenes:
            example = {view: _read_png(path) for view, path in paths.items()}
            shapes = {view: _png_shape(data, paths[view]) for view, data in example.items()}
            if len(set(shapes.values())) > 1:
                listing = ", ".join(f"{paths[v]} {s[1]}x{s[0]}" for v, s in shapes.items())
                raise ValueError(f"DPDD scene {name}: views differ in size: {listing}")
            example["name"] = name
            example["target_name"] = paths["target"].name
            yield name, example


def _find_root(manual_dir):
    """The folder holding train_c/ etc.: `manual_dir` or its dd_dp_dataset_canon/."""
    for candidate in (manual_dir, manual_dir / "dd_dp_dataset_canon"):
        if (candidate / "train_c").exists():
            return candidate
    raise FileNotFoundError(
        f"DPDD not found in --manual_dir={manual_dir}: expected train_c/, val_c/, "
        "test_c/ (and _l/, _r/) there or in its dd_dp_dataset_canon/ folder. "
        "See MANUAL_DOWNLOAD_INSTRUCTIONS in kpac_tf/datasets/dpdd/README.md")


def _list_scenes(root, folder, views):
    """[(source stem, {view: path})] of one split: the folders' sorted file lists
    paired by position, as the official loaders do (names differ within a scene)."""
    folders = {}
    for view in views:
        side, kind = _VIEWS[view]
        folders[view] = root / f"{folder}_{side}" / kind
    return images.pair_views(folders, label="DPDD", by="position")


def _read_png(path):
    try:
        return path.read_bytes()
    except OSError as e:
        raise ValueError(f"DPDD: cannot read {path}: {e}") from None


def _png_shape(data, path):
    """(height, width) of a 3-channel PNG; raises ValueError naming `path` otherwise."""
    try:
        image = tf.io.decode_png(data, dtype=tf.uint16)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        reason = getattr(e, "message", str(e))
        raise ValueError(f"DPDD: {path} is not a readable PNG ({reason})") from None
    if image.shape[-1] != 3:
        raise ValueError(f"DPDD: {path} has {image.shape[-1]} channels, expected RGB")
    return tuple(image.shape[:2])
