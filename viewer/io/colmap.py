"""COLMAP models, text (``cameras.txt``, ``images.txt``, ``points3D.txt``) or binary (``.bin``,
what COLMAP writes by default) -> a :class:`~viewer.model.viewset.ViewSet`, for
:func:`viewer.io.photosets.load_viewset`; ``points3D`` alone as a coloured
:class:`~viewer.model.geometry.PointCloud` (:func:`load_colmap_points`).

Only PINHOLE and SIMPLE_PINHOLE cameras (no undistortion is offered: any other model is one line
naming it). COLMAP has no splits: images are sorted by name and every :data:`LLFF_HOLD`-th one,
starting with the first, is "test" (the LLFF convention).

Binary layouts (little-endian, as COLMAP's ``read_write_model`` reads them): ``cameras.bin`` =
u64 count, then per camera i32 id, i32 model id, u64 width, u64 height, f64 params (as many as
the model has); ``images.bin`` = u64 count, then per image i32 id, f64 qw qx qy qz, f64 tx ty tz,
i32 camera id, the name NUL-terminated, u64 n, n x (f64 x, f64 y, i64 point id);
``points3D.bin`` = u64 count, then per point u64 id, f64 x y z, u8 r g b, f64 error, u64 n,
n x (i32 image id, i32 point2D index). Every count is checked against the bytes the file holds
before anything is allocated, and a file must end where its records do.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Iterable

import numpy as np

from ..model.camera import Camera
from ..model.errors import LoadError
from ..model.geometry import PointCloud
from ..model.viewset import Frame, ViewSet
from .common import check_claim_fits_file, note_outside_file
from .photos import check_pixel_budget, image_size, read_rgba

__all__ = ["load_colmap", "load_colmap_points", "colmap_dir", "LLFF_HOLD", "CAMERA_MODELS"]

LLFF_HOLD = 8
"""COLMAP scenes: every ``LLFF_HOLD``-th image (by name, from the first) is a test image."""
_COLMAP_MODELS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4}
CAMERA_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
"""COLMAP's camera model ids (binary models): name and number of parameters."""
MAX_NAME = 4096  # bytes of an image name in images.bin


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
        _check_model(path, cid, model)
        if len(params) != _COLMAP_MODELS[model] or not all(map(math.isfinite, params)):
            raise LoadError(path, f"line {n}: {model} needs {_COLMAP_MODELS[model]} finite parameters")
        cams[cid] = (model, w, h, params)
    if not cams:
        raise LoadError(path, "no cameras")
    return cams


def _check_model(path: Path, cid: int, model: str) -> None:
    if model not in _COLMAP_MODELS:
        raise LoadError(path, f"camera {cid} uses the {model} model; only PINHOLE and SIMPLE_PINHOLE "
                              "are supported (undistort with `colmap image_undistorter` first)")


def _check_pose(path: Path, where: str, q: np.ndarray, t: np.ndarray, name: str) -> None:
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise LoadError(path, f"{where}: the pose of {name} has NaN or infinite values")
    if np.linalg.norm(q) < 1e-6:
        raise LoadError(path, f"{where}: the pose of {name} is not invertible (zero quaternion)")


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
        _check_pose(path, f"line {n}", q, t, name)
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
    both = [e for e in (".txt", ".bin") if all((model / f"{f}{e}").is_file() for f in ("cameras", "images"))]
    if not both:
        ext = ".bin" if any((model / f"{f}.bin").is_file() for f in ("cameras", "images")) else ".txt"
        missing = [f"{f}{ext}" for f in ("cameras", "images") if not (model / f"{f}{ext}").is_file()]
        raise LoadError(model, f"the COLMAP model lacks {' and '.join(missing)}")
    ext = both[0]
    binary = ext == ".bin"
    cams = (_read_cameras_bin if binary else _read_colmap_cameras)(model / f"cameras{ext}")
    images = sorted((_read_images_bin if binary else _read_colmap_images)(model / f"images{ext}"),
                    key=lambda r: r[3])
    pfile = model / f"points3D{ext}"
    points = load_colmap_points(pfile, missing_ok=True) if pfile.is_file() else None
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
            raise LoadError(model / f"images{ext}", f"image {name} uses camera {cid}, which cameras{ext} lacks")
        img_path = next((d / name for d in dirs if ((d / name).exists() or (d / name).is_symlink())
                         and not (d / name).is_dir()), None)
        if img_path is None:
            raise LoadError(folder, f"image {name} not found in {root / 'images'}")
        w, h = image_size(img_path, folder)
        _, cw, ch, _ = cams[cid]
        if (cw, ch) != (w, h):
            raise LoadError(folder, f"image {name} is {w}x{h} but camera {cid} says {cw}x{ch}")
        note_outside_file(meta, root / f"images{ext}", img_path)  # outside the scene's folder?
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


