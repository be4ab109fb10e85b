"""Checking what a plugin is built from: its Config's fields against bounds, a checkpoint's stored
config and JSON, and its weights' shapes against the network the config describes.

A Config arrives from a form, a command line or a checkpoint's config.json that anyone may have
edited; one out-of-range number (a 20000-texel texture, a 400^3 patch) costs gigabytes before
anything fails. Each plugin's Config declares its bounds and calls :func:`validate_config` from
``validate()``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["Range", "SEED_MAX", "validate_config", "config_from_dict", "config_help", "numbers", "of_type",
           "check_json_object", "nested", "read_checkpoint_json", "check_weights_fit", "MAX_CONFIG_BYTES"]


def config_help(config_cls: type) -> dict[str, str]:
    """Field name -> help text (from ``metadata['help']``) of a plugin's Config dataclass."""
    if not is_dataclass(config_cls):
        return {}
    return {f.name: str(f.metadata.get("help", "")) for f in fields(config_cls)}



SEED_MAX = 2**32 - 1  # numpy's legacy seeding refuses anything larger


@dataclass(frozen=True)
class Range:
    """Closed bounds ``lo <= value <= hi``; ``lo_open``/``hi_open`` make an end strict."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def problem(self, value: float) -> str | None:
        import math

        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if (value <= self.lo if self.lo_open else value < self.lo) or \
                (value >= self.hi if self.hi_open else value > self.hi):
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"must be in {left}{_num(self.lo)}, {_num(self.hi)}{right}, got {_num(value)}"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _type_problem(value: Any, kind: Any) -> str | None:
    """Why ``value`` is not of the field type ``kind`` (int, float, bool or str), or None."""
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}.get(kind)
    if ok is None or ok(value):
        return None
    return f"must be {'a whole number' if kind is int else 'a number' if kind is float else 'true or false' if kind is bool else 'text'}, got {value!r}"


def validate_config(config: Any, bounds: dict[str, Any]) -> None:
    """Check every field of a Config dataclass: its type and its bound.

    ``bounds`` maps a field name to a :class:`Range`, a tuple of allowed strings, or a callable
    ``value -> problem or None``. Raises ValueError ``"NAME: what is wrong"`` for the first bad field.
    """
    import typing

    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        problem = _type_problem(value, hints.get(f.name))
        bound = bounds.get(f.name)
        if problem is None and bound is not None:
            if isinstance(bound, Range):
                problem = bound.problem(float(value))
            elif isinstance(bound, tuple):
                problem = None if value in bound else f"must be one of {', '.join(map(str, bound))}, got {value!r}"
            else:
                problem = bound(value)
        if problem:
            raise ValueError(f"{f.name}: {problem}")


def config_from_dict(config_cls: type, values: Any) -> Any:
    """A validated ``config_cls`` from a dict (a checkpoint's stored config).

    Unknown keys, wrong types and out-of-range values raise ValueError naming the field; keys
    the Config lists in its ``STORED_EXTRA`` (key -> checker) are derived values training stored
    beside the settings. A key
    the dict lacks takes the field's default (checkpoints written before the field existed);
    settings that shape the network are then still checked against the weights themselves.
    """
    if not isinstance(values, dict):
        raise ValueError(f"config: must be an object, got {type(values).__name__}")
    names = {f.name for f in fields(config_cls)}
    # values training derives and stores beside the settings (e.g. the mirror axes a segmenter chose), each checked
    stored = getattr(config_cls, "STORED_EXTRA", {})
    unknown = sorted(set(values) - names - set(stored))
    if unknown:
        raise ValueError(f"config: unknown setting {unknown[0]!r}")
    for key, check in stored.items():
        problem = check(values[key]) if key in values else None
        if problem:
            raise ValueError(f"{key}: {problem}")
    cfg = config_cls(**{k: v for k, v in values.items() if k in names})
    check = getattr(cfg, "validate", None)
    if check is not None:
        check()
    return cfg


def numbers(n: int | None, bound: Range, integer: bool = False) -> Any:
    """A checker for a JSON list of ``n`` numbers (any length if None) each within ``bound``."""
    kind = int if integer else float

    def check(value: Any) -> str | None:
        if not isinstance(value, list) or (n is not None and len(value) != n):
            return f"must be a list of {n if n is not None else 'some'} numbers, got {value!r}"[:200]
        for v in value:
            problem = _type_problem(v, kind) or bound.problem(float(v))
            if problem:
                return problem
        return None

    return check


def of_type(*kinds: type) -> Any:
    """A checker that a JSON value is one of ``kinds`` (``type(None)`` allows null)."""
    def check(value: Any) -> str | None:
        if isinstance(value, bool) and bool not in kinds:
            return f"must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}"
        return None if isinstance(value, kinds) else \
            f"must be {' or '.join('null' if k is type(None) else k.__name__ for k in kinds)}, got {type(value).__name__}"

    return check


def check_json_object(obj: Any, schema: dict[str, Any], optional: tuple[str, ...] = (), where: str = "") -> None:
    """Check a JSON object against ``schema`` (key -> checker returning a problem or None).

    Every key of the schema is required except ``optional`` ones; keys the schema does not know
    are refused. Raises ValueError ``"WHERE.KEY: problem"`` for the first bad key.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(obj, dict):
        raise ValueError(f"{where or 'config'}: must be an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(schema))
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: unknown field")
    for key, check in schema.items():
        if key not in obj:
            if key in optional:
                continue
            raise ValueError(f"{prefix}{key}: missing")
        problem = check(obj[key])
        if problem:  # a nested object's problem starts ".FIELD: ": KEY.FIELD
            raise ValueError(f"{prefix}{key}{problem}" if problem.startswith(".") else f"{prefix}{key}: {problem}")


def nested(schema: dict[str, Any], optional: tuple[str, ...] = ()) -> Any:
    """A checker for a JSON object inside another (its problems read ``OUTER.INNER: ...``)."""
    def check(value: Any) -> str | None:
        try:
            check_json_object(value, schema, optional)
        except ValueError as exc:
            return "." + str(exc) if isinstance(value, dict) else str(exc).partition(": ")[2]
        return None

    return check


MAX_CONFIG_BYTES = 64 << 20  # a checkpoint's config.json (metrics included) is kilobytes


def read_checkpoint_json(path: Path) -> Any:
    """The parsed JSON of a checkpoint's config file: a regular file (never a FIFO) of bounded size.
    Raises LoadError naming ``path``."""
    import json

    from ..io.common import require_regular_file
    from ..model.errors import LoadError

    size = require_regular_file(path)
    if size > MAX_CONFIG_BYTES:
        raise LoadError(path, f"a config of {size >> 20} MB is not a checkpoint's")
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(MAX_CONFIG_BYTES + 1))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LoadError(path, f"unreadable config ({' '.join(str(exc).split())[:200]})") from None


def check_weights_fit(weights: Path, build: Any) -> None:
    """Compare the tensor names and shapes in a safetensors file's header with the network
    ``build()`` makes, built on torch's 'meta' device (no memory for its parameters), so a
    config that does not describe these weights is refused before anything is allocated.

    Raises ValueError naming the first tensor that differs.
    """
    import torch
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"unreadable weights header ({' '.join(str(exc).split())[:200]})") from None
    with torch.device("meta"):
        net = build()
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for k in sorted(set(want) | set(have)):
        if k not in have:
            raise ValueError(f"the network in config.json has {k}, which the weights lack")
        if k not in want:
            raise ValueError(f"the weights hold {k}, which the network in config.json lacks")
        if have[k] != want[k]:
            raise ValueError(f"{k} is {list(have[k])} in the weights but {list(want[k])} by config.json")
