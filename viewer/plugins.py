"""The plugin contract: one object per method, found in ``plugins/`` or by entry point.

A plugin is a package in ``plugins/`` that exposes ``PLUGIN`` (a :class:`SegmenterPlugin` or
:class:`RendererPlugin`), or an installed distribution that registers such an object in the
entry-point group ``lucid3d.plugins``. Plugins import torch and this module, never Qt.

Segmenter (``kind = "segmenter"``)::

    model = plugin.train(cases, config, progress)          # cases: list[Case]
    labels, uncertainty = plugin.predict(model, volume, progress)
    plugin.save(model, directory)   # model.safetensors + config.json, written atomically
    model = plugin.load(directory, device="cpu")

Renderer (``kind = "renderer"``)::

    model = plugin.fit(views, geometry, config, progress)
    image = plugin.render(model, camera)                  # (H, W, 3) float in 0..1
    plugin.save(model, path); model = plugin.load(path, device="cpu")

``config`` is an instance of ``plugin.Config``: a dataclass whose fields carry defaults that work
on a laptop CPU and whose docstring (or ``field(metadata={"help": ...})``) documents each field;
the window builds its settings form from it (magicgui).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, fields, is_dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from .jobs.progress import Progress
from .model import LabelMap, Volume

__all__ = ["Case", "load_case", "SegmenterPlugin", "RendererPlugin", "discover", "get_plugin", "config_help",
           "PluginError", "plugin_for_checkpoint"]

ENTRY_POINT_GROUP = "lucid3d.plugins"


class PluginError(Exception):
    """A plugin that cannot be found or loaded; message fit for one line."""


@dataclass
class Case:
    """One training case: an image and its label map on the same grid.

    ``image.array`` (I, J, K) and ``labels.array`` (I, J, K) share the affine (voxel -> RAS mm).
    """

    image: Volume
    labels: LabelMap
    name: str = ""

    def __post_init__(self) -> None:
        import numpy as np

        if self.image.shape != self.labels.shape:
            raise ValueError(f"image {self.image.shape} and labels {self.labels.shape} differ in shape")
        if not np.allclose(self.image.affine, self.labels.affine, atol=1e-3):
            raise ValueError("image and labels lie on different grids (their affines differ)")


def load_case(image_path: str | Path, label_path: str | Path, name: str | None = None) -> Case:
    """An image file and its label file as a training Case; one-line LoadErrors for bad pairs
    (not a volume, empty labels, a label file that is not integer, grids that differ)."""
    import numpy as np

    from .io import load_path
    from .model.errors import LoadError

    img = load_path(image_path)
    if not isinstance(img, Volume):
        raise LoadError(image_path, "not a volume")
    lab = load_path(label_path, as_labels=True)
    if not np.any(np.asarray(lab.array)):
        raise LoadError(label_path, "the label volume is empty (all background)")
    try:
        return Case(img, lab, name=name if name is not None else Path(image_path).name)
    except ValueError as exc:
        raise LoadError(label_path, f"does not match {Path(image_path).name}: {exc}") from None


@runtime_checkable
class SegmenterPlugin(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]  # "segmenter"
    description: ClassVar[str]
    Config: ClassVar[type]

    def train(self, cases: list[Case], config: Any, progress: Progress) -> Any: ...

    def predict(self, model: Any, volume: Volume, progress: Progress) -> tuple[LabelMap, Volume]: ...

    def save(self, model: Any, path: str | Path) -> Path: ...

    def load(self, path: str | Path, device: str = "cpu") -> Any: ...


@runtime_checkable
class RendererPlugin(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]  # "renderer"
    description: ClassVar[str]
    Config: ClassVar[type]

    def fit(self, views: Any, geometry: Any, config: Any, progress: Progress) -> Any: ...

    def render(self, model: Any, camera: Any) -> Any: ...

    def save(self, model: Any, path: str | Path) -> Path: ...

    def load(self, path: str | Path, device: str = "cpu") -> Any: ...


_CACHE: dict[str, Any] | None = None


def discover(refresh: bool = False) -> dict[str, Any]:
    """All plugins by name: the packages in ``plugins/`` first, then entry points."""
    global _CACHE
    if _CACHE is not None and not refresh:
        return _CACHE
    found: dict[str, Any] = {}
    import plugins as _pkg

    for info in pkgutil.iter_modules(_pkg.__path__):
        if not info.ispkg:
            continue
        mod = importlib.import_module(f"plugins.{info.name}")
        obj = getattr(mod, "PLUGIN", None)
        if obj is not None:
            found[obj.name] = obj
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception:  # a broken third-party plugin must not take the app down
            continue
        found.setdefault(getattr(obj, "name", ep.name), obj)
    _CACHE = found
    return found


def get_plugin(name: str, kind: str | None = None) -> Any:
    plugins = discover()
    if name not in plugins or (kind and plugins[name].kind != kind):
        names = sorted(n for n, p in plugins.items() if not kind or p.kind == kind)
        raise PluginError(f"no {kind or 'plugin'} named {name!r}; available: {', '.join(names) or 'none'}")
    return plugins[name]


def plugin_for_checkpoint(folder: str | Path, kind: str | None = None) -> Any:
    """The plugin that wrote the checkpoint ``folder`` (its config.json names it).

    Raises LoadError for a folder without a readable config or naming no known plugin.
    """
    import json

    from .model.errors import LoadError

    try:
        name = json.loads((Path(folder) / "config.json").read_text()).get("plugin", "")
    except (OSError, ValueError, AttributeError):
        raise LoadError(folder, "not a Lucid3D checkpoint (config.json missing or unreadable)") from None
    try:
        return get_plugin(name, kind)
    except PluginError as exc:
        raise LoadError(folder, str(exc)) from None


def config_help(config_cls: type) -> dict[str, str]:
    """Field name -> help text (from ``metadata['help']``) of a plugin's Config dataclass."""
    if not is_dataclass(config_cls):
        return {}
    return {f.name: str(f.metadata.get("help", "")) for f in fields(config_cls)}
