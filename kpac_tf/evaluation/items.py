"""What `scoring.evaluate` scores: (name, load) pairs over a TFDS split or a folder of
photos, each scene read only when loaded, and given as stored (uint8 or uint16: the
scoring protocol decides how it reaches the network and the metrics).

Folders: `blurry/` and `sharp/` (or `source/` and `target/`) of PNG/JPEG pairs
matched by file name, or a DPDD-layout folder (`<split>_c/source`, `<split>_c/target`,
and `_l` / `_r` for the dual model) paired by position in each sorted folder, as
DPDD's own loaders do (its targets carry names of their own).
"""

import os

import tensorflow as tf

from kpac_tf.data import images, pipelines


class Items:
    """A re-iterable of (name, load) pairs whose length is known without loading
    anything: what `scoring.evaluate` takes when the pairs come from a stream (a tf.data
    split) rather than a list.

    Args:
        count: int, how many pairs `make_iterator()` yields.
        make_iterator: callable returning a fresh iterator of (name, load) pairs.
    """

    def __init__(self, count, make_iterator):
        self.count = int(count)
        self._make_iterator = make_iterator

    def __len__(self):
        return self.count

    def __iter__(self):
        return iter(self._make_iterator())


CROP_PIXELS = 32
"""Views whose sizes differ by at most this many pixels are one crop, not a pair."""


def check_same_size(views, paths):
    """Raises ValueError, saying what to check, unless every view of a scene
    ({view: (1, h, w, 3)}, from files {view: path}) has one size."""
    sizes = {view: tuple(image.shape[1:3]) for view, image in views.items()}
    if len(set(sizes.values())) == 1:
        return
    listed = ", ".join(f"{paths[view]} is {w}x{h}" for view, (h, w) in sizes.items())
    heights, widths = zip(*sizes.values())
    if max(heights) - min(heights) <= CROP_PIXELS and max(widths) - min(widths) <= CROP_PIXELS:
        raise ValueError(f"the views differ in size by a few pixels ({listed}): one of them "
                         "was cropped, so they are not a pixel-aligned pair; score the "
                         "uncropped files, or crop every view of the scene alike")
    raise ValueError(f"the views differ in size ({listed}): check that these files show "
                     "the same scene")


def _folder_views(input_dir, split, dual):
    """(view -> folder, pairing) for the supported --input_dir layouts: blurry/ +
    sharp/ (or source/ + target/) pair by file name, DPDD's layout by position."""
    for blurry, sharp in (("blurry", "sharp"), ("source", "target")):
        if tf.io.gfile.isdir(os.path.join(input_dir, blurry)):  # local or gs://
            if dual:
                raise ValueError(f"{input_dir}: the dual model needs a DPDD-layout folder "
                                 f"({split}_c, {split}_l, {split}_r)")
            return {"center": os.path.join(input_dir, blurry),
                    "sharp": os.path.join(input_dir, sharp)}, "name"
    views = {"center": f"{split}_c/source", "sharp": f"{split}_c/target"}
    if dual:
        views.update(left=f"{split}_l/source", right=f"{split}_r/source")
    return {view: os.path.join(input_dir, folder) for view, folder in views.items()}, \
        "position"


def folder_items(input_dir, split, dual, limit=0):
    """(name, load) pairs over an --input_dir, the first `limit` scenes (0: all);
    only file names are listed here: load() reads one scene when called and returns
    (inputs, sharp), uint8 or uint16 with batch 1 (inputs: the dual triple for
    `dual`)."""
    def load(paths):
        def read(path):
            image = images.read_image(path)
            if image.ndim != 3 or image.shape[-1] != 3:
                raise images.ImageReadError(f"{path}: expected an RGB image, got shape "
                                            f"{image.shape}")
            return tf.constant(image)[None]

        views = {view: read(path) for view, path in paths.items()}
        check_same_size(views, paths)
        inputs = ((views["center"], views["left"], views["right"]) if dual
                  else views["center"])
        return inputs, views["sharp"]

    views, by = _folder_views(input_dir, split, dual)
    pairs = images.pair_views(views, label=input_dir, by=by)
    if limit:
        pairs = pairs[:limit]
    return [(name, lambda paths=paths: load(paths)) for name, paths in pairs]


def dataset_items(dataset, config, data_dir, manual_dir, split, name, limit=0):
    """(name, load) pairs over a TFDS split, the first `limit` examples (0: all), as
    stored (uint8 or uint16, batch 1).

    A stream (`Items`), not a list: the split is read as it is iterated
    (`pipelines.evaluation_dataset` decodes one scene ahead), and `limit` slices the split
    itself (`test[:N]`), so no example past it is ever read or decoded. The count
    comes from the dataset's metadata.
    """
    builder = pipelines.prepare(dataset, data_dir, pipelines.dataset_config(dataset, name, config),
                           manual_dir)
    count = builder.info.splits[split].num_examples
    if limit and limit < count:  # TFDS refuses a slice past the split's end
        split, count = f"{split}[:{limit}]", limit

    def stream():
        for inputs, sharp, item_name in pipelines.evaluation_dataset(builder, split, None):
            yield item_name[0].numpy().decode(), lambda x=inputs, y=sharp: (x, y)
            del inputs, sharp  # the consumer holds this scene until it is done with it

    return Items(count, stream)


def select(input_dir, split, dual, limit, dataset, config, data_dir, manual_dir, name):
    """The items an evaluation app's flags name: `folder_items` of `input_dir` when
    given, else `dataset_items` of `dataset` (None: synthetic) for network `name`."""
    if limit < 0:
        raise ValueError(f"--limit={limit}: give a count of images (0: all)")
    if input_dir:
        return folder_items(input_dir, split, dual, limit)
    return dataset_items(dataset or "synthetic", config, data_dir, manual_dir, split, name,
                         limit)
