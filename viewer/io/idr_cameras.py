"""IDR / NeuS scene folders: ``cameras.npz`` (or NeuS's ``cameras_sphere.npz``) with ``image/``
and ``mask/`` folders, the layout of IDR's DTU and BlendedMVS data::

    SCENE/cameras.npz        world_mat_0, scale_mat_0, world_mat_1, ...
    SCENE/image/000000.png   the photos, in name order: image i is camera i
    SCENE/mask/000000.png    the masks (optional), in name order, one per photo

``world_mat_i`` is the 3x4 (or 4x4) projection K [R | t] of camera i in the world frame; it is
decomposed without OpenCV (an RQ decomposition in numpy) into the intrinsics and the pose.
OpenCV's pixel coordinates put pixel centres on whole numbers; :class:`Camera`'s on halves, so
``cx = K[0, 2] + 0.5``. ``scale_mat_i`` maps IDR's normalised frame (the object inside the unit
sphere) to the world: world = ``scale_mat @ x``; the first one is kept as
``meta["normalization"]`` = {"center", "scale"} (a uniform scale and a shift). Splits, as for
COLMAP: every :data:`~viewer.io.colmap.LLFF_HOLD`-th photo, from the first, is "test".

:func:`save_idr_cameras` writes the same file (atomically) from cameras.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..model.camera import Camera
from ..model.errors import LoadError
from ..model.viewset import Frame, ViewSet
from .colmap import LLFF_HOLD
from .common import atomic_path, require_regular_file
from .photos import IMAGE_EXTS, check_pixel_budget, image_size, read_mask, read_rgba

__all__ = ["CAMERA_FILES", "idr_camera_file", "load_idr", "decompose_projection", "save_idr_cameras",
           "compose_projection"]

CAMERA_FILES = ("cameras.npz", "cameras_sphere.npz")
IMAGE_DIRS, MASK_DIRS = ("image", "images", "rgb"), ("mask", "masks")
MAX_ENTRY_BYTES = 4096  # a 4x4 float64 matrix is 128 bytes (+ its npy header)
MAX_ENTRIES = 400_000


def idr_camera_file(folder: Path) -> Path | None:
    """The folder's cameras.npz (or cameras_sphere.npz) when it has an image folder beside it."""
    if not any((folder / d).is_dir() for d in IMAGE_DIRS):
        return None
    return next((folder / n for n in CAMERA_FILES if (folder / n).is_file()), None)


def _rq(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper-triangular K, orthogonal R) with m = K R, K's diagonal positive."""
    flip = np.eye(3)[::-1]
    q, r = np.linalg.qr((flip @ m).T)
    k = flip @ r.T @ flip
    rot = flip @ q.T
    s = np.diag(np.sign(np.diag(k)))
    return k @ s, s @ rot


