"""Every app (experiments/): --help lists every flag it reads, with defaults; one flag
name per concept (common_flags); apps start quietly and refuse unexpected arguments."""

import importlib
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from experiments import common_flags
from kpac_tf import build_model
from kpac_tf.data.images import write_png
from tests.test_case import APPS, REPO


@pytest.mark.parametrize("name", APPS)
def test_help_lists_every_flag_the_app_reads(name):
    module = importlib.import_module(f"experiments.{name}")
    holders = [value for value in vars(module).values() if isinstance(value, flags.FlagHolder)]
    for value in vars(module).values():  # e.g. train's SETTING_FLAGS
        if isinstance(value, dict) and value and all(
                isinstance(v, flags.FlagHolder) for v in value.values()):
            holders += value.values()
    read = {holder.name for holder in holders}
    listed = [getattr(entry, "name", entry)
              for entries in module.FLAG_GROUPS.values() for entry in entries]
    assert read, f"{name} reads no flags?"
    assert sorted(set(listed) - {"verbosity"}) == sorted(read)
    assert len(listed) == len(set(listed)), "a flag listed twice"
    text = common_flags.help_text(module.__doc__, module.FLAG_GROUPS)
    assert text.startswith(module.__doc__.strip())
    for flag_name in listed:
        flag = flags.FLAGS[flag_name]
        shown = f"--[no]{flag_name}:" if flag.boolean else f"--{flag_name}:"
        assert shown in text
        if flag.default is not None and flag_name != "verbosity":
            after = text.split(shown, 1)[1]
            assert f"(default: {flag.default_as_str})" in after.split("--", 1)[0]


def test_one_name_per_concept():
    """The training recipe is --preset in every app; --config* names are gone."""
    for name in APPS:
        importlib.import_module(f"experiments.{name}")
    assert "preset" in flags.FLAGS
    for old in ("config", "config_preset"):
        assert old not in flags.FLAGS


def _run(*argv, cwd=REPO):
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_help_from_the_command_line():
    result = _run("experiments.deblur", "--help")
    assert result.returncode == 0, result.stderr
    for part in ("Model:", "--checkpoint:", "--model:", "--output:", "--tile_size:",
                 "(default: 'float32')", "--verbosity:"):
        assert part in result.stdout
    assert result.stderr == ""


def test_an_app_run_shows_only_its_own_lines(tmp_path, rng):
    """No TensorFlow C++ start-up lines or library warnings unless --verbosity asks."""
    model = tmp_path / "model.keras"
    build_model("single_2level", channels=4).save(model)
    write_png(tmp_path / "photo.png", rng.randint(0, 256, (20, 28, 3)).astype(np.uint8))
    argv = ["experiments.deblur", f"--checkpoint={model}",
            f"--input={tmp_path / 'photo.png'}", f"--output={tmp_path / 'out.png'}"]
    result = _run(*argv)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").is_file()
    assert "Deblurred 1 of 1 photos" in result.stderr
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and "Deblurred 1 of 1" not in line and "image" not in line]
    assert lines == [], lines
    loud = _run(*argv, "--verbosity=1")
    assert loud.returncode == 0 and len(loud.stderr.splitlines()) > len(
        result.stderr.splitlines()), loud.stderr


def test_library_deprecation_notices_are_hidden_and_our_warnings_kept():
    """TFDS logs `FeatureConnector.dtype is deprecated` as an absl WARNING from its
    own files; the apps hide it (and libraries' INFO lines) but keep every line of
    ours and the libraries' other warnings."""
    import logging

    import experiments

    def record(path, level, message):
        return logging.LogRecord("absl", level, path, 1, message, None, None)

    library = "/site-packages/tensorflow_datasets/core/features/feature.py"
    ours = "/work/kpac_tf/training/loop.py"
    keep = experiments._OwnInfoOnly().filter
    assert not keep(record(library, logging.WARNING,
                           "`FeatureConnector.dtype` is deprecated. Please change"))
    assert not keep(record(library, logging.INFO, "Reading shards"))
    assert keep(record(library, logging.WARNING, "Could not find manual_dir"))
    assert keep(record(ours, logging.WARNING, "this option is deprecated"))
    assert keep(record(ours, logging.INFO, "step 3/3"))


def test_unexpected_arguments_are_refused(tmp_path):
    out = subprocess.run([sys.executable, "-m", "experiments.held_out", "stray"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Unexpected arguments: ['stray']" in out.stderr


def test_a_training_flag_another_app_does_not_read_is_refused():
    """Every app sees every training setting's flag (absl flags are process-wide):
    evaluate must not take --model_dir (and score the bundled model instead)."""
    out = subprocess.run([sys.executable, "-m", "experiments.evaluate", "--model_dir=runs/p1"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "--model_dir is not a flag of this app (--help lists its flags)" in out.stderr


def test_model_errors_end_with_the_flag_to_change(tmp_path, rng):
    """The library names the file; the apps add which of their flags to change."""
    photo = tmp_path / "photo.png"
    write_png(photo, rng.randint(0, 256, (16, 16, 3)).astype(np.uint8))
    weights = REPO / "tests" / "data" / "tf1_2level_weights.npz"
    for args, ending in [([f"--checkpoint={weights}"], "to load this checkpoint (--model)"),
                         ([f"--checkpoint={tmp_path / 'none.keras'}"], "SavedModel (--checkpoint)")]:
        out = subprocess.run([sys.executable, "-m", "experiments.deblur", *args,
                              f"--input={photo}", f"--output={tmp_path / 'out.png'}"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        assert out.returncode != 0 and out.stderr.strip().endswith(ending), out.stderr
        assert "Traceback" not in out.stderr and not (tmp_path / "out.png").exists()
