"""Heat-map checkpoints: ``model.safetensors`` + ``config.json`` through
:mod:`viewer.plugins.checkpoint` (atomic writes, the weights' SHA-256 in the config, safetensors
only), and the network they describe.

config.json: format, version, plugin, kind, config (the plugin's Config), mode ("boxes": one
heat map of the ``positive`` class; "labels": one per class), classes (names, in output order),
positive, normalisation, spacing (canonical mm the network works at), patch, metrics,
network ("unet" or "densenet121"), training_data, weights_sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from viewer.model.errors import LoadError
from viewer.plugins import Range, check_json_object, config_from_dict, nested, numbers, of_type, read_checkpoint_json
from viewer.plugins.checkpoint import load_weights, write_checkpoint

from . import FORMAT

__all__ = ["HeatModel", "build_network", "save_checkpoint", "load_checkpoint"]


@dataclass(eq=False)
class HeatModel:
    """A trained heat-map network and what it needs around it."""

    net: torch.nn.Module
    plugin: str
    kind: str  # "classifier" or "detector"
    config: dict[str, Any]
    mode: str  # "boxes" or "labels"
    classes: list[str]
    positive: str | None  # the boxed class ("boxes" mode)
    normalisation: dict[str, Any]
    spacing: tuple[float, float, float]
    patch: tuple[int, int, int]
    network: str = "unet"  # "unet" (heat maps) or "densenet121" (labels alone, one logit per class)
    metrics: dict[str, Any] = field(default_factory=dict)
    data: list[dict[str, str]] = field(default_factory=list)
    device: str = "cpu"

    @property
    def out_channels(self) -> int:
        return 1 if self.mode == "boxes" else len(self.classes)


NETWORKS = ("unet", "densenet121")


def build_network(out_channels: int, cfg: Any, network: str = "unet") -> torch.nn.Module:
    """MONAI's UNet (channels base·2^l, stride-2 downsampling, residual units, instance norm), or
    with ``network="densenet121"`` MONAI's DenseNet121 at a small width (``init_features``
    base·2, growth ``base``, bottleneck 2: 0.4 M parameters at base 8, against 11 M at MONAI's
    defaults) for labels alone."""
    if network == "densenet121":
        from monai.networks.nets import DenseNet121

        base = int(cfg["base_channels"])
        return DenseNet121(spatial_dims=3, in_channels=1, out_channels=out_channels, init_features=2 * base,
                           growth_rate=base, bn_size=2)
    from monai.networks.nets import UNet

    levels, base = int(cfg["levels"]), int(cfg["base_channels"])
    return UNet(spatial_dims=3, in_channels=1, out_channels=out_channels,
                channels=tuple(base * 2**i for i in range(levels)), strides=(2,) * (levels - 1),
                num_res_units=int(cfg["res_units"]), norm="instance")


def save_checkpoint(model: HeatModel, directory: str | os.PathLike, weights: Any = None) -> Path:
    """Write ``model`` into ``directory``; ``weights``: a state dict to store instead of the
    network's own (the best so far, while training goes on)."""
    cfg = {"format": FORMAT, "version": 1, "plugin": model.plugin, "kind": model.kind, "config": model.config,
           "mode": model.mode, "classes": model.classes, "positive": model.positive,
           "normalisation": model.normalisation, "spacing": list(model.spacing), "patch": list(model.patch),
           "network": model.network, "metrics": model.metrics, "training_data": model.data}
    return write_checkpoint(directory, model.net if weights is None else weights, cfg, metadata={"format": FORMAT})


def _classes_problem(v: Any) -> str | None:
    if not isinstance(v, list) or not 2 <= len(v) <= 1000 or not all(isinstance(c, str) and c for c in v):
        return "must be a list of 2 to 1000 class names"
    return None if len(set(v)) == len(v) else "class names must be distinct"


_SCHEMA = {
    "format": of_type(str), "version": lambda v: None if v == 1 and type(v) is int else f"must be 1, got {v!r}",
    "plugin": of_type(str), "kind": lambda v: None if v in ("classifier", "detector") else f"not a kind: {v!r}",
    "config": of_type(dict), "mode": lambda v: None if v in ("boxes", "labels") else f"must be boxes or labels, got {v!r}",
    "classes": _classes_problem, "positive": lambda v: None if v is None or isinstance(v, str) else "must be a name",
    "normalisation": nested({"mode": lambda v: None if v in ("ct", "mr") else f"must be ct or mr, got {v!r}",
                             **{k: lambda v: numbers(1, Range(-1e12, 1e12))([v]) for k in
                                ("clip_low", "clip_high", "mean", "std")}}),
    "spacing": numbers(3, Range(0.1, 100.0)), "patch": numbers(3, Range(16, 128), integer=True),
    "network": lambda v: None if v in NETWORKS else f"must be one of {', '.join(NETWORKS)}, got {v!r}",
    "metrics": of_type(dict), "training_data": of_type(list), "weights_sha256": of_type(str),
}


def load_checkpoint(directory: str | os.PathLike, device: str, config_cls: type, kind: str) -> HeatModel:
    """Read a checkpoint folder, every field checked before the network is built, the weights
    as :func:`viewer.plugins.checkpoint.load_weights` checks them; LoadError (one line) else."""
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not directory.is_dir():
        raise LoadError(directory, "a checkpoint is a folder with model.safetensors and config.json")
    if not cfg_path.exists():
        raise LoadError(directory, "not a Lucid3D checkpoint (config.json missing)")
    cfg = read_checkpoint_json(cfg_path)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise LoadError(directory, "not a heat-map checkpoint")
    try:
        check_json_object(cfg, _SCHEMA)
        if cfg["kind"] != kind:
            raise ValueError(f"kind: a {cfg['kind']}'s checkpoint, not a {kind}'s")
        if cfg["network"] != "unet" and cfg["mode"] != "labels":
            raise ValueError(f"mode: a {cfg['network']} learns from labels alone")
        if cfg["mode"] == "boxes" and cfg["positive"] not in cfg["classes"]:
            raise ValueError("positive: not one of the classes")
        config = config_from_dict(config_cls, cfg["config"])
        if any(p % 2 ** (config.levels - 1) for p in cfg["patch"]):
            raise ValueError(f"patch: {cfg['patch']} does not suit {config.levels} levels")
    except (ValueError, TypeError) as exc:
        raise LoadError(cfg_path, " ".join(str(exc).split())) from None
    out = 1 if cfg["mode"] == "boxes" else len(cfg["classes"])
    net = load_weights(directory, cfg, lambda: build_network(out, cfg["config"], cfg["network"]), device)
    return HeatModel(net=net, plugin=cfg["plugin"], kind=cfg["kind"], config=cfg["config"], mode=cfg["mode"],
                     classes=list(cfg["classes"]), positive=cfg["positive"], normalisation=cfg["normalisation"],
                     spacing=tuple(cfg["spacing"]), patch=tuple(cfg["patch"]), network=cfg["network"],
                     metrics=cfg["metrics"],
                     data=cfg["training_data"], device=device)
