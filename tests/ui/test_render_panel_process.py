"""tests/ui/test_render_panel.py, run in a fresh process of its own (see the note there): every
one of its tests must pass. A failed test fails this one. A process killed by a signal (the open
segfault of docs/RELIABILITY.md) is run once more and must then pass; it is reported as a warning."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def _run() -> subprocess.CompletedProcess:
    env = dict(os.environ, LUCID3D_RENDER_PANEL_TESTS="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           str(HERE / "test_render_panel.py")], cwd=HERE.parent.parent, env=env,
                          capture_output=True, text=True, timeout=900)


def test_render_panel_tests_pass_in_their_own_process():
    r = _run()
    if r.returncode < 0:  # killed by a signal, not a failed assertion: the known crash, once more
        warnings.warn(f"render panel test process died by signal {-r.returncode}; ran it again")
        r = _run()
    tail = (r.stdout + r.stderr)[-4000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " skipped" not in r.stdout.splitlines()[-1], tail
