"""datasets/ (the thin entry points beside kpac_tf): `tfds build datasets/<name>` from
a clone, and no shadowing of the Hugging Face `datasets` package."""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.test_case import DPDD_DUMMY, REPO


def test_does_not_shadow_huggingface_datasets(tmp_path):
    """With a regular `datasets` package installed, `import datasets` from the repo
    root still finds it (our datasets/ folder is not a package), and our builders
    still load."""
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("IS_HUGGINGFACE = True\n")
    script = ("import datasets; assert datasets.IS_HUGGINGFACE, datasets.__file__\n"
              "from kpac_tf.data import pipelines\n"
              "print(pipelines.get_builder('dpdd', config='single').name)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("dpdd")
    assert not (REPO / "datasets" / "__init__.py").exists()


@pytest.mark.parametrize("args", [
    ["datasets/synthetic_defocus", "--config=tiny"],
    ["datasets/dpdd", "--config=dual", f"--manual_dir={DPDD_DUMMY}"],
])
def test_tfds_command_line_builds(tmp_path, args):
    """The standard `tfds build` command works with the project's install."""
    tfds_cli = pathlib.Path(sys.executable).with_name("tfds")
    command = [str(tfds_cli)] if tfds_cli.exists() else [
        sys.executable, "-m", "tensorflow_datasets.scripts.cli.main"]
    out = subprocess.run(command + ["build", *args, f"--data_dir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(tmp_path.glob("*/*/*/dataset_info.json"))
