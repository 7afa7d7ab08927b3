r"""Scores two models on the same images and says whether they differ: the mean
difference of PSNR, SSIM, MAE (and LPIPS when its files are there) with a 95% paired
bootstrap confidence interval, the per-image wins, and the images where the two differ
most.

python -m experiments.compare --checkpoint=runs/kpac --baseline=runs/baseline \
    --dataset=dpdd --split=test --output_dir=outputs/compare

--checkpoint / --model and --baseline / --baseline_model each name a model as
experiments.evaluate takes it (unset: the bundled model, trained on synthetic defocus,
not DPDD); the images and the scoring protocol are evaluate's flags. Writes a/ and b/
(each an evaluation: metrics.json, per_image.csv, images/) and comparison.json into
--output_dir.
"""

import os

from absl import flags

from kpac_tf.evaluation import comparison, items, lpips, protocols, scoring
from kpac_tf.models.networks import MODEL_NAMES
from kpac_tf.utils.files import write_json

from .common_flags import (BIT_DEPTH as _BIT_DEPTH, CHECKPOINT as _CHECKPOINT,
                           DATA_DIR as _DATA_DIR, DATASET as _DATASET,
                           DATASET_CONFIG as _DATASET_CONFIG, INPUT_DIR as _INPUT_DIR,
                           LIMIT as _LIMIT, LOGGING, LPIPS_ALEXNET as _LPIPS_ALEXNET,
                           LPIPS_LINEAR as _LPIPS_LINEAR, MANUAL_DIR as _MANUAL_DIR,
                           MODEL as _MODEL, OUTPUT_DIR as _OUTPUT_DIR,
                           SKIP_BAD as _SKIP_BAD, SPLIT as _SPLIT, SSIM as _SSIM,
                           TO_8BIT as _TO_8BIT, deblurrer_from_flags, run_app, value_or)

_BASELINE = flags.DEFINE_string(
    "baseline", None, "The model compared against, as --checkpoint takes it. Unset: the "
    "bundled model.")
_BASELINE_MODEL = flags.DEFINE_enum("baseline_model", None, MODEL_NAMES,
                                    "--baseline's network, as --model for --checkpoint.")
_RESAMPLES = flags.DEFINE_integer("resamples", 10_000, "Bootstrap resamples of the images.")

_DEFAULT_OUTPUT = "outputs/compare"


def main(argv):
    del argv  # run_app refuses extra arguments
    output_dir = value_or(_OUTPUT_DIR, _DEFAULT_OUTPUT)
    sources = {"a": (_CHECKPOINT, _MODEL), "b": (_BASELINE, _BASELINE_MODEL)}
    try:
        if _RESAMPLES.value < 100:
            raise ValueError(f"--resamples={_RESAMPLES.value}: give at least 100")
        metric, unavailable = lpips.metric_or_reason(_LPIPS_ALEXNET.value,
                                                     _LPIPS_LINEAR.value)
        chosen = protocols.requested(_BIT_DEPTH.value, _TO_8BIT.value, _SSIM.value)
        scores, names = {}, {}
        for key, (checkpoint, network) in sources.items():
            model = deblurrer_from_flags(checkpoint=checkpoint, model=network)
            names[key] = f"{key}: {checkpoint.value or 'bundled model'}"
            folder = os.path.join(output_dir, key)
            images = items.select(_INPUT_DIR.value, _SPLIT.value, model.num_inputs == 3,
                                  _LIMIT.value, _DATASET.value, _DATASET_CONFIG.value,
                                  _DATA_DIR.value, _MANUAL_DIR.value, network.value or model.name)
            summary = scoring.evaluate(model, images, folder, _SKIP_BAD.value, chosen,
                                       lpips=metric, lpips_unavailable=unavailable)
            for warning in summary["warnings"]:
                print(f"warning ({names[key]}): {warning}")
            scores[key] = scoring.read_per_image(os.path.join(folder, "per_image.csv"))
        result = comparison.compare(scores["a"], scores["b"], _RESAMPLES.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"compare: {e}") from None
    write_json(os.path.join(output_dir, "comparison.json"),
               dict(a=names["a"], b=names["b"], protocol=summary["protocol"],
                    resamples=_RESAMPLES.value, metrics=comparison.as_json(result)),
               indent=2)
    print(f"Scored {summary['label']}")
    print(comparison.format_comparison(result, "a", "b"))
    print("\n".join(names.values()))
    print(f"Results: {output_dir}/comparison.json, a/ and b/ (per_image.csv, images/)")


FLAG_GROUPS = {
    "Models": [_CHECKPOINT, _MODEL, _BASELINE, _BASELINE_MODEL],
    "Images": [_DATASET, _DATASET_CONFIG, _SPLIT, _DATA_DIR, _MANUAL_DIR, _INPUT_DIR,
               _LIMIT, _SKIP_BAD],
    "Scoring protocol": [_BIT_DEPTH, _TO_8BIT, _SSIM],
    "LPIPS": [_LPIPS_ALEXNET, _LPIPS_LINEAR],
    "Comparison": [_RESAMPLES],
    "Output": [_OUTPUT_DIR],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_TO_8BIT.name: protocols.PAPER.to_8bit,
                 _OUTPUT_DIR.name: _DEFAULT_OUTPUT}

if __name__ == "__main__":
    run_app(main)
