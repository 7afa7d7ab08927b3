"""README.md and the pages it links stay true: their commands name real apps and
flags, the cheap ones run as written, and every path or module they or any app's
`--help` name exists."""

import importlib
import os
import re
import shlex
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from absl import flags

from experiments import common_flags
from tests.test_case import APPS, REPO

README = REPO / "README.md"
PAGES = [README, REPO / "WORKSPACE.md", REPO / "CHANGELOG.md", REPO / "NOTICE",
         REPO / "tests" / "data" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# absl's own flags, which every app takes.
ABSL_FLAGS = {"help", "helpfull", "helpshort", "verbosity"}


def code_blocks(path, language):
    """The bodies of `path`'s fenced code blocks in `language`."""
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.S)


def shell_commands(path):
    """Each command of `path`'s bash blocks: continuation lines joined, split at
    `&&`, `;` and `|`; comments dropped."""
    commands = []
    for block in code_blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in re.split(r"&&|;|\|", line)]
    return commands


def app_commands():
    """(page, app name, [flag names]) of every `python -m experiments.<app>` command."""
    found = []
    for page in PAGES:
        if page.suffix != ".md":
            continue
        for command in shell_commands(page):
            match = re.match(r"python -m experiments\.(\w+)(.*)", command)
            if match:
                names = [word[2:].split("=", 1)[0] for word in shlex.split(match.group(2))
                         if word.startswith("--")]
                found.append((page.name, match.group(1), names))
    return found


def listed_flags(app_name):
    """The flag names the app's `--help` lists."""
    module = importlib.import_module(f"experiments.{app_name}")
    return {getattr(entry, "name", entry)
            for entries in module.FLAG_GROUPS.values() for entry in entries}


def test_commands_in_the_pages_name_real_apps_and_their_flags():
    commands = app_commands()
    assert {"train", "deblur", "evaluate", "export"} <= {app for _, app, _ in commands}
    for page, app_name, names in commands:
        assert app_name in APPS, f"{page}: no app experiments.{app_name}"
        listed = listed_flags(app_name) | ABSL_FLAGS
        for name in names:
            flag = name[2:] if name.startswith("no") and name[2:] in listed else name
            assert flag in listed, f"{page}: experiments.{app_name} has no --{name}"


def test_readme_deblur_command_and_python_example_run_as_written(tmp_path, monkeypatch,
                                                                  rng):
    """The first shell command and the Python block of "Deblur a photo", run as they
    stand on a small photo.jpg (the bundled model)."""
    section = README.read_text().split("## Deblur a photo", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    photo = rng.randint(0, 256, (60, 90, 3)).astype(np.uint8)
    iio.imwrite(tmp_path / "photo.jpg", photo)
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable if word == "python" else word
                          for word in shlex.split(command)], cwd=tmp_path,
                         env=environment, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert iio.imread(tmp_path / "deblurred" / "photo.png").shape == (60, 90, 3)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    sharp = iio.imread("sharp.png")
    assert sharp.shape == (60, 90, 3) and sharp.dtype == np.uint8


def help_texts():
    """{app: its --help text}, as `run_app` prints it."""
    texts = {}
    for name in APPS:
        module = importlib.import_module(f"experiments.{name}")
        texts[f"{name} --help"] = common_flags.app_help(module)
    return texts


# A path inside the repository: one of its top folders, then more of the path.
PATH = re.compile(r"(?<![\w./~<-])((?:kpac_tf|experiments|benchmarks|docs|tests|datasets)"
                  r"/[\w./-]*)")
# A markdown link or image to a file of the repository.
LINK = re.compile(r"\]\((?!https?://)([^)#\s]+)\)")
MODULE = re.compile(r"(?<![\w.])kpac_tf(?:\.\w+)+")


def _resolves(dotted):
    """True when `dotted` (kpac_tf.a.b...) is a module or an attribute path of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                target = getattr(target, part)
        except AttributeError:
            return False
        return True
    return False


def test_every_path_and_module_named_exists():
    texts = {page.relative_to(REPO).as_posix(): page.read_text() for page in PAGES}
    texts.update(help_texts())
    missing = []
    for source, text in texts.items():
        folder = REPO / os.path.dirname(source) if "--help" not in source else REPO
        for match in PATH.finditer(text):
            path = match.group(1).rstrip(".")
            placeholder = text[match.end():match.end() + 1] in ("<", "*", "{")
            if not placeholder and not (REPO / path).exists():
                missing.append(f"{source}: {path}")
        for link in LINK.findall(text) if source.endswith(".md") else ():
            if not (folder / link).exists():
                missing.append(f"{source}: link {link}")
        for dotted in MODULE.findall(text):
            if not _resolves(dotted.rstrip(".")):
                missing.append(f"{source}: {dotted}")
        for app_name in re.findall(r"(?<![\w/])experiments\.(\w+)", text):
            if app_name not in APPS and app_name != "common_flags":
                missing.append(f"{source}: experiments.{app_name}")
    assert not missing, "named but not there:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", APPS)
def test_help_shows_what_an_unset_output_stands_for(name):
    """No output flag reads "(default: unset)" while the app writes somewhere anyway,
    and such defaults stay inside outputs/ (ignored by git), never the repository's
    tracked files."""
    text = help_texts()[f"{name} --help"]
    module = importlib.import_module(f"experiments.{name}")
    defaults = getattr(module, "FLAG_DEFAULTS", {})
    for flag_name in ("output", "output_dir", "export_dir", "model_dir"):
        if flag_name not in listed_flags(name):
            continue
        after = text.split(f"--{flag_name}:", 1)[1].split("\n  --", 1)[0]
        assert "(default: unset)" not in after, f"{name} --{flag_name}"
        default = defaults.get(flag_name, flags.FLAGS[flag_name].default)
        if isinstance(default, str) and "/" in default:
            assert default.startswith("outputs/"), f"{name} --{flag_name}: {default}"
