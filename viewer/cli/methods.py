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
                                       "detectors) as JSON lines")
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
        print(json.dumps(row))
    return 0
