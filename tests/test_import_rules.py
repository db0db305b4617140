"""The one-way data flow is enforced on imports (docs/DESIGN.md).

backgrounds -> none of the others; synth -> only backgrounds, never torch;
real_eval -> never synth (nor train); train -> may import synth and real_eval.
Every package may import the leaf module ``keysynth.common`` (atomic writes, image extensions),
which itself imports no project module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"backgrounds", "synth", "train", "real_eval", "keysynth"}
ALLOWED = {
    "backgrounds": set(),
    "synth": {"backgrounds"},
    "real_eval": set(),
    "train": {"synth", "real_eval", "backgrounds"},
}


LEAF = "keysynth.common"


def imported_top_level(path: Path) -> set[str]:
    """Top-level package names imported by ``path`` (the leaf module counts as ``LEAF``, not ``keysynth``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(LEAF if alias.name == LEAF else alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(LEAF if node.module == LEAF else node.module.split(".")[0])
    return names


def test_the_leaf_module_imports_no_project_module():
    assert not imported_top_level(ROOT / "keysynth" / "common.py") & (PROJECT | {LEAF})


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_data_flow(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    for path in files:
        project_imports = (imported_top_level(path) & PROJECT) - {package}
        bad = project_imports - ALLOWED[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}; {package} may import only {sorted(ALLOWED[package])}"


@pytest.mark.parametrize("package", ["synth", "backgrounds"])
def test_generator_side_never_imports_torch(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        assert "torch" not in imported_top_level(path), f"{path.relative_to(ROOT)} imports torch"


def test_importing_synth_at_runtime_does_not_load_torch():
    code = (
        "import sys, pkgutil, importlib, synth, backgrounds\n"
        "for pkg in (synth, backgrounds):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
