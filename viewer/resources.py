"""Access to the shipped files in ``resources/`` (presets, colour tables, icons)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

__all__ = ["RESOURCES", "window_level_presets", "volume_presets", "icon_path"]

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


@lru_cache(maxsize=None)
def _json(name: str) -> dict:
    with open(RESOURCES / "presets" / name) as fh:
        data = json.load(fh)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def window_level_presets() -> dict[str, tuple[float, float]]:
    """CT presets name -> (window, level) in HU."""
    return {k: (float(v["window"]), float(v["level"])) for k, v in _json("window_level.json").items()}


def volume_presets() -> dict[str, dict]:
    """Volume-rendering transfer functions by render mode name."""
    return _json("volume_rendering.json")


def icon_path(name: str) -> Path:
    return RESOURCES / "icons" / name
