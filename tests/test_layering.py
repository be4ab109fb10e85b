"""The rooms and which may import which (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "viewer/model": ("PySide6", "vtk", "vtkmodules", "pyvista", "pyvistaqt", "torch", "viewer.ui",
                     "viewer.render", "viewer.jobs", "viewer.io"),
    "viewer/io": ("PySide6", "pyvistaqt", "viewer.ui", "viewer.jobs", "viewer.render", "viewer.samples.registry",
                  "viewer.samples.datasets", "torch"),
    "viewer/edit": ("PySide6", "vtk", "vtkmodules", "pyvista", "pyvistaqt", "torch", "viewer.ui",
                    "viewer.render", "viewer.jobs", "viewer.io"),
    "viewer/render": ("PySide6", "pyvistaqt", "viewer.ui", "viewer.jobs", "torch"),
    "viewer/jobs": ("vtk", "pyvista", "viewer.ui", "viewer.render"),
    "viewer/jobs/progress.py": ("PySide6", "vtk", "pyvista", "torch"),
    "plugins": ("PySide6", "pyvistaqt", "viewer.ui"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


@pytest.mark.parametrize("room", list(FORBIDDEN))
def test_room_imports(room):
    bad = []
    paths = [ROOT / room] if room.endswith(".py") else (ROOT / room).rglob("*.py")
    for path in paths:
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[room]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_model_imports_no_qt_vtk_torch_at_runtime():
    code = ("import sys, viewer.model; bad = [m for m in ('PySide6', 'vtk', 'vtkmodules', 'torch') "
            "if m in sys.modules]; print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_only_ui_builds_widgets():
    for path in (ROOT / "viewer").rglob("*.py"):
        if "ui" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text()
        assert "QWidget" not in text and "QtWidgets" not in text, path