def load_colmap_points(path: str | Path, missing_ok: bool = False) -> PointCloud | None:
    """A COLMAP ``points3D.txt`` or ``points3D.bin`` as a PointCloud with its colours (None for
    a model with no points if ``missing_ok``, else a LoadError)."""
    path = Path(path)
    cloud = _read_points_bin(path) if path.suffix.lower() == ".bin" else _read_colmap_points(path)
    if cloud is None and not missing_ok:
        raise LoadError(path, "the COLMAP model has no 3D points")
    return cloud


# -- binary models ---------------------------------------------------------------------------

class _Bin:
    """A binary model file's bytes and a cursor; every read checks the bytes are there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise LoadError(path, f"cannot read it ({exc.strerror or exc})") from None
        self.pos = 0

    def read(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise LoadError(self.path, f"truncated: {what} runs past the end of the file "
                                       f"({len(self.data)} bytes)")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def count(self, record_bytes: int, what: str) -> int:
        """The leading u64 count, refused if its records (at least ``record_bytes`` each) cannot fit."""
        (n,) = self.read("<Q", "the count")
        check_claim_fits_file(self.path, n * record_bytes, len(self.data) - self.pos,
                              what=f"the count of {n} {what}")
        return n

    def skip(self, n_bytes: int, what: str) -> None:
        if self.pos + n_bytes > len(self.data):
            raise LoadError(self.path, f"truncated: {what} runs past the end of the file ({len(self.data)} bytes)")
        self.pos += n_bytes

    def name(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos, self.pos + MAX_NAME)
        if end < 0:
            raise LoadError(self.path, f"truncated: {what} has no end (a name of at most {MAX_NAME} bytes)")
        raw, self.pos = self.data[self.pos:end], end + 1
        return raw.decode("utf-8", errors="replace")

    def done(self) -> None:
        if self.pos != len(self.data):
            raise LoadError(self.path, f"{len(self.data) - self.pos} bytes after the last record: "
                                       "the counts do not match the file")


def _read_cameras_bin(path: Path) -> dict[int, tuple[str, int, int, list[float]]]:
    f = _Bin(path)
    cams = {}
    for i in range(f.count(24 + 3 * 8, "cameras")):
        cid, mid, w, h = f.read("<iiQQ", f"camera {i + 1}")
        if mid not in CAMERA_MODELS:
            raise LoadError(path, f"camera {cid}: unknown camera model id {mid}")
        model, n_params = CAMERA_MODELS[mid]
        params = list(f.read(f"<{n_params}d", f"camera {cid}'s parameters"))
        _check_model(path, cid, model)
        if not all(map(math.isfinite, params)) or not (0 < w < 1 << 20 and 0 < h < 1 << 20):
            raise LoadError(path, f"camera {cid}: {model} needs finite parameters and a positive size")
        cams[cid] = (model, int(w), int(h), params)
    f.done()
    if not cams:
        raise LoadError(path, "no cameras")
    return cams


def _read_images_bin(path: Path) -> list[tuple[np.ndarray, np.ndarray, int, str]]:
    f = _Bin(path)
    out = []
    for i in range(f.count(4 + 56 + 4 + 1 + 8, "images")):
        iid, *vals, cid = f.read("<i7di", f"image {i + 1}")
        name = f.name(f"the name of image {iid}")
        (n2d,) = f.read("<Q", f"image {iid}'s point count")
        f.skip(n2d * 24, f"image {iid}'s {n2d} 2D points")
        if not name:
            raise LoadError(path, f"image {iid} has no name")
        q, t = np.array(vals[:4]), np.array(vals[4:])
        _check_pose(path, f"image {iid}", q, t, name)
        out.append((q, t, int(cid), name))
    f.done()
    if not out:
        raise LoadError(path, "no images")
    return out


_POINT = struct.Struct("<Q3d3BdQ")  # id, xyz, rgb, error, track length: 51 bytes


def _read_points_bin(path: Path) -> PointCloud | None:
    f = _Bin(path)
    n = f.count(_POINT.size, "3D points")
    starts = np.empty(n, np.int64)
    data, pos, end = f.data, f.pos, len(f.data)
    for i in range(n):  # tracks differ in length: find each record's start (the rest is numpy)
        if pos + _POINT.size > end:
            raise LoadError(path, f"truncated: 3D point {i + 1} of {n} runs past the end of the file ({end} bytes)")
        starts[i] = pos
        pos += _POINT.size + 8 * struct.unpack_from("<Q", data, pos + 43)[0]
    f.pos = pos
    if pos > end:
        raise LoadError(path, f"truncated: the track of 3D point {n} runs past the end of the file ({end} bytes)")
    f.done()
    if n == 0:
        return None
    buf = np.frombuffer(data, np.uint8)
    xyz = buf[starts[:, None] + np.arange(8, 32)].copy().view("<f8").reshape(n, 3)
    rgb = buf[starts[:, None] + np.arange(32, 35)]
    if not np.all(np.isfinite(xyz)):
        raise LoadError(path, "NaN or infinite point coordinates")
    return PointCloud(xyz.astype(np.float64), rgb.astype(np.uint8), name="points3D", source=str(path))
