r"""The paper's ablations (Tables 1-3): train every variant with identical data, steps
and seed, then score it on held-out images.

python -m experiments.ablations --table=2 --steps=2000 --output=outputs/ablations

Defaults are CPU-sized (synthetic data, 2000 steps of batch 4, 128 px crops, learning
rate 1e-3, all held-out images); `--dataset=dpdd
--preset=paper_phase1` runs the paper's budget. Variants are trained into
<output>/table<N>/<variant>/ and resume like any training run. results.json and the
printed table record the budget used; the paper's numbers stand beside ours, and no
ordering is claimed that was not measured.
"""

import os

from absl import flags

from kpac_tf.paper import ablations
from kpac_tf.utils.files import write_json

from .common_flags import (BATCH_SIZE as _BATCH_SIZE, CHANNELS as _CHANNELS,
                           CROP_SIZE as _CROP_SIZE, DATA_DIR as _DATA_DIR,
                           DATASET as _DATASET, DATASET_CONFIG as _DATASET_CONFIG,
                           EVAL_IMAGES as _EVAL_IMAGES, LEARNING_RATE as _LEARNING_RATE,
                           LOGGING, MANUAL_DIR as _MANUAL_DIR, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, PRESET as _PRESET, SEED as _SEED,
                           STEPS as _STEPS, run_app, value_or)

_TABLE = flags.DEFINE_enum("table", "2", ["1", "2", "3"], "Paper table to reproduce.")


def main(argv):
    del argv  # run_app refuses extra arguments
    table, output = int(_TABLE.value), _OUTPUT.value or "outputs/ablations"
    budget = dict(dataset=_DATASET.value or "synthetic", dataset_config=_DATASET_CONFIG.value,
                  data_dir=_DATA_DIR.value, manual_dir=_MANUAL_DIR.value,
                  steps=value_or(_STEPS, 2000), batch_size=value_or(_BATCH_SIZE, 4),
                  crop_size=value_or(_CROP_SIZE, 128),
                  learning_rate=value_or(_LEARNING_RATE, 1e-3), seed=_SEED.value,
                  eval_images=value_or(_EVAL_IMAGES, 0))
    if _PRESET.value:  # the preset decides the budget; flags only pick the data
        budget = {k: budget[k] for k in ("dataset", "dataset_config", "data_dir",
                                         "manual_dir", "seed")}
    try:
        results = ablations.run_table(table, output, preset=_PRESET.value,
                                      model=_MODEL.value, channels=_CHANNELS.value, **budget)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"ablations: {e}") from None
    write_json(os.path.join(output, f"table{table}.json"),
               dict(table=table, budget=budget, preset=_PRESET.value, results=results),
               indent=2)
    print(ablations.format_table(table, results, budget))


FLAG_GROUPS = {
    "Table and output": [_TABLE, _OUTPUT],
    "Network": [_MODEL, _CHANNELS],
    "Data": [_DATASET, _DATASET_CONFIG, _DATA_DIR, _MANUAL_DIR],
    "Budget (unset: the CPU budget above, or the preset's)": [
        _PRESET, _STEPS, _BATCH_SIZE, _CROP_SIZE, _LEARNING_RATE, _SEED, _EVAL_IMAGES],
    "Logging": LOGGING,
}

if __name__ == "__main__":
    run_app(main, FLAG_GROUPS)
