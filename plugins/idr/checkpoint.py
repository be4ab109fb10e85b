"""IDR checkpoints: ``config.json`` + ``model.safetensors`` through :mod:`viewer.plugins.checkpoint`
(atomic, hash-checked, safetensors only, the weights' names and shapes checked against the
network the config describes before any is read).

config.json (``"format": "lucid3d-idr"``) holds the plugin and its Config (sizes resolved), the
normalisation (world = centre + scale * x, so the surface comes back in the scene's frame), the
number of pose corrections, the background, the training size, orbit defaults, the training
cameras' centres (the mean view direction of exported colours), the scene and the metrics.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from viewer.model.errors import LoadError
from viewer.plugins import Range, check_json_object, config_from_dict, nested, numbers, of_type, read_checkpoint_json
from viewer.plugins.checkpoint import load_weights, write_checkpoint

from . import FORMAT, Config
from .model import IDRModel

__all__ = ["save_checkpoint", "load_checkpoint", "read_config"]

MAX_VIEWS = 1_000_000
_FINITE = Range(-math.inf, math.inf)
_POSITIVE = Range(0, math.inf, lo_open=True)


def _number(bound: Range):
    return lambda v: of_type(int, float)(v) or bound.problem(float(v))


def _points(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > MAX_VIEWS:
        return f"must be a list of at most {MAX_VIEWS} points"
    for p in v:
        problem = numbers(3, _FINITE)(p)
        if problem:
            return problem
    return None


_SCHEMA = {
    "format": of_type(str), "version": lambda v: None if v == 1 and v is not True else f"must be 1, got {v!r}",
    "plugin": of_type(str), "config": of_type(dict), "background": numbers(3, Range(0, 1)),
    "train_size": numbers(2, Range(0, 65536), integer=True),
    "normalisation": nested({"centre": numbers(3, _FINITE), "scale": _number(_POSITIVE)}),
    "pose_views": lambda v: of_type(int)(v) or Range(0, MAX_VIEWS).problem(v),
    "orbit": nested({"center": numbers(3, _FINITE), "radius": _number(_POSITIVE), "up": numbers(3, _FINITE),
                     "view_angle": _number(Range(0, 180, lo_open=True, hi_open=True)),
                     "elevation": _number(Range(-90, 90))}),
    "camera_centres": _points, "train_views": lambda v: None if isinstance(v, list) and all(
        isinstance(s, str) for s in v) else "must be a list of names",
    "normalised_by": of_type(str, type(None)), "scene": of_type(str, type(None)), "metrics": of_type(dict),
    "weights_sha256": of_type(str),
}
_OPTIONAL = ("version", "background", "train_size", "orbit", "camera_centres", "train_views", "normalised_by",
             "scene", "metrics")


def save_checkpoint(model: IDRModel, directory: str | os.PathLike, state: dict | None = None) -> Path:
    """Write ``model`` (or ``state``: the weights kept so far) into ``directory``."""
    delta = model.net.pose_delta
    cfg = {
        "format": FORMAT, "version": 1, "plugin": model.plugin, "config": model.config,
        "background": [float(c) for c in model.background], "train_size": [int(v) for v in model.train_size],
        "normalisation": {"centre": [float(v) for v in model.centre], "scale": float(model.scale)},
        "pose_views": 0 if delta is None else int(delta.shape[0]),
        "orbit": model.meta.get("orbit"), "camera_centres": model.meta.get("camera_centres", []),
        "train_views": model.meta.get("train_views", []), "normalised_by": model.meta.get("normalised_by"),
        "scene": model.meta.get("scene"), "metrics": model.metrics,
    }
    return write_checkpoint(Path(directory), model.net if state is None else state, cfg,
                            metadata={"format": FORMAT, "plugin": model.plugin})


def read_config(directory: Path) -> dict[str, Any]:
    """The checked config.json; LoadError naming the file."""
    path = directory / "config.json"
    cfg = read_checkpoint_json(path)
    is_ours = isinstance(cfg, dict) and cfg.get("format") == FORMAT
    if not is_ours:
        raise LoadError(directory, "not an IDR checkpoint (config.json with \"format\": \"lucid3d-idr\")")
    try:
        check_json_object(cfg, _SCHEMA, optional=_OPTIONAL)
        config_from_dict(Config, cfg["config"])
        if any(not cfg["config"].get(k) for k in ("sdf_width", "sdf_layers", "feature", "render_width",
                                                  "render_layers", "rays", "samples")):
            raise ValueError("config: the network sizes are not resolved (0)")
    except (ValueError, TypeError) as exc:
        raise LoadError(path, " ".join(str(exc).split())) from None
    return cfg


def load_checkpoint(directory: str | os.PathLike, device: str = "cpu") -> IDRModel:
    """An :class:`IDRModel` from a checkpoint folder; LoadError for anything it cannot trust."""
    from .fit import build_net

    directory = Path(directory)
    cfg = read_config(directory)
    config = dict(cfg["config"])
    net = load_weights(directory, cfg, lambda: build_net(config, int(cfg["pose_views"])), device)
    norm = cfg["normalisation"]
    meta = {k: cfg.get(k) for k in ("orbit", "camera_centres", "train_views", "normalised_by", "scene")}
    return IDRModel(net=net, plugin=cfg["plugin"], config=config, centre=np.asarray(norm["centre"], float),
                    scale=float(norm["scale"]), background=tuple(cfg.get("background", (1.0, 1.0, 1.0))),
                    train_size=tuple(cfg.get("train_size", (0, 0))), metrics=cfg.get("metrics", {}), meta=meta,
                    device=device)
