"""Scene files (``*.lucid3d.json``): what is loaded, how it is shown, where the cursor and
cameras are. Small, human-readable, restored exactly.

Format (version 1)::

    {"format": "lucid3d-scene", "version": 1,
     "layers": [{"source": "/abs/ct.nii.gz", "kind": "image", "as_labels": false,
                 "series": null, "display": {"window": 400, ...}, "labels": [...]}, ...],
     "cursor": [x, y, z],                       # RAS mm
     "selected": 0,                              # index into layers or null
     "cameras": {"axial": {...}, "3d": {...}}}   # as the views report them

Sources are absolute paths, or ``demo:NAME`` for the built-in demo data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..model import LabelLayer, LabelTable, Layer, Scene, layer_for
from ..model.errors import LoadError
from .common import atomic_path

__all__ = ["scene_to_dict", "save_scene", "read_scene", "restore_layers"]

FORMAT = "lucid3d-scene"


def scene_to_dict(scene: Scene, cameras: dict[str, dict] | None = None) -> dict[str, Any]:
    layers = []
    for layer in scene:
        src = layer.source
        if not src:
            raise LoadError(layer.name, "this layer has no file behind it; save it first")
        entry: dict[str, Any] = {
            "source": src if src.startswith("demo:") else str(Path(src).resolve()),
            "kind": layer.kind,
            "as_labels": isinstance(layer, LabelLayer),
            "series": layer.data.meta.get("series_uid"),
            "display": layer.display_state(),
        }
        if isinstance(layer, LabelLayer):
            entry["labels"] = layer.data.table.to_list()
        layers.append(entry)
    sel = scene.selected
    return {
        "format": FORMAT, "version": 1, "layers": layers,
        "cursor": [float(c) for c in scene.cursor],
        "selected": scene.index(sel) if sel is not None else None,
        "cameras": cameras or {},
    }


def save_scene(scene: Scene, path: str | Path, cameras: dict[str, dict] | None = None) -> Path:
    data = scene_to_dict(scene, cameras)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return Path(path)


def read_scene(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(path, f"not a readable scene file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LoadError(path, "not a Lucid3D scene file")
    if int(data.get("version", 0)) > 1:
        raise LoadError(path, f"scene file version {data['version']} is newer than this app")
    return data


def load_source(entry: dict[str, Any]) -> Any:
    """Load the data one scene entry points to (a file, a DICOM folder or demo data)."""
    src = entry["source"]
    if src.startswith("demo:"):
        from ..demos import demo_source

        return demo_source(src)
    from . import load_path

    return load_path(src, as_labels=bool(entry.get("as_labels")), series=entry.get("series"))


def restore_layers(data: dict[str, Any], load: Callable[[dict], Any] = load_source) -> list[Layer]:
    """Layers of a scene file with their display state (cursor and cameras are the caller's)."""
    layers = []
    for entry in data.get("layers", []):
        obj = load(entry)
        if entry.get("labels") and hasattr(obj, "table"):
            obj.table = LabelTable.from_list(entry["labels"])
        layer = layer_for(obj)
        layer.apply_display_state(entry.get("display", {}))
        layers.append(layer)
    return layers
