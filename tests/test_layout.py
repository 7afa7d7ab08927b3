"""The tree tells the architecture: imports point one way, down this list, apps never
import each other, and the tests mirror the tree. Each kpac_tf subpackage may import
only from itself and those before it."""

import ast

import pytest

from tests.test_case import REPO

LAYERS = ("utils", "data", "models", "checkpoints", "rendering", "datasets", "evaluation",
          "training", "deploy", "paper")


def _imports(path):
    """Absolute module names a Python file imports (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def _library_files():
    return sorted(p for p in (REPO / "kpac_tf").rglob("*.py")
                  if p.parent != REPO / "kpac_tf" and not p.name.endswith("_test.py"))


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_subpackage_imports_only_those_below_it(path):
    own = LAYERS.index(path.relative_to(REPO / "kpac_tf").parts[0])
    for name in _imports(path):
        parts = name.split(".")
        assert parts[0] != "experiments", f"{path}: the library imports an app ({name})"
        if parts[0] == "kpac_tf" and len(parts) > 1 and parts[1] in LAYERS:
            assert LAYERS.index(parts[1]) <= own, (
                f"{path} ({LAYERS[own]}) imports {name} ({parts[1]}), which sits above it")


def test_the_dpdd_builder_imports_nothing_from_its_stand_in():
    names = _imports(REPO / "kpac_tf" / "datasets" / "dpdd" / "dpdd_dataset_builder.py")
    assert not [n for n in names if "stand_in" in n]


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.py")),
                         ids=lambda p: p.name)
def test_apps_never_import_each_other(path):
    apps = {p.stem for p in (REPO / "experiments").glob("*.py")} - {"__init__", "common_flags"}
    imported = {n.split(".")[1] for n in _imports(path)
                if n.startswith("experiments.") and len(n.split(".")) > 1}
    assert not imported & apps, f"{path.name} imports the apps {sorted(imported & apps)}"


def test_every_subpackage_says_what_belongs_there():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((REPO / "kpac_tf" / layer / "__init__.py")
                                          .read_text()))
        assert doc and len(doc.split()) >= 15, f"kpac_tf/{layer}/__init__.py: no docstring"


def test_tests_mirror_the_code():
    """tests/kpac_tf/<subpackage>/test_<module>.py tests kpac_tf/<subpackage>/<module>.py
    and tests/experiments/test_<app>.py an app (test_run_app.py: what every app shares,
    experiments/__init__.py and common_flags.py)."""
    orphans = []
    for tree in ("kpac_tf", "experiments"):
        for path in sorted((REPO / "tests" / tree).rglob("test_*.py")):
            if path.relative_to(REPO).as_posix() == "tests/experiments/test_run_app.py":
                continue
            tested = path.parent.relative_to(REPO / "tests") / f"{path.stem[len('test_'):]}.py"
            if not (REPO / tested).exists():
                orphans.append(f"{path.relative_to(REPO)} (no {tested})")
    assert not orphans, orphans


def test_the_slowest_files_conftest_runs_first_exist():
    from tests.conftest import SLOWEST_FILES

    assert len(set(SLOWEST_FILES)) == len(SLOWEST_FILES)
    assert [path for path in SLOWEST_FILES if not (REPO / path).is_file()] == []
