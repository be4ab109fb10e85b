"""Finding plugins: every installed distribution's entry points in the group ``lucid3d.plugins``
(Lucid3D's own methods register there exactly as a third-party package does).

Listing is light: an entry point names a plugin object whose module imports no torch at its top
(the heavy modules load on first use), so building the window or parsing a command line costs
milliseconds. A plugin that fails to load, or loads as something that is not a plugin, is listed
as unavailable with a one-line reason; everything else keeps working.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from .contract import KINDS, checkpoint_plugin_name

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "PluginInfo", "discover", "plugin_infos", "get_plugin", "preferred",
           "plugin_for_checkpoint"]

ENTRY_POINT_GROUP = "lucid3d.plugins"


class PluginError(Exception):
    """A plugin that cannot be found or loaded; message fit for one line."""


@dataclass(frozen=True)
class PluginInfo:
    """One entry point as found: the plugin object, or why there is none."""

    name: str
    entry: str  # "module:attribute", as the distribution declared it
    distribution: str
    plugin: Any = None
    problem: str | None = None
    kind: str | None = None  # one of KINDS when the object says so

    @property
    def available(self) -> bool:
        return self.plugin is not None


# what a caller will call (the Protocols in contract.py)
_COMMON = ("name", "description", "Config", "save", "load", "owns_checkpoint")
_NEEDS = {"segmenter": _COMMON + ("train", "predict", "check_volume"),
          "renderer": _COMMON + ("fit", "render", "orbit"),
          "classifier": _COMMON + ("train", "classify", "saliency"),
          "detector": _COMMON + ("train", "detect")}

_LOCK = threading.Lock()
_INFOS: list[PluginInfo] | None = None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def _load(ep: Any) -> PluginInfo:
    dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin is listed, never takes the app down
        return PluginInfo(ep.name, ep.value, dist, problem=f"cannot be loaded ({_one_line(exc)})")
    kind = getattr(obj, "kind", None)
    if kind not in KINDS:
        return PluginInfo(ep.name, ep.value, dist, problem=f"is not a plugin (kind {kind!r}, not one of {', '.join(KINDS)})")
    needs = _NEEDS[kind]
    missing = [m for m in needs if not hasattr(obj, m)]
    if len(missing) == len(needs):  # a kind word and nothing of the kind: some other object
        return PluginInfo(ep.name, ep.value, dist, problem=f"is not a plugin (says kind {kind!r} but has none of "
                                                            f"a {kind}'s parts: {', '.join(needs)})")
    if missing:
        return PluginInfo(ep.name, ep.value, dist, problem=f"lacks {', '.join(missing)} of a {kind}", kind=kind)
    return PluginInfo(getattr(obj, "name", None) or ep.name, ep.value, dist, plugin=obj, kind=kind)


def _entry_points() -> list[Any]:
    """The group's entry points of every distribution on the path. Not ``entry_points(group=)``:
    it keeps only the first distribution of a name, and a stale ``*.egg-info`` left in a checkout
    (a setuptools build writes one) would hide the installed metadata."""
    found, seen = [], set()
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP and (ep.name, ep.value) not in seen:
                seen.add((ep.name, ep.value))
                found.append(ep)
    return found


def plugin_infos(refresh: bool = False) -> list[PluginInfo]:
    """Every entry point of the group, loaded (light), in name order; unavailable ones included."""
    global _INFOS
    with _LOCK:
        if _INFOS is None or refresh:
            infos = [_load(ep) for ep in _entry_points()]
            seen: set[str] = set()
            unique = []
            for info in sorted(infos, key=lambda i: (i.name, not i.available)):
                if info.name in seen:  # two distributions claim one name: the first available wins
                    continue
                seen.add(info.name)
                unique.append(info)
            _INFOS = unique
        return list(_INFOS)


def discover(refresh: bool = False) -> dict[str, Any]:
    """The available plugins by name."""
    return {i.name: i.plugin for i in plugin_infos(refresh) if i.available}


def preferred(kind: str) -> str | None:
    """The name of the available plugin of ``kind`` with the highest ``priority`` (ties: by name)."""
    ranked = sorted((-int(getattr(i.plugin, "priority", 0)), i.name) for i in plugin_infos()
                    if i.available and i.kind == kind)
    return ranked[0][1] if ranked else None


def get_plugin(name: str, kind: str | None = None) -> Any:
    """The plugin called ``name`` (of ``kind`` if given); PluginError, naming what there is, if none."""
    infos = {i.name: i for i in plugin_infos()}
    info = infos.get(name)
    if info is not None and info.problem:
        raise PluginError(f"the plugin {name!r} is unavailable: {info.problem}")
    if info is None or (kind and info.kind != kind):
        names = sorted(n for n, i in infos.items() if i.available and (not kind or i.kind == kind))
        raise PluginError(f"no {kind or 'plugin'} named {name!r}; available: {', '.join(names) or 'none'}")
    return info.plugin


def plugin_for_checkpoint(folder: str | Path, kind: str | None = None) -> Any:
    """The plugin that wrote the checkpoint ``folder`` (its config.json names it).

    Raises LoadError for a folder without a readable config, naming no known plugin, or of the
    other kind.
    """
    from ..model.errors import LoadError

    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(folder, "no such checkpoint folder" if not folder.exists()
                        else "a checkpoint is a folder (config.json and its weights)")
    name = checkpoint_plugin_name(folder)
    if name is None:
        raise LoadError(folder, "not a Lucid3D checkpoint (config.json missing or unreadable)")
    try:
        plugin = get_plugin(name)
    except PluginError as exc:
        raise LoadError(folder, str(exc)) from None
    if kind and plugin.kind != kind:
        raise LoadError(folder, f"a {plugin.kind} checkpoint ({name}), not a {kind}'s")
    return plugin
