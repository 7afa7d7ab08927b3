r"""Evaluates a model at full resolution in the paper's Table 4 format.

python -m experiments.evaluate --checkpoint=single_2level.npz --model=single_2level \
    --dataset=dpdd --split=test --output_dir=outputs/eval_2level

--checkpoint: a .keras file, a training run folder, or an authors' .npz (with
--model); without it, the bundled model (trained on synthetic defocus, not DPDD).
Images: a dataset split (--dataset, --split), or --input_dir holding
`blurry/` and `sharp/` (or `source/` and `target/`) folders of PNG/JPEG pairs matched
by file name, or a DPDD-layout folder (`<split>_c/source`, `<split>_c/target`, and
`_l`/`_r` for the dual model) paired by position in each sorted folder, as DPDD's own
loaders do (its targets carry names of their own). Scenes are read one at a time (a
dataset split is streamed), and --limit applies before any is read. Writes
metrics.json, per_image.csv and images/ into --output_dir.
"""

import os

import tensorflow as tf
from absl import app, flags

from .common_flags import (CHECKPOINT as _CHECKPOINT, DATA_DIR as _DATA_DIR,
                           DATASET as _DATASET, DATASET_CONFIG as _DATASET_CONFIG, LOGGING,
                           MANUAL_DIR as _MANUAL_DIR, MODEL as _MODEL, TO_8BIT as _TO_8BIT,
                           run_app)
from kpac_tf import data, evaluation, images, inference, lpips

_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of blurry/sharp pairs.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "outputs/evaluate", "Where results go.")
_LIMIT = flags.DEFINE_integer("limit", 0, "Evaluate only the first N images (0: all).")
_SKIP_BAD = flags.DEFINE_boolean("skip_bad", False,
                                 "Skip and list unreadable images instead of aborting.")
_LPIPS_ALEXNET = flags.DEFINE_string(
    "lpips_alexnet", None, "torchvision's ImageNet AlexNet weights "
    "(alexnet-owt-7be5be79.pth). Unset: $TORCH_HOME/hub/checkpoints/, if there.")
_LPIPS_LINEAR = flags.DEFINE_string(
    "lpips_linear", None, "LPIPS v0.1's linear heads (weights/v0.1/alex.pth of the "
    "lpips package). Unset: the installed lpips package's, if there.")


def lpips_from_flags():
    """(LPIPS metric or None, why None): the files named by the flags or found where
    torchvision and lpips keep them. A file named by a flag must exist."""
    try:
        return lpips.LPIPS.from_files(*lpips.find_files(_LPIPS_ALEXNET.value,
                                                        _LPIPS_LINEAR.value)), None
    except FileNotFoundError as e:
        if _LPIPS_ALEXNET.value or _LPIPS_LINEAR.value:
            raise
        return None, str(e)


def _folder_views(input_dir, split, dual):
    """(view -> folder, pairing) for the supported --input_dir layouts: blurry/ +
    sharp/ (or source/ + target/) pair by file name, DPDD's layout by position."""
    for blurry, sharp in (("blurry", "sharp"), ("source", "target")):
        if os.path.isdir(os.path.join(input_dir, blurry)):
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


def folder_items(input_dir, split, dual, to_8bit="round", limit=0):
    """(name, load) pairs over an --input_dir, the first `limit` scenes (0: all);
    only file names are listed here: load() reads and converts one scene when called
    (16-bit images to 8-bit by `to_8bit`, see `data.to_unit_range`)."""
    def load(paths):
        def read(path):
            image = images.read_image(path)
            if image.ndim != 3 or image.shape[-1] != 3:
                raise images.ImageReadError(f"{path}: expected an RGB image, got shape "
                                            f"{image.shape}")
            return data.to_unit_range(tf.constant(image), to_8bit)[None]

        views = {view: read(path) for view, path in paths.items()}
        shapes = {tuple(v.shape) for v in views.values()}
        if len(shapes) > 1:
            raise ValueError(f"views differ in size: {sorted(map(str, paths.values()))}")
        inputs = ((views["center"], views["left"], views["right"]) if dual
                  else views["center"])
        return inputs, views["sharp"]

    views, by = _folder_views(input_dir, split, dual)
    pairs = images.pair_views(views, label=input_dir, by=by)
    if limit:
        pairs = pairs[:limit]
    return [(name, lambda paths=paths: load(paths)) for name, paths in pairs]


def dataset_items(dataset, config, data_dir, manual_dir, split, name, to_8bit="round",
                  limit=0):
    """(name, load) pairs over a TFDS split, the first `limit` examples (0: all), 16-bit
    images to 8-bit by `to_8bit`.

    A stream (`evaluation.Items`), not a list: the split is read as it is iterated
    (`data.evaluation_dataset` decodes one scene ahead), and `limit` slices the split
    itself (`test[:N]`), so no example past it is ever read or decoded. The count
    comes from the dataset's metadata.
    """
    builder = data.prepare(dataset, data_dir, data.dataset_config(dataset, name, config),
                           manual_dir)
    count = builder.info.splits[split].num_examples
    if limit and limit < count:  # TFDS refuses a slice past the split's end
        split, count = f"{split}[:{limit}]", limit

    def stream():
        for inputs, sharp, item_name in data.evaluation_dataset(builder, split, to_8bit):
            yield item_name[0].numpy().decode(), lambda x=inputs, y=sharp: (x, y)
            del inputs, sharp  # the consumer holds this scene until it is done with it

    return evaluation.Items(count, stream)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        if _LIMIT.value < 0:
            raise ValueError(f"--limit={_LIMIT.value}: give a count of images (0: all)")
        model = inference.load_deblurrer(_CHECKPOINT.value, _MODEL.value)
        name = _MODEL.value or model.name
        dual = model.num_inputs == 3
        if _INPUT_DIR.value:
            items = folder_items(_INPUT_DIR.value, _SPLIT.value, dual, _TO_8BIT.value,
                                 _LIMIT.value)
        else:
            items = dataset_items(_DATASET.value or "synthetic", _DATASET_CONFIG.value,
                                  _DATA_DIR.value, _MANUAL_DIR.value, _SPLIT.value, name,
                                  _TO_8BIT.value, _LIMIT.value)
        metric, unavailable = lpips_from_flags()
        summary = evaluation.evaluate(model, items, _OUTPUT_DIR.value, _SKIP_BAD.value,
                                      _TO_8BIT.value, lpips=metric,
                                      lpips_unavailable=unavailable)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"evaluate: {e}") from None
    with_paper = (not _INPUT_DIR.value and _DATASET.value == "dpdd"
                  and _SPLIT.value == "test")
    print(evaluation.format_table(summary, name, model.params, with_paper))
    if summary["lpips"] is None:
        print(f"LPIPS: unavailable ({summary['lpips_unavailable']})")
    for skipped, reason in summary["skipped"]:
        print(f"skipped {skipped}: {reason}")
    print(f"Results: {_OUTPUT_DIR.value}/metrics.json, per_image.csv, images/")


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Images": [_DATASET, _DATASET_CONFIG, _SPLIT, _DATA_DIR, _MANUAL_DIR, _INPUT_DIR,
               _LIMIT, _SKIP_BAD, _TO_8BIT],
    "LPIPS (Table 4's third column)": [_LPIPS_ALEXNET, _LPIPS_LINEAR],
    "Output": [_OUTPUT_DIR],
    "Logging": LOGGING,
}


def run():
    """Console-script entry point (`kpac-evaluate`)."""
    run_app(main, FLAG_GROUPS)


if __name__ == "__main__":
    run()
