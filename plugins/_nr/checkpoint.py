"""Renderer checkpoints: a folder ``CKPT/`` with ``mesh.npz``, ``model.safetensors`` and
``config.json``; the weights and the config are written and read by :mod:`viewer.plugins.checkpoint`
(atomic, hash-checked, safetensors only), the mesh here.

config.json (``"format": "lucid3d-renderer"``) holds the plugin and its Config, the background
colour, the training size, the metrics, orbit defaults, the mesh's source path and SHA-256, and
the SHA-256 of the stored mesh arrays and of the weights file. The mesh (points, faces, uv: what
the rasterizer needs) sits inside the folder, so a checkpoint renders with nothing else. A point
renderer's checkpoint holds ``points.npz`` (points float64, colours uint8 when the cloud has them)
and a ``points`` entry in place of the mesh. Files are written mesh, weights, config: the config names the others' hashes, so a crash never leaves
a set that loads as if whole.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from viewer.io.common import atomic_path, require_regular_file
from viewer.model.errors import LoadError
from viewer.model.geometry import Mesh, PointCloud
from viewer.plugins import (Range, check_json_object, config_from_dict, nested, numbers, of_type,
                            read_checkpoint_json)
from viewer.plugins.checkpoint import load_weights, write_checkpoint

from .model import NRModel
from .plugin import FORMAT

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "read_config", "mesh_digest", "points_digest",
           "read_checked_config", "check_mesh_file", "check_npz_file", "read_cached_mesh", "MAX_CLOUD_POINTS"]

MAX_MESH_POINTS = 50_000_000  # a checkpoint's stored mesh, before any of it is read
MAX_CLOUD_POINTS = 20_000_000  # a point renderer's cloud (what fitting accepts)


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


def points_digest(cloud: PointCloud) -> str:
    """SHA-256 of what a point renderer uses: points float64 and, when present, colours uint8."""
    h = hashlib.sha256()
    arrays = [np.asarray(cloud.points, np.float64)] + ([np.asarray(cloud.colors, np.uint8)]
                                                       if cloud.colors is not None else [])
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _save_points(cloud: PointCloud, path: Path) -> None:
    arrays = {"points": np.asarray(cloud.points, np.float64)}
    if cloud.colors is not None:
        arrays["colors"] = np.asarray(cloud.colors, np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _geometry_entry(model: NRModel, directory: Path) -> tuple[str, dict[str, Any]]:
    """("mesh"|"points", its config.json entry), writing the geometry file when it changed."""
    kind = "mesh" if model.points is None else "points"
    geo = model.mesh if kind == "mesh" else model.points
    digest = model.meta.get(f"{kind}_sha256") or (mesh_digest if kind == "mesh" else points_digest)(geo)
    file = directory / f"{kind}.npz"
    old = read_config(directory, quiet=True)
    if not file.is_file() or ((old or {}).get(kind) or {}).get("sha256") != digest:
        (_save_mesh if kind == "mesh" else _save_points)(geo, file)
    entry = {"file": file.name, "sha256": digest, "n_points": geo.n_points,
             "source": model.meta.get(f"{kind}_source"), "source_sha256": model.meta.get(f"{kind}_source_sha256")}
    if kind == "mesh":
        entry["n_faces"] = geo.n_faces
    else:
        entry["colors"] = geo.colors is not None
    return kind, entry


def save_checkpoint(model: NRModel, directory: str | os.PathLike,
                    state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` into ``directory`` (made if missing); the mesh (or point cloud) only when
    it changed.

    ``state`` : weights to store instead of the network's current ones (the best so far).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind, entry = _geometry_entry(model, directory)
    cfg = {
        "format": FORMAT, "version": 1, "plugin": model.plugin, "config": model.config,
        "background": [float(c) for c in model.background], "train_size": list(model.train_size),
        kind: entry, "orbit": model.meta.get("orbit"), "scene": model.meta.get("scene"), "metrics": model.metrics,
    }
    return write_checkpoint(directory, model.net if state is None else state, cfg,
                            metadata={"format": FORMAT, "plugin": model.plugin})


def read_config(directory: str | os.PathLike, quiet: bool = False) -> dict[str, Any] | None:
    """The checkpoint's config.json; LoadError (None if ``quiet``) for a folder that is not one."""
    directory = Path(directory)
    try:
        cfg = read_checkpoint_json(directory / "config.json")
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise ValueError("not a renderer checkpoint")
        return cfg
    except (LoadError, ValueError):
        if quiet:
            return None
        raise LoadError(directory, "not a Lucid3D renderer checkpoint (a folder with config.json, "
                                   "model.safetensors and mesh.npz)") from None


def _plain_name(v: Any) -> str | None:
    if not isinstance(v, str) or not v or "/" in v or "\\" in v or v in (".", ".."):
        return f"must be a file name inside the checkpoint, got {v!r}"[:200]
    return None


