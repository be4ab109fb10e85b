"""What sample data pulls in when it runs: never the command line, the window, the interactive views or
the job runner (so scene files, plugins' tests and benchmarks can use it headless), and the io room
never the samples (scene files get the demo resolver passed in). tests/test_layering.py reads the
import statements; these rows run the code, so an import hidden behind a call is caught too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_FROM_SAMPLES = ("viewer.cli", "viewer.ui", "viewer.render", "viewer.jobs.runner", "PySide6", "torch")

ALL_SAMPLES = ("import pkgutil, importlib, viewer.samples as s\n"
               "for m in pkgutil.iter_modules(s.__path__): importlib.import_module('viewer.samples.' + m.name)\n")
ALL_IO = ("import pkgutil, importlib, viewer.io as s\n"
          "for m in pkgutil.iter_modules(s.__path__): importlib.import_module('viewer.io.' + m.name)\n")

CASES = {
    "import-every-samples-module": (ALL_SAMPLES, NOT_FROM_SAMPLES),
    "build-default-and-segmentation-demos": (
        "from viewer.samples.registry import demo_objects\n"
        "assert len(demo_objects('default')) == 3 and len(demo_objects('segmentation')) == 4\n", NOT_FROM_SAMPLES),
    "make-a-small-globe-capture": (
        "from viewer.samples.rendering import rendering_capture\n"
        "assert (rendering_capture(views=4, test=1, size=24) / 'transforms_test.json').is_file()\n",
        NOT_FROM_SAMPLES),
    "import-every-io-module": (ALL_IO, ("viewer.samples",)),
}


@pytest.mark.parametrize("code, banned", list(CASES.values()), ids=list(CASES))
def test_what_running_it_imports(code, banned, tmp_path):
    probe = code + ("import sys\n"
                    f"print(sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in {banned!r})))\n")
    env = {**os.environ, "LUCID3D_CACHE": str(tmp_path / "cache")}  # a capture made here stays here
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout
