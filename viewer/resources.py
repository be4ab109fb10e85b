"""Access to the shipped files in ``resources/`` (presets, colour tables, icons).

``resources/`` stays at the top of the repository (the product's layout); an installed copy
carries it as the package ``viewer._resources`` (mapped in ``setup.py``), so the same lookup works
from a checkout, an editable install and a wheel.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

__all__ = ["resources_root", "window_level_presets", "volume_presets", "icon_path"]


@lru_cache(maxsize=None)
def resources_root() -> Path:
    """The folder holding ``presets/`` and ``icons/``: the installed package, else the checkout's."""
    from importlib.util import find_spec

    try:
        # a data-only (namespace) package: its folder is the spec's search location
        spec = find_spec("viewer._resources")
    except (ImportError, ValueError):
        spec = None  # running from a checkout that was never installed (PYTHONPATH=.)
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(loc) / "presets").is_dir():
            return Path(loc)
    return Path(__file__).resolve().parent.parent / "resources"


@lru_cache(maxsize=None)
def _json(name: str) -> dict:
    with open(resources_root() / "presets" / name) as fh:
        data = json.load(fh)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def window_level_presets() -> dict[str, tuple[float, float]]:
    """CT presets name -> (window, level) in HU."""
    return {k: (float(v["window"]), float(v["level"])) for k, v in _json("window_level.json").items()}


def volume_presets() -> dict[str, dict]:
    """Volume-rendering transfer functions by render mode name."""
    return _json("volume_rendering.json")


def icon_path(name: str = "lucid3d.svg") -> Path:
    """A shipped icon file (the application icon by default)."""
    return resources_root() / "icons" / name