def decompose_projection(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3) with K[2, 2] = 1, camera-to-world (4, 4), OpenCV axes) of a 3x4 projection.

    Raises ValueError for a matrix that is not a finite projection with an invertible left 3x3.
    """
    p = np.asarray(p, float)[:3, :4]
    if not np.all(np.isfinite(p)):
        raise ValueError("has NaN or infinite values")
    m = p[:, :3]
    if abs(np.linalg.det(m)) < 1e-12 * max(1.0, np.abs(m).max()) ** 3:
        raise ValueError("is not a camera projection (its left 3x3 is singular)")
    if np.linalg.det(m) < 0:  # P and -P are the same camera; K R must have det R = +1
        p, m = -p, -m
    k, rot = _rq(m)
    centre = -np.linalg.solve(m, p[:, 3])
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = rot.T, centre
    return k / k[2, 2], c2w


def compose_projection(camera: Camera) -> np.ndarray:
    """The (4, 4) world_mat IDR stores for ``camera`` (OpenCV pixel centres on whole numbers)."""
    k = np.array([[camera.fx, 0, camera.cx - 0.5], [0, camera.fy, camera.cy - 0.5], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :4] = k @ camera.w2c[:3, :4]
    return out


def save_idr_cameras(path: str | Path, cameras: Sequence[Camera], center: Sequence[float] = (0, 0, 0),
                     scale: float = 1.0) -> Path:
    """Write ``cameras.npz`` (world_mat_i, scale_mat_i for each camera) atomically."""
    s = np.eye(4)
    s[:3, :3] *= float(scale)
    s[:3, 3] = np.asarray(center, float)
    arrays = {}
    for i, cam in enumerate(cameras):
        arrays[f"world_mat_{i}"] = compose_projection(cam)
        arrays[f"scale_mat_{i}"] = s
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The small float matrices of a cameras.npz; member sizes checked before anything is read."""
    require_regular_file(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_ENTRIES:
                raise ValueError(f"{len(infos)} entries")
            big = [i.filename for i in infos if i.file_size > MAX_ENTRY_BYTES]
            if big:
                raise ValueError(f"{big[0]} is {next(i.file_size for i in infos if i.filename == big[0])} bytes, "
                                 "not a camera matrix")
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise LoadError(path, f"unreadable cameras file ({' '.join(str(exc).split())[:200]})") from None


def _matrix(arrays: dict, key: str, path: Path) -> np.ndarray:
    a = arrays[key]
    if a.dtype.kind not in "fiu" or a.shape not in ((3, 4), (4, 4)):
        raise LoadError(path, f"{key} is not a 3x4 or 4x4 matrix of numbers ({a.dtype}{list(a.shape)})")
    a = a.astype(float)
    if not np.all(np.isfinite(a)):
        raise LoadError(path, f"{key} has NaN or infinite values")
    return a


def _files(folder: Path, names: tuple[str, ...]) -> tuple[Path | None, list[Path]]:
    d = next((folder / n for n in names if (folder / n).is_dir()), None)
    if d is None:
        return None, []
    files = sorted(p for p in d.iterdir() if p.suffix in IMAGE_EXTS and not p.name.startswith("."))
    for p in files:
        require_regular_file(p, folder, "image")
    return d, files


def _normalization(arrays: dict, path: Path) -> dict | None:
    if "scale_mat_0" not in arrays:
        return None
    s = _matrix(arrays, "scale_mat_0", path)
    scale = float(np.mean(np.diag(s[:3, :3])))
    if scale <= 0 or not np.allclose(s[:3, :3], scale * np.eye(3), rtol=1e-4, atol=1e-9 * scale):
        raise LoadError(path, "scale_mat_0 is not a uniform scale and a shift")
    return {"center": [float(v) for v in s[:3, 3]], "scale": scale}


def _camera(arrays: dict, i: int, w: int, h: int, name: str, path: Path) -> Camera:
    key = f"world_mat_{i}"
    if key not in arrays:
        raise LoadError(path, f"has no {key} for photo {name} (photo {i} in name order)")
    try:
        k, c2w = decompose_projection(_matrix(arrays, key, path))
    except ValueError as exc:
        raise LoadError(path, f"{key} {exc}") from None
    if abs(k[0, 1]) > 1e-3 * k[0, 0]:
        raise LoadError(path, f"{key} has a skewed pixel grid (K[0, 1] = {k[0, 1]:.3g}): not supported")
    return Camera(k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5, w, h, c2w, name=name)


def load_idr(folder: Path, npz: Path) -> ViewSet:
    """The photo set of an IDR/NeuS folder (see the module docstring); LoadError, one line."""
    arrays = _read_npz(npz)
    img_dir, images = _files(folder, IMAGE_DIRS)
    if not images:
        raise LoadError(folder, f"no photos in {img_dir or folder / 'image'}")
    mask_dir, masks = _files(folder, MASK_DIRS)
    if mask_dir is not None and len(masks) != len(images):
        raise LoadError(mask_dir, f"holds {len(masks)} masks for {len(images)} photos (one per photo, in name order)")
    sizes = [image_size(p, folder) for p in images]
    check_pixel_budget(folder, [(w, h, 4) for w, h in sizes] + [(w, h, 1) for w, h in sizes[:len(masks)]])
    frames = []
    for i, (p, (w, h)) in enumerate(zip(images, sizes)):
        cam = _camera(arrays, i, w, h, p.name, npz)
        rgba = read_rgba(p, owner=folder)
        mask = None
        if masks:
            mask = read_mask(masks[i], folder)
            if mask.shape != (h, w):
                raise LoadError(masks[i], f"is {mask.shape[1]}x{mask.shape[0]} but photo {p.name} is {w}x{h}")
        frames.append(Frame(cam, rgba, name=p.name, split="test" if i % LLFF_HOLD == 0 else "train", mask=mask))
    meta = {"format": "idr", "cameras": str(npz), "split_rule": f"every {LLFF_HOLD}th photo by name is test",
            "normalization": _normalization(arrays, npz)}
    return ViewSet(frames, name=folder.name, source=str(folder), meta=meta)
