"""Segmenter checkpoints: ``DIR/model.safetensors`` + ``DIR/config.json``, written and read by
:mod:`viewer.plugins.checkpoint` (atomic, the config naming the weights' SHA-256).

config.json holds everything needed to use the weights on a new scan: the plugin and its
config, label values/names/colours, intensity normalisation, training spacing and patch size,
the SHA-256 of the training files and of the weights file, and the metrics reached. This module
keeps what is the segmenters' own: that schema, and the size check of a scan on the model's grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from viewer.model.errors import LoadError
from viewer.plugins import (Range, check_json_object, config_from_dict, nested, numbers, of_type,
                            read_checkpoint_json)
from viewer.plugins.checkpoint import load_weights, write_checkpoint

from .plugin import FORMAT

__all__ = ["SegModel", "save_checkpoint", "load_checkpoint", "read_checked_config", "check_prediction_grid", "with_legacy",
           "FORMAT", "MAX_GRID_VOXELS"]


@dataclass(eq=False)
class SegModel:
    """A trained segmenter: the network and what it needs around it."""

    net: torch.nn.Module
    plugin: str
    config: dict[str, Any]
    labels: list[dict[str, Any]]  # [{"value", "name", "color"}] without background
    normalisation: dict[str, Any]
    spacing: tuple[float, float, float]  # canonical-axis mm the network was trained at
    patch: tuple[int, int, int]
    in_channels: int = 1
    metrics: dict[str, Any] = field(default_factory=dict)
    data: list[dict[str, str]] = field(default_factory=list)  # training files and hashes
    device: str = "cpu"

    @property
    def n_classes(self) -> int:
        return len(self.labels) + 1


def save_checkpoint(model: SegModel, directory: str | os.PathLike,
                    weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` into ``directory`` (made if missing); ``weights``: a state dict to store
    instead of the network's current one (the best so far, while training goes on)."""
    cfg = {
        "format": FORMAT, "version": 1, "plugin": model.plugin, "config": model.config,
        "labels": model.labels, "normalisation": model.normalisation,
        "spacing": list(model.spacing), "patch": list(model.patch), "in_channels": model.in_channels,
        "n_classes": model.n_classes, "metrics": model.metrics, "training_data": model.data,
    }
    return write_checkpoint(directory, model.net if weights is None else weights, cfg, metadata={"format": FORMAT})


SPACING_RANGE = Range(0.1, 100.0)  # mm; finer than 0.1 mm is not a clinical scan
MAX_LABEL_VALUE = 2**31 - 1
# voxels of the scan on the network's grid: 2^29 float32 is 2 GB before MONAI's own buffers
MAX_GRID_VOXELS = 1 << 29
# ... and an edited spacing must not turn a small scan into minutes of sliding windows: beyond
# 16 M voxels (about a minute on 2 CPU cores), at most 5x finer per axis than the scan itself
FREE_GRID_VOXELS = 1 << 24
MAX_UPSAMPLING = 125


