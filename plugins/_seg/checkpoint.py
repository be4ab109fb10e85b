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

from viewer.io.common import atomic_path
from viewer.model.errors import LoadError

__all__ = ["SegModel", "save_checkpoint", "load_checkpoint", "FORMAT", "sha256_file"]

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


def load_checkpoint(directory: str | os.PathLike, build: Callable[[dict], torch.nn.Module],
                    device: str = "cpu") -> SegModel:
    """Read a checkpoint folder; ``build(config_json)`` makes the empty network.

    Raises LoadError for a folder that is not ours, a truncated or altered weights file, or
    weights that do not fit the network the config describes.
    """
    directory = Path(directory)
    cfg_path, weights = directory / "config.json", directory / "model.safetensors"
    if not directory.is_dir():
        raise LoadError(directory, "a checkpoint is a folder with model.safetensors and config.json")
    if not cfg_path.is_file() or not weights.is_file():
        raise LoadError(directory, "not a Lucid3D checkpoint (model.safetensors or config.json missing)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(cfg_path, f"unreadable config ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise LoadError(directory, "not a Lucid3D segmenter checkpoint")
    if cfg.get("weights_sha256") and cfg["weights_sha256"] != sha256_file(weights):
        raise LoadError(weights, "the weights file is truncated or does not belong to this config")
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