def _orbit_problem(v: Any) -> str | None:
    if v is None:
        return None
    problem = _ORBIT(v)
    if problem is None and "up" in v and not any(v["up"]):
        return ".up: must not be zero"
    return problem


def _number(bound: Range) -> Callable[[Any], str | None]:
    return lambda v: of_type(int, float)(v) or bound.problem(float(v))


_COUNT = Range(1, MAX_MESH_POINTS)
_MESH = nested({"file": _plain_name, "sha256": of_type(str), "n_points": lambda v: of_type(int)(v) or _COUNT.problem(v),
                "n_faces": lambda v: of_type(int)(v) or _COUNT.problem(v), "source": of_type(str, type(None)),
                "source_sha256": of_type(str, type(None))}, optional=("source", "source_sha256"))
_FINITE = Range(-math.inf, math.inf)  # world coordinates: any unit (the globe is in metres), but finite
_ORBIT = nested({"center": numbers(3, _FINITE), "radius": _number(Range(0, math.inf, lo_open=True)),
                 "elevation": _number(Range(-90, 90)), "view_angle": _number(Range(0, 180, lo_open=True, hi_open=True)),
                 "up": numbers(3, _FINITE)}, optional=("center", "radius", "elevation", "view_angle", "up"))


_POINT_COUNT = Range(1, MAX_CLOUD_POINTS)
_POINTS = nested({"file": _plain_name, "sha256": of_type(str),
                  "n_points": lambda v: of_type(int)(v) or _POINT_COUNT.problem(v), "colors": of_type(bool),
                  "source": of_type(str, type(None)), "source_sha256": of_type(str, type(None))},
                 optional=("source", "source_sha256"))


_SCHEMA = {
    "format": of_type(str), "version": lambda v: None if v == 1 and v is not True else f"must be 1, got {v!r}",
    "plugin": of_type(str), "config": of_type(dict), "background": numbers(3, Range(0, 1)),
    "train_size": numbers(2, Range(0, 65536), integer=True), "mesh": _MESH, "points": _POINTS,
    "orbit": _orbit_problem, "scene": of_type(str, type(None)), "metrics": of_type(dict),
    "weights_sha256": of_type(str),
}
_OPTIONAL = ("version", "background", "train_size", "orbit", "scene", "metrics", "mesh", "points")


def read_checked_config(directory: Path) -> dict[str, Any]:
    """config.json of a renderer checkpoint with every field checked (its plugin's Config too);
    LoadError naming the file."""
    from viewer.plugins import PluginError, get_plugin

    cfg = read_config(directory)
    cfg_path = directory / "config.json"
    try:
        check_json_object(cfg, _SCHEMA, optional=_OPTIONAL)
        if ("mesh" in cfg) == ("points" in cfg):
            raise ValueError("names neither a mesh nor a point cloud (or both)")
        try:
            plugin = get_plugin(cfg["plugin"], "renderer")
        except PluginError as exc:
            raise ValueError(f"plugin: {exc}") from None
        config_from_dict(plugin.Config, cfg["config"])
    except (ValueError, TypeError) as exc:
        raise LoadError(cfg_path, " ".join(str(exc).split())) from None
    return cfg


def check_mesh_file(path: Path, n_points: int, n_faces: int) -> None:
    """The npy headers inside mesh.npz against the config's counts, before any array is read
    (a small deflated member can expand to gigabytes)."""
    check_npz_file(path, {"points.npy": ((n_points, 3), np.float64), "faces.npy": ((n_faces, 3), np.int64),
                          "uv.npy": ((n_points, 2), np.float32)}, "mesh")


