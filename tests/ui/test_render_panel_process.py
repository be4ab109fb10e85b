"""tests/ui/test_render_panel.py, run in a fresh process of its own (see the note there): every
one of its tests must pass, and a crash of that process fails this test with its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def test_render_panel_tests_pass_in_their_own_process():
    env = dict(os.environ, LUCID3D_RENDER_PANEL_TESTS="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                        str(HERE / "test_render_panel.py")], cwd=HERE.parent.parent, env=env,
                       capture_output=True, text=True, timeout=900)
    tail = (r.stdout + r.stderr)[-4000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " skipped" not in r.stdout.splitlines()[-1], tail
