"""Renderer checkpoints: a folder ``CKPT/`` with ``mesh.npz``, ``model.safetensors`` and
``config.json``, each written to a temporary file and renamed (``viewer.io.common.atomic_path``).

config.json (``"format": "lucid3d-renderer"``) holds the plugin and its Config, the background
colour, the training size, the metrics, orbit defaults, the mesh's source path and SHA-256, and
the SHA-256 of the stored mesh arrays and of the weights file. The mesh (points, faces, uv: what
the rasterizer needs) sits inside the folder, so a checkpoint renders with nothing else. Files
are written mesh, weights, config: the config names the others' hashes, so a crash never leaves
a set that loads as if whole. Weights are read with safetensors only (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from viewer.io.common import atomic_path
from viewer.model.errors import LoadError
from viewer.model.geometry import Mesh

from .model import NRModel

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "read_config", "mesh_digest", "sha256_file"]

FORMAT = "lucid3d-renderer"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def mesh_digest(mesh: Mesh) -> str:
    """SHA-256 of the arrays a rasterizer uses: points float64, faces int64, uv float32."""
    h = hashlib.sha256()
    for a in (np.asarray(mesh.points, np.float64), np.asarray(mesh.faces, np.int64),
              np.asarray(mesh.uv, np.float32)):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _save_mesh(mesh: Mesh, path: Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, points=np.asarray(mesh.points, np.float64), faces=np.asarray(mesh.faces, np.int64),
                     uv=np.asarray(mesh.uv, np.float32))


def save_checkpoint(model: NRModel, directory: str | os.PathLike,
                    state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` into ``directory`` (made if missing); the mesh only when it changed.

    ``state`` : weights to store instead of the network's current ones (the best so far).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = model.meta.get("mesh_sha256") or mesh_digest(model.mesh)
    mesh_file = directory / "mesh.npz"
    old = read_config(directory, quiet=True)
    if not mesh_file.is_file() or (old or {}).get("mesh", {}).get("sha256") != digest:
        _save_mesh(model.mesh, mesh_file)
    if state is None:
        net = model.net.module if hasattr(model.net, "module") else model.net
        state = net.state_dict()
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    weights = directory / "model.safetensors"
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "plugin": model.plugin})
    cfg = {
        "format": FORMAT, "version": 1, "plugin": model.plugin, "config": model.config,
        "background": [float(c) for c in model.background], "train_size": list(model.train_size),
        "mesh": {"file": "mesh.npz", "sha256": digest, "n_points": model.mesh.n_points,
                 "n_faces": model.mesh.n_faces, "source": model.meta.get("mesh_source"),
                 "source_sha256": model.meta.get("mesh_source_sha256")},
        "orbit": model.meta.get("orbit"), "scene": model.meta.get("scene"),
        "metrics": model.metrics, "weights_sha256": sha256_file(weights),
    }
    with atomic_path(directory / "config.json") as tmp:
        tmp.write_text(json.dumps(cfg, indent=1))
    return directory


def read_config(directory: str | os.PathLike, quiet: bool = False) -> dict[str, Any] | None:
    """The checkpoint's config.json; LoadError (None if ``quiet``) for a folder that is not one."""
    directory = Path(directory)
    try:
        cfg = json.loads((directory / "config.json").read_text())
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise ValueError("not a renderer checkpoint")
        return cfg
    except (OSError, UnicodeDecodeError, ValueError):
        if quiet:
            return None
        raise LoadError(directory, "not a Lucid3D renderer checkpoint (a folder with config.json, "
                                   "model.safetensors and mesh.npz)") from None


def load_checkpoint(directory: str | os.PathLike, build: Callable[[dict], torch.nn.Module],
                    device: str = "cpu") -> NRModel:
    """Read a checkpoint folder; ``build(config_dict)`` makes the empty network.

    Raises LoadError for a folder that is not ours, a damaged or altered weights or mesh file,
    or weights that do not fit the network the config describes.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LoadError(directory, "a renderer checkpoint is a folder (config.json, model.safetensors, mesh.npz)")
    cfg = read_config(directory)
    if not isinstance(cfg.get("mesh"), dict) or not isinstance(cfg.get("plugin"), str):
        raise LoadError(directory / "config.json", "the config names no mesh or plugin")
    weights, mesh_file = directory / "model.safetensors", directory / str(cfg.get("mesh", {}).get("file", "mesh.npz"))
    for f in (weights, mesh_file):
        if not f.is_file():
            raise LoadError(f, "missing: the checkpoint is incomplete")
    if cfg.get("weights_sha256") != sha256_file(weights):
        raise LoadError(weights, "the weights file is truncated or does not belong to this config")
    try:
        with np.load(mesh_file, allow_pickle=False) as z:
            mesh = Mesh(z["points"], z["faces"], uv=z["uv"])
    except Exception as exc:  # zip, key and shape errors alike
        raise LoadError(mesh_file, f"unreadable mesh ({' '.join(str(exc).split())})") from None
    if mesh_digest(mesh) != cfg["mesh"].get("sha256"):
        raise LoadError(mesh_file, "the mesh does not belong to this config")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise LoadError(weights, f"unreadable weights ({' '.join(str(exc).split())})") from None
    net = build(cfg.get("config", {}))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LoadError(weights, "the weights do not fit the network in config.json "
                                 f"({str(exc).splitlines()[0]})") from None
    net.to(device).eval()
    if device == "cpu":
        net.to(memory_format=torch.channels_last)  # as fitted: the same kernels, the same pixels
    meta = {"mesh_source": cfg["mesh"].get("source"), "mesh_source_sha256": cfg["mesh"].get("source_sha256"),
            "mesh_sha256": cfg["mesh"]["sha256"], "orbit": cfg.get("orbit"), "scene": cfg.get("scene")}
    return NRModel(net=net, plugin=cfg["plugin"], config=cfg.get("config", {}), mesh=mesh,
                   background=tuple(float(c) for c in cfg.get("background", (1, 1, 1))),
                   train_size=tuple(cfg.get("train_size", (0, 0))), metrics=cfg.get("metrics", {}),
                   meta=meta, device=device)
