"""COLMAP text models (``cameras.txt``, ``images.txt``, ``points3D.txt``) -> a
:class:`~viewer.model.viewset.ViewSet`, for :func:`viewer.io.photosets.load_viewset`.

Only PINHOLE and SIMPLE_PINHOLE cameras (no undistortion is offered); binary models are refused with
the command that converts them. COLMAP has no splits: images are sorted by name and every
:data:`LLFF_HOLD`-th one, starting with the first, is "test" (the LLFF convention).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from ..model.camera import Camera
from ..model.errors import LoadError
from ..model.geometry import PointCloud
from ..model.viewset import Frame, ViewSet
from .common import note_outside_file
from .photos import check_pixel_budget, image_size, read_rgba

__all__ = ["load_colmap", "colmap_dir", "LLFF_HOLD"]

LLFF_HOLD = 8
"""COLMAP scenes: every ``LLFF_HOLD``-th image (by name, from the first) is a test image."""
_COLMAP_MODELS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4}


def colmap_dir(folder: Path) -> Path | None:
    """The folder holding the COLMAP model: ``folder``, ``folder/sparse/0`` or ``folder/sparse``."""
    for d in (folder, folder / "sparse" / "0", folder / "sparse"):
        if any((d / f).is_file() for f in ("cameras.txt", "images.txt", "cameras.bin", "images.bin")):
            return d
    return None


def _data_lines(path: Path) -> Iterable[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LoadError(path, f"cannot read it ({exc.strerror or exc})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("#"):
            yield n, line


def _read_colmap_cameras(path: Path) -> dict[int, tuple[str, int, int, list[float]]]:
    cams = {}
    for n, line in _data_lines(path):
        tok = line.split()
        if not tok:
            continue
        try:
            cid, model, w, h = int(tok[0]), tok[1].upper(), int(tok[2]), int(tok[3])
            params = [float(t) for t in tok[4:]]
        except (ValueError, IndexError):
            raise LoadError(path, f"line {n}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...") from None
        if model not in _COLMAP_MODELS:
            raise LoadError(path, f"camera {cid} uses the {model} model; only PINHOLE and SIMPLE_PINHOLE "
                                  "are supported (undistort with `colmap image_undistorter` first)")
        if len(params) != _COLMAP_MODELS[model] or not all(map(math.isfinite, params)):
            raise LoadError(path, f"line {n}: {model} needs {_COLMAP_MODELS[model]} finite parameters")
        cams[cid] = (model, w, h, params)
    if not cams:
        raise LoadError(path, "no cameras")
    return cams


def _read_colmap_images(path: Path) -> list[tuple[np.ndarray, np.ndarray, int, str]]:
    """(qvec, tvec, camera_id, name) per image; each image line is followed by its 2D points line."""
    out = []
    lines = iter(_data_lines(path))
    for n, line in lines:
        tok = line.split()
        if not tok:
            continue
        try:
            vals = [float(t) for t in tok[1:8]]
            cid, name = int(tok[8]), " ".join(tok[9:])
            int(tok[0])
        except (ValueError, IndexError):
            raise LoadError(path, f"line {n}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME") from None
        if not name:
            raise LoadError(path, f"line {n}: the image has no name")
        next(lines, None)  # the POINTS2D line (may be empty)
        q, t = np.array(vals[:4]), np.array(vals[4:])
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
            raise LoadError(path, f"line {n}: the pose of {name} has NaN or infinite values")
        if np.linalg.norm(q) < 1e-6:
            raise LoadError(path, f"line {n}: the pose of {name} is not invertible (zero quaternion)")
        out.append((q, t, cid, name))
    if not out:
        raise LoadError(path, "no images")
    return out


def _read_colmap_points(path: Path) -> PointCloud | None:
    pts, cols = [], []
    for n, line in _data_lines(path):
        tok = line.split()
        if not tok:
            continue
        try:
            xyz, rgb = [float(t) for t in tok[1:4]], [int(t) for t in tok[4:7]]
            if len(xyz) != 3 or len(rgb) != 3:
                raise ValueError
        except ValueError:
            raise LoadError(path, f"line {n}: expected POINT3D_ID X Y Z R G B ERROR TRACK...") from None
        pts.append(xyz)
        cols.append(rgb)
    if not pts:
        return None
    return PointCloud(np.array(pts), np.clip(np.array(cols), 0, 255).astype(np.uint8), name="points3D",
                      source=str(path))


def load_colmap(folder: Path, model: Path) -> ViewSet:
    """The photo set of the COLMAP model in ``model`` (opened as ``folder``); images are looked
    for in the scene's ``images/``, the model's ``images/`` and the scene folder itself."""
    missing = [f for f in ("cameras.txt", "images.txt") if not (model / f).is_file()]
    if missing:
        if (model / "cameras.bin").is_file() or (model / "images.bin").is_file():
            raise LoadError(model, "binary COLMAP models are not supported: convert it with "
                                   "`colmap model_converter --output_type TXT`")
        raise LoadError(model, f"the COLMAP model lacks {' and '.join(missing)}")
    cams = _read_colmap_cameras(model / "cameras.txt")
    images = sorted(_read_colmap_images(model / "images.txt"), key=lambda r: r[3])
    points = _read_colmap_points(model / "points3D.txt") if (model / "points3D.txt").is_file() else None
    root = folder
    if model == folder and folder.name == "sparse":  # opened SCENE/sparse itself
        root = folder.parent
    elif model == folder and folder.parent.name == "sparse":  # opened SCENE/sparse/0 itself
        root = folder.parent.parent
    dirs = [d for d in (root / "images", model / "images", root) if d.is_dir()]
    meta: dict = {"format": "colmap", "model": str(model),
                  "split_rule": f"every {LLFF_HOLD}th image by name is test"}
    found = []  # (image path, width, height) from the headers: nothing decoded yet
    for q, t, cid, name in images:
        if cid not in cams:
            raise LoadError(model / "images.txt", f"image {name} uses camera {cid}, which cameras.txt lacks")
        img_path = next((d / name for d in dirs if ((d / name).exists() or (d / name).is_symlink())
                         and not (d / name).is_dir()), None)
        if img_path is None:
            raise LoadError(folder, f"image {name} not found in {root / 'images'}")
        w, h = image_size(img_path, folder)
        _, cw, ch, _ = cams[cid]
        if (cw, ch) != (w, h):
            raise LoadError(folder, f"image {name} is {w}x{h} but camera {cid} says {cw}x{ch}")
        note_outside_file(meta, root / "images.txt", img_path)  # outside the scene's folder?
        found.append((img_path, w, h))
    check_pixel_budget(folder, [(w, h, 4) for _, w, h in found])
    frames = []
    for i, ((q, t, cid, name), (img_path, w, h)) in enumerate(zip(images, found)):
        rgba = read_rgba(img_path, owner=folder)
        if rgba.shape[:2] != (h, w):  # the header and the pixels disagree: a corrupt file
            raise LoadError(folder, f"image {name}: its pixels are not the {w}x{h} its header says")
        kind, _, _, p = cams[cid]
        fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if kind == "SIMPLE_PINHOLE" else tuple(p)
        try:
            cam = Camera.from_colmap(q, t, fx, fy, cx, cy, w, h, name=Path(name).name)
        except ValueError as exc:
            raise LoadError(folder, f"image {name}: {exc}") from None
        split = "test" if i % LLFF_HOLD == 0 else "train"
        frames.append(Frame(cam, rgba, name=Path(name).name, split=split))
    return ViewSet(frames, points=points, name=root.name, source=str(folder), meta=meta)
