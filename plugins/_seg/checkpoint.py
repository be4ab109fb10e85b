"""Segmenter checkpoints: ``DIR/model.safetensors`` + ``DIR/config.json``, written atomically.

config.json holds everything needed to use the weights on a new scan: the plugin and its
config, label values/names/colours, intensity normalisation, training spacing and patch size,
the SHA-256 of the training files and of the weights file, and the metrics reached. The weights
are written first and the config last, each to a temporary file renamed into place, and the
config names the weights' hash: a crash never leaves a pair that loads as if whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from viewer.io.common import atomic_path, require_regular_file
from viewer.model.errors import LoadError
from viewer.plugins import (Range, check_json_object, check_weights_fit, config_from_dict, nested, numbers, of_type,
                            read_checkpoint_json)

__all__ = ["SegModel", "save_checkpoint", "load_checkpoint", "read_checked_config", "check_prediction_grid",
           "FORMAT", "sha256_file", "MAX_GRID_VOXELS"]

FORMAT = "lucid3d-segmenter"


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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def _atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(target) as tmp:
        write(tmp)


def save_checkpoint(model: SegModel, directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    net = model.net.module if hasattr(model.net, "module") else model.net
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    weights = directory / "model.safetensors"
    _atomic_write(weights, lambda p: save_file(state, str(p), metadata={"format": FORMAT}))
    cfg = {
        "format": FORMAT, "version": 1, "plugin": model.plugin, "config": model.config,
        "labels": model.labels, "normalisation": model.normalisation,
        "spacing": list(model.spacing), "patch": list(model.patch), "in_channels": model.in_channels,
        "n_classes": model.n_classes, "metrics": model.metrics, "training_data": model.data,
        "weights_sha256": sha256_file(weights),
    }
    _atomic_write(directory / "config.json", lambda p: p.write_text(json.dumps(cfg, indent=1)))
    return directory


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
        config = config_from_dict(config_cls, cfg["config"]) if config_cls is not None else None
        problem = config.patch_problem(cfg["patch"]) if hasattr(config, "patch_problem") else None
        if problem:
            raise ValueError(f"patch: {problem}")
    except (ValueError, TypeError) as exc:
        raise LoadError(cfg_path, " ".join(str(exc).split())) from None
    return cfg, config


def load_checkpoint(directory: str | os.PathLike, build: Callable[[dict], torch.nn.Module],
                    device: str = "cpu", config_cls: type | None = None) -> SegModel:
    """Read a checkpoint folder; ``build(config_json)`` makes the empty network.

    Before anything is built: every field of config.json is checked (types, bounds, and with
    ``config_cls`` the plugin's Config.validate()), the weights' SHA-256 against the config, and
    the tensor names and shapes in the weights' header against the network ``build`` makes on
    torch's 'meta' device. Raises LoadError (one line, naming the file) for a folder that is not
    ours, an edited or damaged config, a truncated or altered weights file, or weights that do
    not fit the network the config describes.
    """
    directory = Path(directory)
    cfg_path, weights = directory / "config.json", directory / "model.safetensors"
    if not directory.is_dir():
        raise LoadError(directory, "a checkpoint is a folder with model.safetensors and config.json")
    if not cfg_path.exists() or not weights.exists():
        raise LoadError(directory, "not a Lucid3D checkpoint (model.safetensors or config.json missing)")
    require_regular_file(weights)
    cfg, _ = read_checked_config(directory, config_cls)
    if cfg["weights_sha256"] != sha256_file(weights):
        raise LoadError(weights, "the weights file is truncated or does not belong to this config")
    try:
        check_weights_fit(weights, lambda: build(cfg))
    except ValueError as exc:
        raise LoadError(cfg_path, f"the weights do not fit the network it describes: {exc}") from None
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise LoadError(weights, f"unreadable weights ({' '.join(str(exc).split())})") from None
    net = build(cfg)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LoadError(weights, "the weights do not fit the network in config.json "
                                 f"({str(exc).splitlines()[0]})") from None
    net.to(device).eval()
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
