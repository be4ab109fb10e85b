"""`pip install .` gives a working `lucid3d` command: the wheel carries the code, `resources/`
(as the package ``viewer._resources``) and the console script, and runs outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy of the tracked files: setuptools writes build/ and *.egg-info into the
    # source folder, and a stale egg-info in the checkout would shadow the installed metadata
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    # no build isolation: nothing is downloaded, the venv's setuptools builds it
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(src), "-w", str(out)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("lucid3d-*.whl")
    return whl


def test_wheel_carries_code_resources_and_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("viewer/cli/__init__.py", "viewer/plugins/registry.py", "viewer/io/nifti.py", "plugins/unet3d/__init__.py",
                     "viewer/_resources/presets/window_level.json",
                     "viewer/_resources/presets/volume_rendering.json",
                     "viewer/_resources/icons/lucid3d.svg"):
        assert required in names, required
    assert not any(n.startswith(("tests/", "bench/", "resources/")) for n in names)
    ep = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(ep).decode()
    assert "lucid3d = viewer.cli:main" in text
    for name in ("unet3d", "texture", "dnr"):  # built-in plugins are found by entry point
        assert f"{name} = plugins.{name}:PLUGIN" in text


def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    vol = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), vol)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONPATH"] = str(target)  # ahead of the editable install of the checkout
    probe = ("import json, viewer, viewer.resources as r; "
             "print(json.dumps([viewer.__file__, str(r.resources_root()), len(r.window_level_presets()), "
             "r.icon_path().is_file()]))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    viewer_file, root, n_presets, has_icon = json.loads(out.stdout)
    assert viewer_file.startswith(str(target)) and root.startswith(str(target))
    assert n_presets >= 5 and has_icon
    script = target / "bin" / "lucid3d"
    res = subprocess.run([str(script), "info", str(vol)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["shape"] == [2, 3, 4]
