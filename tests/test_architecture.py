"""The layout's rules: import-linter's contracts, one set-up of the viewer's process, no private
names across modules, every name taken from our modules existing (benchmarks included), and
documentation whose links and imports work."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_faster_rcnn"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the package under ``root/src``, with the contracts of ``root/pyproject.toml``."""
    environment = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, env=environment, timeout=300)


def python_files(folder: Path):
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def test_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core/data/boxes.py", "import napari", "core imports neither napari"),
        ("layers/box_layers.py", "import qtpy", "The napari tier imports no Qt"),
        ("_cli/stats.py", "import napari_faster_rcnn.layers.conventions", "The command line imports only core"),
        ("core/data/images.py", "import napari_faster_rcnn.core.training.run", "core's subpackages are layers"),
        ("core/model/anchors.py", "import napari_faster_rcnn.core.model.anchor_suggestion", "No import cycles"),
    ],
)
def test_a_broken_rule_fails_and_names_the_import(tmp_path, module, line, broken):
    copy = tmp_path / "copy"
    shutil.copytree(PACKAGE, copy / "src" / "napari_faster_rcnn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "src" / "napari_faster_rcnn" / module
    source = target.read_text()
    # after the module's docstring and future import, inside the function bodies too (grimp sees those)
    target.write_text(source.replace("from __future__ import annotations\n",
                                     f"from __future__ import annotations\n\n{line}  # noqa\n", 1))
    result = lint_imports(copy)
    assert result.returncode != 0
    report = result.stdout
    assert re.search(re.escape(broken) + r".*BROKEN", report, re.S), report[-3000:]
    dotted = "napari_faster_rcnn." + module.removesuffix(".py").replace("/", ".")
    package, name = dotted.rsplit(".", 1)
    assert dotted in report or (package in report and f".{name} ->" in report)  # the importer is named


def test_the_viewer_process_is_set_up_in_one_place():
    importers = [path.relative_to(PACKAGE).as_posix() for path in python_files(PACKAGE)
                 if "viewer_process" in path.read_text() and path.name != "viewer_process.py"]
    assert importers == ["layers/__init__.py"]
    # napari enters through a dock widget: the settings apply before torch loads
    code = ("import os, sys; import napari_faster_rcnn._widgets.predict;"
            "from napari_faster_rcnn.layers.viewer_process import TritonGuard;"
            "print(os.environ.get('OMP_WAIT_POLICY'), any(isinstance(f, TritonGuard) for f in sys.meta_path))")
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            timeout=300, check=True)
    assert result.stdout.split() == ["PASSIVE", "True" if sys.platform.startswith("linux") else "False"]


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for path in python_files(PACKAGE) + python_files(ROOT / "tests") + python_files(ROOT / "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("napari_faster_rcnn"):
                for alias in node.names:
                    module_path = PACKAGE.parent.joinpath(*node.module.split("."), alias.name)
                    is_module = module_path.with_suffix(".py").is_file() or module_path.is_dir()
                    if alias.name.startswith("_") and not is_module and alias.name != "__version__":
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}")
    assert offenders == []


def test_modules_of_ours_are_imported_under_their_own_names():
    offenders = []
    for path in python_files(PACKAGE) + python_files(ROOT / "tests") + python_files(ROOT / "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                    if full.startswith("napari_faster_rcnn") and alias.asname and len(alias.asname) <= 2:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {full} as {alias.asname}")
    assert offenders == []


# --- documentation ---------------------------------------------------------------------------------------

DOCUMENTS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]*\ssrc=\"([^\"]+)\"")


def test_every_relative_link_and_image_resolves():
    missing = []
    for document in DOCUMENTS:
        for match in LINK.finditer(document.read_text()):
            target = (match.group(1) or match.group(2)).split("#")[0]
            if not target or re.match(r"[a-z]+:", target):
                continue  # an anchor in the same page, or a URL
            if not (document.parent / target).exists():
                missing.append(f"{document.relative_to(ROOT)}: {target}")
    assert missing == []
    assert len(DOCUMENTS) > 5  # the pages exist


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    assert len((ROOT / "docs" / "architecture.md").read_text().splitlines()) < 150


def test_every_name_the_docs_import_exists():
    imports = set()
    block = re.compile(r"```python\n(.*?)```", re.S)
    for document in DOCUMENTS:
        for code in block.findall(document.read_text()):
            for line in code.splitlines():
                found = re.match(r"\s*from (napari_faster_rcnn[\w.]*) import ([\w, ]+)", line)
                if found:
                    imports.update((found.group(1), name.strip()) for name in found.group(2).split(",") if name.strip())
    assert imports, "the docs show no import"
    for module, name in sorted(imports):
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def _names_used_from_our_modules(path: Path):
    """``(line, module, name)`` for every name ``path`` takes from a module of ours: ``from M import
    name`` (at any depth: benchmarks import inside functions, which no test reaches otherwise) and
    ``alias.name`` where ``alias`` is a module of ours imported under that name."""
    tree = ast.parse(path.read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("napari_faster_rcnn"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if importlib.util.find_spec(node.module) and _is_module(full):
                    aliases[alias.asname or alias.name] = full
                else:
                    yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("napari_faster_rcnn") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            yield node.lineno, aliases[node.value.id], node.attr


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_every_name_taken_from_our_modules_exists():
    """A benchmark's ``layers.anchors.rectangles_to_boxes`` or a late import of a moved function fails
    only when that line runs, which no test may do: every such name must exist now."""
    missing = []
    for path in python_files(PACKAGE) + python_files(ROOT / "tests") + python_files(ROOT / "benchmarks"):
        for line, module, name in _names_used_from_our_modules(path):
            if not hasattr(importlib.import_module(module), name) and not _is_module(f"{module}.{name}"):
                missing.append(f"{path.relative_to(ROOT)}:{line} {module}.{name}")
    assert missing == []