def check_npz_file(path: Path, want: dict[str, tuple[tuple[int, ...], Any]], what: str) -> None:
    """The npy headers inside an .npz against the shapes and dtypes ``want`` (member -> (shape,
    dtype)), before any array is read; LoadError ``unreadable WHAT (...)``."""
    import zipfile

    require_regular_file(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = {i.filename: i for i in z.infolist()}
            if set(infos) != set(want):
                raise ValueError(f"holds {sorted(infos)}, not {', '.join(sorted(want))}")
            for name, (shape, dtype) in want.items():
                with z.open(infos[name]) as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    got_shape, fortran, got_dtype = reader(fh)
                if got_shape != shape or got_dtype != np.dtype(dtype):
                    raise ValueError(f"{name} is {got_dtype}{list(got_shape)}, the config says {np.dtype(dtype)}{list(shape)}")
                if infos[name].file_size > int(np.prod(shape)) * np.dtype(dtype).itemsize + 4096:
                    raise ValueError(f"{name} is larger than its header says")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise LoadError(path, f"unreadable {what} ({' '.join(str(exc).split())[:200]})") from None


def _read_points(directory: Path, cfg: dict[str, Any]) -> PointCloud:
    """The checkpoint's point cloud, checked against the config (npy headers, then the digest)."""
    entry = cfg["points"]
    file = directory / entry["file"]
    if not file.exists() and not file.is_symlink():
        raise LoadError(file, "missing: the checkpoint is incomplete")
    n = entry["n_points"]
    want = {"points.npy": ((n, 3), np.float64)}
    if entry["colors"]:
        want["colors.npy"] = ((n, 3), np.uint8)
    check_npz_file(file, want, "point cloud")
    try:
        with np.load(file, allow_pickle=False) as z:
            cloud = PointCloud(z["points"], z["colors"] if entry["colors"] else None)
    except Exception as exc:  # zip, key and shape errors alike
        raise LoadError(file, f"unreadable point cloud ({' '.join(str(exc).split())})") from None
    if points_digest(cloud) != entry["sha256"]:
        raise LoadError(file, "the point cloud does not belong to this config")
    if not np.all(np.isfinite(cloud.points)):
        raise LoadError(file, "the point cloud has non-finite points")
    return cloud


def _read_mesh(directory: Path, cfg: dict[str, Any]) -> Mesh:
    """The checkpoint's mesh, checked against the config (counts in the npy headers before any
    array is read, then the arrays' digest and the face indices)."""
    mesh_file = directory / cfg["mesh"]["file"]
    if not mesh_file.exists() and not mesh_file.is_symlink():
        raise LoadError(mesh_file, "missing: the checkpoint is incomplete")
    check_mesh_file(mesh_file, cfg["mesh"]["n_points"], cfg["mesh"]["n_faces"])
    try:
        with np.load(mesh_file, allow_pickle=False) as z:
            mesh = Mesh(z["points"], z["faces"], uv=z["uv"])
    except Exception as exc:  # zip, key and shape errors alike
        raise LoadError(mesh_file, f"unreadable mesh ({' '.join(str(exc).split())})") from None
    if mesh_digest(mesh) != cfg["mesh"].get("sha256"):
        raise LoadError(mesh_file, "the mesh does not belong to this config")
    faces = np.asarray(mesh.faces)
    if faces.size and (faces.min() < 0 or faces.max() >= mesh.n_points) or not np.all(np.isfinite(mesh.points)):
        raise LoadError(mesh_file, "the mesh has faces out of range or non-finite points")
    return mesh


def read_cached_mesh(directory: str | os.PathLike, source_sha256: str | None) -> Mesh | None:
    """The parametrized mesh an earlier fit into ``directory`` stored, if it was made from the mesh
    file of this SHA-256; None otherwise (no checkpoint there, another mesh, anything unreadable:
    it is just computed again)."""
    directory = Path(directory)
    if not source_sha256 or not directory.is_dir():
        return None
    try:
        cfg = read_checked_config(directory)
        if (cfg.get("mesh") or {}).get("source_sha256") != source_sha256:
            return None
        return _read_mesh(directory, cfg)
    except LoadError:
        return None


def load_checkpoint(directory: str | os.PathLike, build: Callable[[dict], torch.nn.Module],
                    device: str = "cpu") -> NRModel:
    """Read a checkpoint folder; ``build(config_dict)`` makes the empty network.

    Before anything is built: every field of config.json is checked (types, bounds, the plugin's
    Config.validate()), the mesh (:func:`check_mesh_file`, its digest), then the weights as
    :func:`viewer.plugins.checkpoint.load_weights` checks them. Raises LoadError (one line,
    naming the file) for a folder that is not ours, an edited or damaged config, a damaged or
    altered weights or mesh file, or weights that do not fit the network the config describes.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LoadError(directory, "a renderer checkpoint is a folder (config.json, model.safetensors, mesh.npz)")
    cfg = read_checked_config(directory)
    kind = "mesh" if "mesh" in cfg else "points"
    mesh = _read_mesh(directory, cfg) if kind == "mesh" else None
    points = _read_points(directory, cfg) if kind == "points" else None
    net = load_weights(directory, cfg, lambda: build(dict(cfg.get("config", {}))), device)
    if device == "cpu":
        net.to(memory_format=torch.channels_last)  # as fitted: the same kernels, the same pixels
    meta = {f"{kind}_source": cfg[kind].get("source"), f"{kind}_source_sha256": cfg[kind].get("source_sha256"),
            f"{kind}_sha256": cfg[kind]["sha256"], "orbit": cfg.get("orbit"), "scene": cfg.get("scene")}
    return NRModel(net=net, plugin=cfg["plugin"], config=cfg.get("config", {}), mesh=mesh,
                   background=tuple(float(c) for c in cfg.get("background", (1, 1, 1))),
                   train_size=tuple(cfg.get("train_size", (0, 0))), metrics=cfg.get("metrics", {}),
                   meta=meta, device=device, points=points)
