"""kpac-tf as `pip install .` gives it: a wheel installed into a folder of its own and
run from another working directory, with no clone beside it, and without the
`[tfds-cli]` extra's packages (Apache Beam, mlcroissant), which no app needs."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.test_case import REPO



@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder holding only the installed wheel, a working folder outside the
    repository): the wheel is built from this checkout and installed without
    dependencies (they are this environment's)."""
    root = tmp_path_factory.mktemp("installed")
    source, wheels, site, work = (root / name for name in ("source", "wheels", "site", "work"))
    work.mkdir()
    # A copy, so that no build/ folder of an earlier build can leak into the wheel.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "outputs", "tests"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                          str(source)], check=True, cwd=root, timeout=600)
    (wheel,) = wheels.glob("kpac_tf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kpac_tf/deploy/weights/synthetic.npz" in names
    assert "kpac_tf/datasets/dpdd/README.md" in names
    assert not any(name.startswith(("datasets/", "tests/")) for name in names)
    subprocess.run(pip + ["install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, cwd=root, timeout=600)
    # Importing these fails as if they were not installed.
    for name in TFDS_CLI_MODULES:
        (root / "absent" / name).mkdir(parents=True)
        (root / "absent" / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed (the [tfds-cli] extra)')")
    return site, work


TFDS_CLI_MODULES = ("apache_beam", "mlcroissant")


def run(installed, *args):
    site, work = installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(site.parent / "absent")]))
    out = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_the_installed_package_is_not_the_clone(installed):
    out = run(installed, "-c", "import kpac_tf, kpac_tf_experiments; "
              "print(kpac_tf.__file__); print(kpac_tf_experiments.__file__)")
    assert str(REPO) not in out and str(installed[0]) in out


def test_training_on_synthetic_data_from_another_folder(installed, tmp_path):
    out = run(installed, "-m", "kpac_tf_experiments.train", f"--model_dir={tmp_path}/run",
              f"--data_dir={tmp_path}/tfds", "--dataset_config=tiny", "--steps=3",
              "--crop_size=32", "--batch_size=2", "--channels=4", "--eval_every=3",
              "--eval_images=1", "--save_every=3", "--log_every=1")
    assert "step 3/3" in out
    assert (tmp_path / "run" / "model.keras").exists()


def test_dpdd_build_and_evaluation_from_another_folder(installed, tmp_path):
    archive = tmp_path / "archive"
    run(installed, "-m", "kpac_tf_experiments.dpdd_stand_in", f"--output={archive}",
        "--train=1", "--val=1", "--test=1", "--height=64", "--width=96")
    out = run(installed, "-m", "kpac_tf_experiments.evaluate", "--dataset=dpdd",
              f"--manual_dir={archive}", f"--data_dir={tmp_path}/tfds",
              f"--output_dir={tmp_path}/eval")
    assert "Blurry input (paper)" in out and (tmp_path / "eval" / "metrics.json").exists()


def test_console_scripts_answer_and_every_app_imports(installed):
    """Each console script runs (`--help`); every app module imports from the installed
    package in one process (their --help is tested from the clone, test_run_app.py)."""
    site, _ = installed
    for script in ("kpac-train", "kpac-evaluate", "kpac-deblur", "kpac-export"):
        assert "--helpfull" in run(installed, str(site / "bin" / script), "--help")
    apps = sorted(path.stem for path in (REPO / "experiments").glob("*.py")
                  if path.stem not in ("__init__", "common_flags"))
    out = run(installed, "-c", "import importlib\n"
              f"for app in {apps!r}:\n"
              "    module = importlib.import_module('kpac_tf_experiments.' + app)\n"
              "    assert callable(module.main), app\n"
              "    print(module.__file__)")
    assert out.count(str(site / "kpac_tf_experiments")) == len(apps) > 15
