"""The rooms and which may import which (docs/ARCHITECTURE.md), read from every import statement in
the code, function-level ones included: the table below is the rule, the test is its only keeper."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QT = ("PySide6", "pyvistaqt", "superqt", "magicgui", "pyqtgraph", "qtpy")
VTK = ("vtk", "vtkmodules", "pyvista")
TORCH = ("torch", "monai", "safetensors")

# room -> (the other viewer rooms it may import, the libraries it must not import)
ROOMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "model": ((), QT + VTK + TORCH),
    "geometry": (("model",), QT + VTK + TORCH),
    "edit": (("model",), QT + VTK + TORCH),
    "io": (("model", "geometry"), QT + TORCH),
    "analysis": (("model",), QT + VTK),
    "jobs": (("model",), VTK + TORCH + ("pyvistaqt", "superqt", "magicgui", "pyqtgraph")),
    "compute": (("model", "geometry", "io"), QT + TORCH),
    "render": (("model", "geometry", "io", "compute", "analysis", "resources"), QT + TORCH),
    "plugins": (("model", "io", "jobs"), QT + VTK),
    "samples": (("model", "geometry", "io", "compute", "plugins"), QT + TORCH),
    "cli": (("model", "geometry", "io", "edit", "analysis", "jobs", "compute", "render", "plugins", "samples",
             "resources", "ui"), QT),
    "ui": (("model", "geometry", "io", "edit", "analysis", "jobs", "compute", "render", "plugins", "samples",
            "resources"), ()),
}
TOP_LEVEL = {"__init__.py": (), "resources.py": ()}  # the only files at the top of viewer/
# finer rules inside a room
FILE_RULES: dict[str, tuple[str, ...]] = {
    # plugins see Progress, never the Qt runner
    "viewer/jobs/progress.py": QT,
    "viewer/plugins": ("viewer.jobs.runner",),
    # the Qt import in cli is the window's own command only
    "viewer/cli/common.py": ("viewer.ui",), "viewer/cli/train.py": ("viewer.ui",),
    "viewer/cli/fit.py": ("viewer.ui",), "viewer/cli/capture.py": ("viewer.ui",),
    "viewer/cli/stats.py": ("viewer.ui",), "viewer/cli/entry.py": ("viewer.ui",),
}
# what method plugins (the top-level plugins/ packages) may use of the application
PLUGIN_MAY = ("viewer.model", "viewer.geometry", "viewer.io", "viewer.compute", "viewer.analysis",
              "viewer.plugins", "viewer.jobs.progress")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        pkg = ".".join(path.relative_to(ROOT).parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import a, b: each a module of the package
                    names.update(f"{mod}.{a.name}" for a in node.names)
                else:
                    names.add(mod)
            else:
                names.add(node.module or "")
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _room_files(room: str) -> list[Path]:
    return sorted((ROOT / "viewer" / room).rglob("*.py"))


def test_every_viewer_file_is_in_a_room():
    loose = sorted(p.name for p in (ROOT / "viewer").glob("*.py") if p.name not in TOP_LEVEL)
    assert not loose, f"files at the top of viewer/ belong to no room: {loose}"
    dirs = sorted(p.name for p in (ROOT / "viewer").iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")) and any(p.glob("*.py")))
    assert set(dirs) == set(ROOMS), f"rooms on disk {dirs} vs the table {sorted(ROOMS)}"


@pytest.mark.parametrize("room", list(ROOMS))
def test_room_imports(room):
    allowed, banned = ROOMS[room]
    ok_rooms = tuple(f"viewer.{r}" for r in (room, *allowed))
    bad = []
    for path in _room_files(room):
        rel = path.relative_to(ROOT).as_posix()
        extra = tuple(b for k, b in FILE_RULES.items() if rel == k or rel.startswith(k + "/"))
        for name in _imports(path):
            if name == "viewer" or (name.startswith("viewer.") and not _under(name, ok_rooms)):
                bad.append(f"{rel} imports {name}")
            elif _under(name, banned) or any(_under(name, b) for b in extra):
                bad.append(f"{rel} imports {name}")
            elif name == "plugins" or name.startswith("plugins."):
                bad.append(f"{rel} imports the method package {name}: use viewer.plugins")
    assert not bad, "\n".join(sorted(bad))


@pytest.mark.parametrize("name", sorted(TOP_LEVEL))
def test_top_level_files_import_no_room(name):
    bad = [n for n in _imports(ROOT / "viewer" / name) if n.startswith("viewer.")]
    assert not bad, bad


def test_method_plugins_use_only_the_public_rooms():
    bad = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in _imports(path):
            if name.startswith("viewer") and not _under(name, PLUGIN_MAY):
                bad.append(f"{rel} imports {name}")
            elif _under(name, QT):
                bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(sorted(bad))


def test_plugin_contract_names_no_method():
    """viewer/plugins finds methods by entry point only: no plugin package, no method by name."""
    for path in (ROOT / "viewer" / "plugins").rglob("*.py"):
        text = path.read_text()
        for word in ("unet3d", "plugins.dnr", "plugins.texture", "_seg.", "_nr.", "import plugins", "from plugins"):
            assert word not in text, f"{path.relative_to(ROOT)} names {word!r}"


def _run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("module,banned", [
    ("viewer.model", ("PySide6", "vtk", "vtkmodules", "torch")),
    ("viewer.geometry.primitives", ("PySide6", "vtk", "torch")),
    ("viewer.edit.session", ("PySide6", "vtk", "torch")),
    ("viewer.io", ("PySide6", "torch")),
    ("viewer.cli.entry", ("PySide6", "vtk", "torch")),
], ids=lambda v: v if isinstance(v, str) else "")
def test_importing_a_room_pulls_in_no_heavy_library(module, banned):
    out = _run(f"import sys, {module}; print(','.join(m for m in {banned!r} if m in sys.modules))")
    assert out == "", f"importing {module} imported {out}"


def test_listing_plugins_imports_no_torch():
    out = _run("import sys; from viewer.plugins import plugin_infos; infos = plugin_infos(); "
               "print(sorted(i.name for i in infos if i.available), 'torch' in sys.modules)")
    names, torch_loaded = out.rsplit(" ", 1)
    assert {"unet3d", "texture", "dnr"} <= set(eval(names)), out  # found by entry point
    assert torch_loaded == "False", "discovery imported torch"


def test_only_ui_builds_widgets():
    for path in (ROOT / "viewer").rglob("*.py"):
        if "ui" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text()
        assert "QWidget" not in text and "QtWidgets" not in text, path
