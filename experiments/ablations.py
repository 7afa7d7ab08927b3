r"""The paper's ablations (Tables 1-3): train every variant with identical data, steps
and seed, then score it on held-out images.

python -m experiments.ablations --table=2 --steps=2000 --output=outputs/ablations

Defaults are CPU-sized (--preset=ablations_cpu: synthetic data, 2000 steps of batch 4,
128 px crops, learning rate 1e-3, all held-out images); `--dataset=dpdd
--preset=paper_phase1` runs the paper's budget. Flags given override the preset. Variants are trained into
<output>/table<N>/<variant>/ and resume like any training run. results.json and the
printed table record the budget used; the paper's numbers stand beside ours, and no
ordering is claimed that was not measured.
"""

import os

from absl import flags

from kpac_tf.paper import ablations
from kpac_tf.training import settings
from kpac_tf.utils.files import write_json

from .common_flags import (BATCH_SIZE as _BATCH_SIZE, CHANNELS as _CHANNELS,
                           CROP_SIZE as _CROP_SIZE, DATA_DIR as _DATA_DIR,
                           DATASET as _DATASET, DATASET_CONFIG as _DATASET_CONFIG,
                           EVAL_IMAGES as _EVAL_IMAGES, LEARNING_RATE as _LEARNING_RATE,
                           LOGGING, MANUAL_DIR as _MANUAL_DIR, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, PRESET as _PRESET, SEED as _SEED,
                           STEPS as _STEPS, given_settings, run_app, setting_defaults,
                           value_or)

_TABLE = flags.DEFINE_enum("table", "2", ["1", "2", "3"], "Paper table to reproduce.")
_DEFAULT_PRESET = "ablations_cpu"
# The settings every variant shares, recorded with the table.
_BUDGET = ("dataset", "dataset_config", "data_dir", "manual_dir", "steps", "batch_size",
           "crop_size", "learning_rate", "seed", "eval_images")

_DEFAULT_OUTPUT = "outputs/ablations"


def main(argv):
    del argv  # run_app refuses extra arguments
    table, output = int(_TABLE.value), value_or(_OUTPUT, _DEFAULT_OUTPUT)
    preset, given = _PRESET.value or _DEFAULT_PRESET, given_settings(_BUDGET)
    try:
        shared = settings.make_config(preset, model_dir=output, **given)
        results = ablations.run_table(table, output, preset=preset, model=_MODEL.value,
                                      channels=_CHANNELS.value, **given)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"ablations: {e}") from None
    budget = {name: getattr(shared, name) for name in _BUDGET}
    write_json(os.path.join(output, f"table{table}.json"),
               dict(table=table, budget=budget, preset=preset, results=results), indent=2)
    print(ablations.format_table(table, results, budget))


FLAG_GROUPS = {
    "Table and output": [_TABLE, _OUTPUT],
    "Network": [_MODEL, _CHANNELS],
    "Data": [_DATASET, _DATASET_CONFIG, _DATA_DIR, _MANUAL_DIR],
    f"Budget (unset: the preset's, {_DEFAULT_PRESET} unless --preset names another)": [
        _PRESET, _STEPS, _BATCH_SIZE, _CROP_SIZE, _LEARNING_RATE, _SEED, _EVAL_IMAGES],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {**setting_defaults(_DEFAULT_PRESET), _OUTPUT.name: _DEFAULT_OUTPUT}

if __name__ == "__main__":
    run_app(main)
