"""The third-party plugin package in tests/thirdparty, installed with pip into a folder of its own
(as a user would install it), once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@pytest.fixture(scope="session")
def thirdparty_site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("thirdparty-src")
    shutil.copytree(HERE.parent / "thirdparty", src, dirs_exist_ok=True)  # pip builds in a copy
    site = tmp_path_factory.mktemp("thirdparty-site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-compile", "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert list(site.glob("lucid3d_threshold-*.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def thirdparty_env(thirdparty_site) -> dict[str, str]:
    """The environment of a command run with the third-party package installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(thirdparty_site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def thirdparty_installed(thirdparty_site, monkeypatch):
    """This process sees the third-party package (its entry points too) for one test."""
    from viewer.plugins import plugin_infos

    monkeypatch.syspath_prepend(str(thirdparty_site))
    plugin_infos(refresh=True)
    yield thirdparty_site
    monkeypatch.undo()
    plugin_infos(refresh=True)
