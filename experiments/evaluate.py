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

from absl import flags

from kpac_tf.deploy import deblurring
from kpac_tf.evaluation import items as evaluation_items, lpips, scoring
from kpac_tf.paper import table4

from .common_flags import (CHECKPOINT as _CHECKPOINT, DATA_DIR as _DATA_DIR,
                           DATASET as _DATASET, DATASET_CONFIG as _DATASET_CONFIG, LOGGING,
                           MANUAL_DIR as _MANUAL_DIR, MODEL as _MODEL, TO_8BIT as _TO_8BIT,
                           run_app)

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


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        if _LIMIT.value < 0:
            raise ValueError(f"--limit={_LIMIT.value}: give a count of images (0: all)")
        model = deblurring.load_deblurrer(_CHECKPOINT.value, _MODEL.value)
        name = _MODEL.value or model.name
        dual = model.num_inputs == 3
        if _INPUT_DIR.value:
            items = evaluation_items.folder_items(_INPUT_DIR.value, _SPLIT.value, dual,
                                                  _TO_8BIT.value, _LIMIT.value)
        else:
            items = evaluation_items.dataset_items(
                _DATASET.value or "synthetic", _DATASET_CONFIG.value, _DATA_DIR.value,
                _MANUAL_DIR.value, _SPLIT.value, name, _TO_8BIT.value, _LIMIT.value)
        metric, unavailable = lpips.metric_or_reason(_LPIPS_ALEXNET.value,
                                                     _LPIPS_LINEAR.value)
        summary = scoring.evaluate(model, items, _OUTPUT_DIR.value, _SKIP_BAD.value,
                                   _TO_8BIT.value, lpips=metric,
                                   lpips_unavailable=unavailable)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"evaluate: {e}") from None
    with_paper = (not _INPUT_DIR.value and _DATASET.value == "dpdd"
                  and _SPLIT.value == "test")
    print(table4.format_table(summary, name, model.params, with_paper))
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
