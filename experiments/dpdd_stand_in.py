r"""Writes a STAND-IN for the DPDD archive: synthetic scenes, NOT DPDD.

python -m experiments.dpdd_stand_in --output=outputs/dpdd_stand_in \
    --train=8 --val=2 --test=4
python -m experiments.prepare_data --dataset=dpdd --dataset_config=single \
    --manual_dir=outputs/dpdd_stand_in --data_dir=outputs/dpdd_stand_in/tfds

A test bed for the full-size path (build, train on 512 crops, evaluate at 1680x1120)
without the 35 GB download, not a source of DPDD numbers. It writes the exact
layout, file naming (a target numbered apart from its source, _L/_R views), size and
16-bit PNGs of `dd_dp_dataset_canon.zip` into --output/dd_dp_dataset_canon/, with
content from our own defocus renderer: a `kpac_tf.rendering.synthetic` scene is the target, the
left and right dual-pixel views each see one half of the aperture (defocused content
shifts in opposite directions), and the centre image is their mean
(`kpac_tf.datasets.dpdd.stand_in`).
--output defaults to outputs/dpdd_stand_in; --seed picks the scenes and their capture
numbers. Build it into a --data_dir of its own: the builder registers it as `dpdd`
(it logs a warning and sets the dataset's metadata `stand_in`).
"""

from absl import flags, logging

from kpac_tf.datasets.dpdd import stand_in as dpdd_stand_in

from .common_flags import LOGGING, OUTPUT as _OUTPUT, SEED as _SEED, run_app, value_or

_TRAIN = flags.DEFINE_integer("train", 8, "Stand-in scenes in train_* (DPDD: 350).")
_VAL = flags.DEFINE_integer("val", 2, "Stand-in scenes in val_* (DPDD: 74).")
_TEST = flags.DEFINE_integer("test", 4, "Stand-in scenes in test_* (DPDD: 76).")
_HEIGHT = flags.DEFINE_integer("height", dpdd_stand_in.HEIGHT,
                               "Image height (DPDD: 1120); at least 32.")
_WIDTH = flags.DEFINE_integer("width", dpdd_stand_in.WIDTH,
                              "Image width (DPDD: 1680); at least 32.")
_DEFAULT_OUTPUT = "outputs/dpdd_stand_in"


def main(argv):
    del argv  # run_app refuses extra arguments
    output = value_or(_OUTPUT, _DEFAULT_OUTPUT)
    counts = {"train": _TRAIN.value, "val": _VAL.value, "test": _TEST.value}

    def progress(done, total, split, source):
        logging.info("scene %d of %d: %s %s", done, total, split, source)

    try:
        root = dpdd_stand_in.write_archive(output, counts, value_or(_SEED, 0), _HEIGHT.value,
                                           _WIDTH.value, progress)
    except ValueError as e:
        raise SystemExit(f"dpdd_stand_in: {e}") from None
    print(f"Wrote a DPDD stand-in (synthetic scenes, NOT DPDD; scores on it are no DPDD "
          f"numbers): {counts}, {_HEIGHT.value}x{_WIDTH.value}, seed {value_or(_SEED, 0)}, "
          f"in {root}")
    print(f"Build it into a data folder of its own: python -m experiments.prepare_data "
          f"--dataset=dpdd --dataset_config=single --manual_dir={output} "
          f"--data_dir={output}/tfds")


FLAG_GROUPS = {
    "Scenes": [_TRAIN, _VAL, _TEST, _SEED],
    "Images": [_HEIGHT, _WIDTH],
    "Output": [_OUTPUT],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_SEED.name: "0", _OUTPUT.name: _DEFAULT_OUTPUT}

if __name__ == "__main__":
    run_app(main)
