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
metrics.json (with the scoring protocol), per_image.csv, images/ and report.png (a
picture of the evaluation) into --output_dir.

The scoring protocol: --bit_depth (8, the paper's, or 16), --to_8bit (how 16-bit images
become 8-bit) and --ssim (uniform, DPDNet's scikit-image defaults, or gaussian, Wang et
al.'s); --all_protocols also prints Table 4's row under every protocol. Scores that mean
a broken evaluation (mismatched pairs, a wrong range, NaN or constant outputs) are
printed as warnings naming the images.
"""

import os

from kpac_tf.evaluation import items, lpips, protocols, report, scoring
from kpac_tf.paper import table4

from .common_flags import (ALL_PROTOCOLS as _ALL_PROTOCOLS, BIT_DEPTH as _BIT_DEPTH,
                           CHECKPOINT as _CHECKPOINT, DATA_DIR as _DATA_DIR,
                           DATASET as _DATASET, DATASET_CONFIG as _DATASET_CONFIG,
                           INPUT_DIR as _INPUT_DIR, LIMIT as _LIMIT, LOGGING,
                           LPIPS_ALEXNET as _LPIPS_ALEXNET, LPIPS_LINEAR as _LPIPS_LINEAR,
                           MANUAL_DIR as _MANUAL_DIR, MODEL as _MODEL,
                           OUTPUT_DIR as _OUTPUT_DIR, SKIP_BAD as _SKIP_BAD, SPLIT as _SPLIT,
                           SSIM as _SSIM, TO_8BIT as _TO_8BIT, deblurrer_from_flags,
                           run_app, value_or)

_DEFAULT_OUTPUT = "outputs/evaluate"


def main(argv):
    del argv  # run_app refuses extra arguments
    output_dir = value_or(_OUTPUT_DIR, _DEFAULT_OUTPUT)
    try:
        model = deblurrer_from_flags()
        name = _MODEL.value or model.name
        images = items.select(_INPUT_DIR.value, _SPLIT.value, model.num_inputs == 3,
                              _LIMIT.value, _DATASET.value, _DATASET_CONFIG.value,
                              _DATA_DIR.value, _MANUAL_DIR.value, name)
        metric, unavailable = lpips.metric_or_reason(_LPIPS_ALEXNET.value,
                                                     _LPIPS_LINEAR.value)
        picture = report.Report()
        summary = scoring.evaluate(
            model, images, output_dir, _SKIP_BAD.value,
            protocols.requested(_BIT_DEPTH.value, _TO_8BIT.value, _SSIM.value,
                                _ALL_PROTOCOLS.value),
            lpips=metric, lpips_unavailable=unavailable, observe=picture.add)
        drawn = picture.draw(os.path.join(output_dir, "report.png"),
                             f"{name} ({_CHECKPOINT.value or 'the bundled model'}), "
                             f"{summary['label']}")
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"evaluate: {e}") from None
    # The paper's numbers are 8-bit with DPDNet's (uniform) SSIM: beside those only.
    with_paper = (not _INPUT_DIR.value and _DATASET.value == "dpdd"
                  and _SPLIT.value == "test" and summary["protocol"]["bit_depth"] == 8
                  and summary["protocol"]["ssim"] == "uniform")
    print(f"Scored {summary['label']}")
    print(table4.format_table(summary, name, model.params, with_paper))
    if "protocols" in summary:
        print()
        print(table4.format_protocols(summary["protocols"], name,
                                      summary["source_bit_depth"]))
    if summary["lpips"] is None:
        print(f"LPIPS: unavailable ({summary['lpips_unavailable']})")
    for skipped, reason in summary["skipped"]:
        print(f"skipped {skipped}: {reason}")
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    print(f"Results: {output_dir}/metrics.json, per_image.csv, images/"
          + (f", {drawn}" if drawn else " (no image scored: no report.png)"))


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Images": [_DATASET, _DATASET_CONFIG, _SPLIT, _DATA_DIR, _MANUAL_DIR, _INPUT_DIR,
               _LIMIT, _SKIP_BAD],
    "Scoring protocol": [_BIT_DEPTH, _TO_8BIT, _SSIM, _ALL_PROTOCOLS],
    "LPIPS (Table 4's third column)": [_LPIPS_ALEXNET, _LPIPS_LINEAR],
    "Output": [_OUTPUT_DIR],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_TO_8BIT.name: protocols.PAPER.to_8bit,
                 _OUTPUT_DIR.name: _DEFAULT_OUTPUT}


def run():
    """Console-script entry point (`kpac-evaluate`)."""
    run_app(main)


if __name__ == "__main__":
    run()
