"""Every plugin module imports inside ``torch.device("meta")``.

Checkpoints are checked against their network's shapes by building it on the meta device
(``viewer.plugins.config.check_weights_fit``), and a plugin's network module may be imported for
the first time right there: a module-level ``tensor.item()`` (or any constant computed with torch)
then fails, and loading the checkpoint fails with it. A fresh interpreter, since this process has
imported the modules already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import importlib, pkgutil, torch
import plugins
names = [m.name for m in pkgutil.walk_packages(plugins.__path__, "plugins.")]
with torch.device("meta"):
    for name in names:
        importlib.import_module(name)
print(len(names))
"""


def test_every_plugin_module_imports_on_the_meta_device():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 20
