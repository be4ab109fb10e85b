"""What every command shares: option types, the paths the user gave, output folders, and
the one-line errors a hostile file becomes (``reading``)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Any, Callable


from ..io.guards import (load_input, only_files, prepare_out_folder, reading, refuse_same_file,
                         user_path)
from ..model.errors import LoadError

__all__ = ["CliError", "add_set_option", "config_from_options", "parse_setting", "setting_names", "number_in", "prepare_out_folder", "reading", "load_input", "user_path",
           "refuse_same_file", "validate_options", "only_files", "Parser", "DEBUG_ENV", "CtrlC", "check_device"]

DEBUG_ENV = "LUCID3D_DEBUG"  # =1: Python warnings, library chatter and full tracebacks are shown

class CliError(Exception):
    """A usage problem with a one-line message (printed as ``error: ...``, exit 2)."""


def check_device(device: str) -> None:
    """``--device cuda`` on a machine without CUDA: one line, before any input is read."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LoadError("--device cuda", "CUDA is not available on this machine")


# Option values --------------------------------------------------------------------------------
def number_in(kind: type, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` for a finite number within bounds; argparse turns the error into one
    line naming the option (``argument --minutes: must be in [0, 100000], got -1``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'a whole number' if kind is int else 'a number'}: {text!r}") from None
        bad = not math.isfinite(value) or (value <= lo if lo_open else value < lo) or \
            (value >= hi if hi_open else value > hi)
        if bad:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo:g}, {hi:g}{right}, got {text}")
        return value

    return parse


def config_from_options(plugin: Any, args: argparse.Namespace, options: dict[str, tuple[str, str]]) -> Any:
    """``plugin.Config()`` with the options the user gave set on it, validated.

    ``options`` maps an argparse destination to (Config field, option as typed). A Config need
    not have every field (a third-party method may have no patch size): an option given for a
    field it lacks is refused by name; ``--device`` is set only where the Config has a device.
    """
    cfg = plugin.Config()
    have = setting_names(cfg)
    device = getattr(args, "device", None)
    if "device" in have and device is not None:
        cfg.device = device
    elif device not in (None, "cpu"):
        raise LoadError(f"--device {device}", f"the {plugin.name} {plugin.kind} has no device setting (it runs on the CPU)")
    named = {name: option for name, option in options.values()}
    for item in getattr(args, "set", None) or []:  # --set FIELD=VALUE: any other setting of the method
        name, value = parse_setting(cfg, item, f"the {plugin.name} {plugin.kind}")
        setattr(cfg, name, value)
        named[name] = f"--set {name}"
    for dest, (name, option) in options.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if name not in have:
            raise LoadError(option, f"the {plugin.name} {plugin.kind} has no such setting")
        setattr(cfg, name, value)
    validate_options(cfg, named)
    return cfg


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set FIELD=VALUE`` (repeatable): any field of the method's Config (``main.py plugins``
    lists them); the dedicated options win where both are given."""
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE",
                        help="any other setting of the method, e.g. --set subsample=3 (repeat; `main.py plugins` "
                             "lists each method's settings)")


def setting_names(cfg: Any) -> set[str]:
    """The settings a plugin Config has: its dataclass fields, else its attributes."""
    import dataclasses

    return {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set(vars(cfg))


def parse_setting(cfg: Any, item: str, what: str = "the method") -> tuple[str, Any]:
    """``"FIELD=VALUE"`` -> (field, value of the field's type in ``cfg``); LoadError naming
    ``--set``. The one reading of a setting typed as text (the CLI's ``--set``, the benches'
    ``side:FIELD=VALUE``)."""
    name, eq, text = str(item).partition("=")
    name = name.strip()
    if not eq or not name:
        raise LoadError("--set", f"expected FIELD=VALUE, got {item!r}")
    if name not in setting_names(cfg) or name.startswith("_"):
        raise LoadError(f"--set {name}", f"{what} has no such setting")
    current = getattr(cfg, name)
    text = text.strip()
    try:
        if isinstance(current, bool):
            lowered = text.lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            return name, lowered in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return name, int(text)
        if isinstance(current, float):
            return name, float(text)
        if isinstance(current, str):
            return name, text
    except ValueError:
        kind = "true or false" if isinstance(current, bool) else f"a{'n' if isinstance(current, int) else ''} {type(current).__name__}"
        raise LoadError(f"--set {name}", f"must be {kind}, got {text!r}") from None
    raise LoadError(f"--set {name}", f"a {type(current).__name__} setting cannot be given on the command line")


def validate_options(cfg: Any, options: dict[str, str]) -> None:
    """A plugin Config's validate() after options were set on it: a bad field is named by the
    option that set it (``--patch: ...``), any other by its Config name."""
    check = getattr(cfg, "validate", None)
    if check is None:
        return
    try:
        check()
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise LoadError(options.get(field, field), problem or str(exc)) from None


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, as for every other failure
        raise CliError(f"{self.prog}: {message}")


class CtrlC:
    """First Ctrl-C: cancel (the plugin stops cleanly, keeping its best checkpoint); second: abort."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.old = None

    def __enter__(self):
        def handler(signum, frame):
            if self.progress.cancelled:
                raise KeyboardInterrupt
            print("\nstopping after this step (Ctrl-C again to abort)…", file=sys.stderr)
            self.progress.cancel()

        try:
            self.old = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self.old = None
        return self

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
