"""Scene files (``*.lucid3d.json``): what is loaded, how it is shown, where the cursor and
cameras are. Small, human-readable, restored exactly.

Format (version 1)::

    {"format": "lucid3d-scene", "version": 1,
     "layers": [{"source": "/abs/ct.nii.gz", "kind": "image", "as_labels": false,
                 "series": null, "display": {"window": 400, ...}, "labels": [...]}, ...],
     "cursor": [x, y, z],                       # RAS mm
     "selected": 0,                              # index into layers or null
     "cameras": {"axial": {...}, "3d": {...}}}   # as the views report them

Sources are absolute paths, or ``demo:NAME`` for the built-in demo data. Detection boxes have
no file: a ``"kind": "boxes"`` entry holds them itself (``"boxes": [{"box": [...], "score": s,
"label": name}, ...]``, RAS mm) and needs no source.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from ..model import Boxes, BoxesLayer, LabelLayer, LabelTable, Layer, Scene, layer_for
from ..model.errors import LoadError
from ..model.layer import ImageLayer
from ..model.measure import measurement_from_dict
from .common import atomic_path, require_regular_file

__all__ = ["scene_to_dict", "save_scene", "read_scene", "validate_scene", "restore_layers",
           "restore_measurements"]

FORMAT = "lucid3d-scene"
MAX_SCENE_BYTES = 16 << 20  # a scene lists files and settings: kilobytes; refuse a runaway file
MAX_LAYERS = 1000
_LAYER_KINDS = ("image", "labels", "mesh", "points", "viewset", "boxes")


def scene_to_dict(scene: Scene, cameras: dict[str, dict] | None = None) -> dict[str, Any]:
    layers = []
    for layer in scene:
        src = layer.source
        if isinstance(layer, BoxesLayer):  # the boxes themselves: a detection has no file
            layers.append({"kind": "boxes", "boxes": layer.data.to_list(), "display": layer.display_state()})
            continue
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
        "measurements": [m.to_dict() for m in scene.measurements],
        "selected": scene.index(sel) if sel is not None else None,
        "cameras": cameras or {},
    }


def save_scene(scene: Scene, path: str | Path, cameras: dict[str, dict] | None = None) -> Path:
    data = scene_to_dict(scene, cameras)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return Path(path)


def read_scene(path: str | Path) -> dict[str, Any]:
    """Read and fully validate a scene file (see :func:`validate_scene`); LoadError otherwise."""
    path = Path(path)
    size = require_regular_file(path)
    if size > MAX_SCENE_BYTES:
        raise LoadError(path, f"{size} bytes is too large for a scene file (at most {MAX_SCENE_BYTES})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LoadError(path, f"not a readable scene file ({exc})") from None
    validate_scene(data, path)
    return data


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_is_number(x) for x in v)


def validate_scene(data: Any, path: str | Path) -> None:
    """Check a whole scene document before anything is built from it.

    Every field is checked for type and range (display values later again by the layers' own
    checks, which :func:`restore_layers` runs before the window replaces anything), so a bad
    file is refused with one line naming the field, and the scene on screen stays as it was.
    """
    def bad(where: str, what: str) -> LoadError:
        return LoadError(path, f"{where}: {what}")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LoadError(path, "not a Lucid3D scene file")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise bad("version", f"must be an integer, got {version!r}")
    if version > 1:
        raise LoadError(path, f"scene file version {version} is newer than this app")
    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise bad("layers", "must be a list")
    if len(layers) > MAX_LAYERS:
        raise bad("layers", f"{len(layers)} layers; at most {MAX_LAYERS}")
    for i, entry in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(entry, dict):
            raise bad(where, "must be an object")
        if entry.get("kind") == "boxes" and "boxes" in entry:
            try:
                Boxes.from_list(entry["boxes"])
            except ValueError as exc:
                raise bad(f"{where}.boxes", str(exc)) from None
            if not isinstance(entry.get("display", {}), dict):
                raise bad(f"{where}.display", "must be an object")
            continue
        src = entry.get("source")
        if not isinstance(src, str) or not src.strip():
            raise bad(f"{where}.source", "must be a file path or demo:NAME")
        if "kind" in entry and entry["kind"] not in _LAYER_KINDS:
            raise bad(f"{where}.kind", f"must be one of {', '.join(_LAYER_KINDS)}; got {entry['kind']!r}")
        if not isinstance(entry.get("as_labels", False), bool):
            raise bad(f"{where}.as_labels", "must be true or false")
        if entry.get("series") is not None and not isinstance(entry["series"], str):
            raise bad(f"{where}.series", "must be a series UID (text) or null")
        if not isinstance(entry.get("display", {}), dict):
            raise bad(f"{where}.display", "must be an object")
        if "labels" in entry:
            try:
                LabelTable.from_list(entry["labels"])
            except ValueError as exc:
                raise bad(f"{where}.labels", str(exc)) from None
    if "cursor" in data and not _numbers(data["cursor"], 3):
        raise bad("cursor", f"must be 3 finite numbers (RAS mm), got {data['cursor']!r}")
    sel = data.get("selected")
    if sel is not None and (isinstance(sel, bool) or not isinstance(sel, int) or not 0 <= sel < len(layers)):
        raise bad("selected", f"must be a layer index below {len(layers)} or null, got {sel!r}")
    measurements = data.get("measurements", [])
    if not isinstance(measurements, list):
        raise bad("measurements", "must be a list")
    for i, m in enumerate(measurements):
        try:
            measurement_from_dict(m)
        except ValueError as exc:
            raise bad(f"measurements[{i}]", str(exc)) from None
    cams = data.get("cameras", {})
    if not isinstance(cams, dict):
        raise bad("cameras", "must be an object")
    for name, state in cams.items():
        _check_camera(state, f"cameras.{name}", bad)


def _check_camera(state: Any, where: str, bad: Callable[[str, str], LoadError]) -> None:
    """A slice view's ``{focal, scale}`` or a 3D view's ``{position, focal, up, angle, center}``."""
    if not isinstance(state, dict):
        raise bad(where, "must be an object")
    if "position" in state:  # 3D view
        for key in ("position", "focal", "up"):
            if not _numbers(state.get(key), 3):
                raise bad(f"{where}.{key}", "must be 3 finite numbers")
        if not any(state["up"]):
            raise bad(f"{where}.up", "must not be the zero vector")
        angle = state.get("angle", 30.0)
        if not _is_number(angle) or not 0.0 < angle < 180.0:
            raise bad(f"{where}.angle", f"must be within 0..180 degrees, got {angle!r}")
        if "center" in state and not _numbers(state["center"], 2):
            raise bad(f"{where}.center", "must be 2 finite numbers")
    else:  # slice view
        focal = state.get("focal")
        if not (isinstance(focal, list) and len(focal) in (2, 3) and all(_is_number(x) for x in focal)):
            raise bad(f"{where}.focal", "must be 2 or 3 finite numbers")
        scale = state.get("scale")
        if not _is_number(scale) or scale <= 0:
            raise bad(f"{where}.scale", f"must be a positive number, got {scale!r}")


def load_source(entry: dict[str, Any], demo: Callable[[str], Any] | None = None) -> Any:
    """Load the data one scene entry points to: a file, a DICOM folder, or ``demo:NAME`` data,
    which ``demo`` (the application's resolver, passed in so this room never reaches the demo
    generators and what they import) turns into objects."""
    src = entry["source"]
    if src.startswith("demo:"):
        if demo is None:
            raise LoadError(src, "built-in demo data cannot be opened here")
        return demo(src)
    from . import load_path

    return load_path(src, as_labels=bool(entry.get("as_labels")), series=entry.get("series"))


def restore_layers(data: dict[str, Any], load: Callable[[dict], Any] = load_source,
                   path: str | Path = "scene") -> list[Layer]:
    """Layers of a (validated) scene file with their display state; cursor and cameras are the
    caller's. Any bad display value is a LoadError naming the layer and field, raised before
    the caller has replaced anything."""
    layers = []
    for i, entry in enumerate(data.get("layers", [])):
        inline = entry.get("kind") == "boxes" and "boxes" in entry
        obj = Boxes.from_list(entry["boxes"]) if inline else load(entry)
        if entry.get("labels") and hasattr(obj, "table"):
            obj.table = LabelTable.from_list(entry["labels"])
        layer = layer_for(obj)
        try:
            layer.apply_display_state(entry.get("display", {}))
        except ValueError as exc:
            raise LoadError(path, f"layers[{i}].display.{exc}") from None
        layers.append(layer)
    return layers


def restore_measurements(data: dict[str, Any], layers: list[Layer]) -> list:
    """The rulers and regions of a (validated) scene file; regions measured again on its first
    image, so their statistics describe the data as it is now."""
    image = next((l for l in layers if isinstance(l, ImageLayer)), None)
    out = []
    for d in data.get("measurements", []):
        m = measurement_from_dict(d)
        if m.kind == "region" and image is not None:
            m.measure(image.data)
        out.append(m)
    return out
