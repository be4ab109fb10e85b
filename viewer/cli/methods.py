"""``plugins``: the methods installed (by entry point), available or not and why, as JSON lines.

    python main.py plugins
    {"name": "dnr", "kind": "renderer", "available": true, "distribution": "lucid3d", ...}
"""

from __future__ import annotations

import argparse
import json
from typing import Callable

__all__ = ["add_parsers", "HANDLERS"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub) -> None:
    from ..plugins.contract import KINDS

    p = sub.add_parser("plugins", help="list the installed methods (segmenters, renderers, classifiers, "
                                       "detectors) and their settings as JSON lines")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    HANDLERS["plugins"] = _cmd_plugins


def _cmd_plugins(args: argparse.Namespace) -> int:
    from ..plugins import plugin_infos

    for info in plugin_infos():
        if args.kind and info.kind != args.kind:
            continue
        row = {"name": info.name, "kind": info.kind, "available": info.available,
               "description": getattr(info.plugin, "description", ""), "distribution": info.distribution,
               "entry_point": info.entry}
        if info.problem:
            row["problem"] = info.problem
        settings = _settings(getattr(info.plugin, "Config", None)) if info.available else {}
        if settings:
            row["settings"] = settings  # what `--set FIELD=VALUE` of train/fit commands accepts
        print(json.dumps(row))
    return 0


def _settings(config_cls) -> dict[str, dict]:
    """Field -> {"default", "help"} of a plugin's dataclass Config ({} for anything else)."""
    import dataclasses

    from ..plugins import config_help

    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        return {}
    helps = config_help(config_cls)
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING and isinstance(f.default, (bool, int, float, str)):
            out[f.name] = {"default": f.default, "help": helps.get(f.name, "")}
    return out