def _labels_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not 1 <= len(value) <= 1000:
        return "must be a list of 1 to 1000 labels"
    seen = set()
    for row in value:
        if not isinstance(row, dict) or set(row) - {"value", "name", "color"} or {"value", "name"} - set(row):
            return f"each label is {{value, name, color}}, got {row!r}"[:200]
        v = row["value"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_LABEL_VALUE or v in seen:
            return f"label values are distinct whole numbers from 1, got {v!r}"
        seen.add(v)
        if not isinstance(row["name"], str):
            return f"label {v}: its name must be text"
        color = row.get("color", [1.0, 0.0, 0.0])
        if numbers(3, Range(0, 1))(color):  # RGB 0..1, as viewer.model.Label keeps it
            return f"label {v}: color must be 3 numbers within 0..1, got {color!r}"[:200]
    return None


def _finite(v: Any) -> str | None:
    return of_type(int, float)(v) or Range(-1e12, 1e12).problem(float(v))


_normalisation_problem = nested(
    {"mode": lambda v: None if v in ("ct", "mr") else f"must be ct or mr, got {v!r}",
     **{k: _finite for k in ("clip_low", "clip_high", "mean", "std")}},
    optional=("clip_low", "clip_high", "mean", "std"))


def _exactly(expected: Any) -> Callable[[Any], str | None]:
    return lambda v: None if v == expected and type(v) is type(expected) else f"must be {expected!r}, got {v!r}"


_SCHEMA = {
    "format": of_type(str), "version": _exactly(1), "plugin": of_type(str), "config": of_type(dict),
    "labels": _labels_problem, "normalisation": _normalisation_problem, "spacing": numbers(3, SPACING_RANGE),
    "patch": numbers(3, Range(16, 256), integer=True), "in_channels": lambda v: of_type(int)(v) or Range(1, 16).problem(v),
    "n_classes": lambda v: of_type(int)(v) or Range(2, 1001).problem(v), "metrics": of_type(dict),
    "training_data": of_type(list), "weights_sha256": of_type(str),
}
_OPTIONAL = ("version", "in_channels", "n_classes", "metrics", "training_data")


def read_checked_config(directory: Path, config_cls: type | None = None) -> tuple[dict, Any]:
    """config.json of a segmenter checkpoint, every field checked; LoadError naming the file.

    Returns the JSON and the plugin's Config built from it (None without ``config_cls``).
    """
    cfg_path = directory / "config.json"
    cfg = read_checkpoint_json(cfg_path)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise LoadError(directory, "not a Lucid3D segmenter checkpoint")
    try:
        check_json_object(cfg, _SCHEMA, optional=_OPTIONAL)
        if "n_classes" in cfg and cfg["n_classes"] != len(cfg["labels"]) + 1:
            raise ValueError(f"n_classes: {cfg['n_classes']} but {len(cfg['labels'])} labels + background")
        config = config_from_dict(config_cls, with_legacy(config_cls, cfg["config"])) if config_cls is not None else None
        problem = config.patch_problem(cfg["patch"]) if hasattr(config, "patch_problem") else None
        if problem:
            raise ValueError(f"patch: {problem}")
    except (ValueError, TypeError) as exc:
        raise LoadError(cfg_path, " ".join(str(exc).split())) from None
    return cfg, config


def with_legacy(config_cls: type | None, stored: dict) -> dict:
    """A stored config with the settings it predates filled in as they were then (a Config's
    ``LEGACY``, e.g. DeepMedic's ``subsample="3"``), not with today's defaults."""
    return {**getattr(config_cls, "LEGACY", {}), **stored}


def load_checkpoint(directory: str | os.PathLike, build: Callable[[dict], torch.nn.Module],
                    device: str = "cpu", config_cls: type | None = None) -> SegModel:
    """Read a checkpoint folder; ``build(config_json)`` makes the empty network.

    Before anything is built: every field of config.json is checked (types, bounds, and with
    ``config_cls`` the plugin's Config.validate()), then the weights as
    :func:`viewer.plugins.checkpoint.load_weights` checks them. Raises LoadError (one line,
    naming the file) for a folder that is not ours, an edited or damaged config, a truncated or
    altered weights file, or weights that do not fit the network the config describes.
    """
    directory = Path(directory)
    cfg_path, weights = directory / "config.json", directory / "model.safetensors"
    if not directory.is_dir():
        raise LoadError(directory, "a checkpoint is a folder with model.safetensors and config.json")
    if not cfg_path.exists() or not weights.exists():
        raise LoadError(directory, "not a Lucid3D checkpoint (model.safetensors or config.json missing)")
    cfg, _ = read_checked_config(directory, config_cls)
    net = load_weights(directory, cfg, lambda: build(cfg), device)
    return SegModel(
        net=net, plugin=cfg["plugin"], config=cfg.get("config", {}), labels=cfg["labels"],
        normalisation=cfg["normalisation"], spacing=tuple(cfg["spacing"]), patch=tuple(cfg["patch"]),
        in_channels=int(cfg.get("in_channels", 1)), metrics=cfg.get("metrics", {}),
        data=cfg.get("training_data", []), device=device,
    )


def check_prediction_grid(model: SegModel, shape: tuple[int, ...], affine: Any) -> str | None:
    """Why segmenting a scan of ``shape`` with voxel->RAS ``affine`` would be too large, or None:
    the scan resampled to the model's spacing (as predict_volume does) must stay within
    MAX_GRID_VOXELS."""
    import numpy as np

    from .preprocess import to_canonical

    aff = np.asarray(affine, float)
    if not np.all(np.isfinite(aff)):
        return "the scan's affine is not finite"
    stub = np.broadcast_to(np.zeros((), np.uint8), tuple(int(n) for n in shape[:3]))  # no memory
    canon, can_aff, _ = to_canonical(stub, aff)
    spacing = np.linalg.norm(can_aff[:3, :3], axis=0)
    if np.any(spacing <= 0):
        return "the scan's voxel spacing is zero"
    n = float(np.prod([max(1, round(k * s / t)) for k, s, t in zip(canon.shape, spacing, model.spacing)]))
    have = float(np.prod(canon.shape))
    if n > MAX_GRID_VOXELS or (n > FREE_GRID_VOXELS and n > MAX_UPSAMPLING * have):
        return (f"at the model's spacing {list(model.spacing)} mm the scan's {have:.3g} voxels would become "
                f"{n:.3g} (at most {MAX_GRID_VOXELS:.3g}, or {MAX_UPSAMPLING}x the scan above {FREE_GRID_VOXELS:.3g})")
    return None
