"""Posed photo collections -> :class:`~viewer.model.viewset.ViewSet`, and back to ``transforms.json``.

Formats read by :func:`load_viewset`:

* **transforms.json** (NeRF / instant-ngp / nerfstudio): a file, or a folder holding one.
  ``transform_matrix`` is camera-to-world with OpenGL camera axes (+x right, +y up, +z
  backwards); it becomes :class:`~viewer.model.camera.Camera`'s OpenCV c2w. Intrinsics come from
  ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` or ``camera_angle_x`` (+ ``camera_angle_y``),
  at the top level or per frame (a frame's own keys win); pixel coordinates are continuous
  with a centred principal point at ``w / 2`` (nerfstudio's and instant-ngp's convention).
* **Blender-style folders**: ``transforms_train.json``, ``transforms_val.json``,
  ``transforms_test.json`` -> the splits "train", "val", "test".
* **COLMAP text models**: ``cameras.txt``, ``images.txt`` (+ ``points3D.txt``) in the folder,
  ``sparse/0/`` or ``sparse/``; images in ``images/``. Only PINHOLE and SIMPLE_PINHOLE cameras
  (no undistortion is offered). COLMAP has no splits: images are sorted by name and every 8th
  one, starting with the first, is "test" (the LLFF convention); the rest are "train".
* **IDR / NeuS folders**: ``cameras.npz`` (``world_mat_i``, ``scale_mat_i``) with ``image/`` and
  ``mask/`` (:mod:`viewer.io.idr_cameras`).

Photos are opened only when they are regular files; every photo's size is read from its header
and the total checked against :func:`pixel_budget` before any is decoded; photos from outside
the scene's folder are listed in ``meta["outside_files"]``. Every bad input is a one-line
:class:`~viewer.model.errors.LoadError`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..model.camera import Camera
from ..model.errors import LoadError
from ..model.viewset import Frame, ViewSet
from .colmap import LLFF_HOLD, colmap_dir, load_colmap
from .common import atomic_path, note_outside_file, require_file
from .idr_cameras import CAMERA_FILES, idr_camera_file, load_idr
from .photos import IMAGE_EXTS, check_pixel_budget, find_image, image_size, pixel_budget, read_mask, read_rgba

# read_rgba, pixel_budget (photos.py) and LLFF_HOLD (colmap.py) are re-exported: callers import them from here
__all__ = ["load_viewset", "save_transforms", "is_viewset_path", "read_rgba", "pixel_budget", "LLFF_HOLD"]

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_PINHOLE_NAMES = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "PERSPECTIVE")
_BLENDER_FILE = re.compile(r"^transforms_(train|val|test)\.json$", re.IGNORECASE)


# -- what is a view set -------------------------------------------------------------------------

def _is_transforms_name(name: str) -> bool:
    low = name.lower()
    return low.startswith("transforms") and low.endswith(".json") and not low.endswith(".lucid3d.json")


def is_viewset_path(path: str | Path) -> bool:
    """True for a ``transforms*.json`` file, or a folder holding one or a COLMAP model."""
    path = Path(path)
    if path.is_dir():
        try:
            if any(_is_transforms_name(p.name) and p.is_file() for p in path.iterdir()):
                return True
        except OSError:
            return False
        return colmap_dir(path) is not None or idr_camera_file(path) is not None
    return _is_transforms_name(path.name)


# -- transforms.json --------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise LoadError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise LoadError(path, "not valid JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise LoadError(path, f"cannot read it ({exc.strerror or exc})") from None


def _number(d: dict, key: str, where: str, src: Path) -> float | None:
    if key not in d or d[key] is None:
        return None
    try:
        v = float(d[key])
    except (TypeError, ValueError):
        raise LoadError(src, f"{where}: {key} is not a number ({d[key]!r})") from None
    if not math.isfinite(v):
        raise LoadError(src, f"{where}: {key} is {v}")
    return v


def _intrinsics(d: dict, img_w: int, img_h: int, where: str, src: Path, image: str) -> tuple:
    """(fx, fy, cx, cy) in pixels from the merged top-level and frame keys; sizes checked."""
    num = {k: _number(d, k, where, src) for k in ("w", "h", "fl_x", "fl_y", "cx", "cy",
                                                  "camera_angle_x", "camera_angle_y", *_DISTORTION_KEYS)}
    w, h = num["w"], num["h"]
    if (w is not None and int(round(w)) != img_w) or (h is not None and int(round(h)) != img_h):
        raise LoadError(src, f"{where}: image {image} is {img_w}x{img_h} but the intrinsics say "
                             f"w={w if w is None else int(w)}, h={h if h is None else int(h)}")
    model = str(d.get("camera_model", "PINHOLE")).upper()
    if model not in _PINHOLE_NAMES:
        raise LoadError(src, f"{where}: camera_model {model} is not a pinhole camera (not supported)")
    bent = {k: num[k] for k in _DISTORTION_KEYS if num[k]}
    if bent:
        listed = ", ".join(f"{k}={v:g}" for k, v in bent.items())
        raise LoadError(src, f"{where}: the camera has lens distortion ({listed}); undistort the images "
                             "first (undistortion is not offered)")

    def from_angle(angle: float | None, size: int) -> float | None:
        if angle is None:
            return None
        if not 0 < angle < math.pi:
            raise LoadError(src, f"{where}: camera angle {angle} is not between 0 and pi radians")
        return 0.5 * size / math.tan(0.5 * angle)

    fx = num["fl_x"] if num["fl_x"] is not None else from_angle(num["camera_angle_x"], img_w)
    fy = num["fl_y"] if num["fl_y"] is not None else from_angle(num["camera_angle_y"], img_h)
    if fx is None and fy is None:
        raise LoadError(src, f"{where}: no focal length (camera_angle_x or fl_x)")
    fx, fy = (fx if fx is not None else fy), (fy if fy is not None else fx)
    if fx <= 0 or fy <= 0:
        raise LoadError(src, f"{where}: focal length must be positive (fl_x={fx:g}, fl_y={fy:g})")
    cx = num["cx"] if num["cx"] is not None else img_w / 2.0
    cy = num["cy"] if num["cy"] is not None else img_h / 2.0
    if not (0.0 <= cx <= img_w and 0.0 <= cy <= img_h):
        raise LoadError(src, f"{where}: principal point cx={cx:g}, cy={cy:g} lies outside the "
                             f"{img_w}x{img_h} image {image} (intrinsics for another image size?)")
    return fx, fy, cx, cy


def _pose(m: Any, where: str, src: Path) -> np.ndarray:
    """(4, 4) float pose from a 4x4 or 3x4 nested list; refuses NaN/inf and singular/non-rigid."""
    try:
        a = np.asarray(m, dtype=float)
    except (TypeError, ValueError):
        raise LoadError(src, f"{where}: the pose is not a matrix of numbers") from None
    if a.shape == (3, 4):
        a = np.vstack([a, [0.0, 0.0, 0.0, 1.0]])
    if a.shape != (4, 4):
        raise LoadError(src, f"{where}: the pose is not a 4x4 matrix (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise LoadError(src, f"{where}: the pose has NaN or infinite values")
    r = a[:3, :3]
    if abs(np.linalg.det(r)) < 1e-6:
        raise LoadError(src, f"{where}: the pose is not invertible")
    if not np.allclose(a[3], [0, 0, 0, 1], atol=1e-6):
        raise LoadError(src, f"{where}: the pose's last row is not 0 0 0 1")
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3):
        raise LoadError(src, f"{where}: the pose's rotation has scale or shear (not a rigid transform)")
    return a


def _norm_rel(p: str) -> str:
    return re.sub(r"^(\./)+", "", str(p).replace("\\", "/"))


def _background(top: dict, src: Path) -> tuple[float, float, float] | None:
    if "background" in top:
        try:
            bg = np.asarray(top["background"], dtype=float).reshape(-1)
        except (TypeError, ValueError):
            bg = np.array([np.nan])
        if bg.size not in (3, 4) or not np.all(np.isfinite(bg)) or bg.min() < 0:
            raise LoadError(src, f"background must be [r, g, b] in 0..1, got {top['background']!r}")
        bg = bg[:3] / (255.0 if bg.max() > 1.0 else 1.0)
        return float(bg[0]), float(bg[1]), float(bg[2])
    if top.get("white_transparent") is True:
        return (1.0, 1.0, 1.0)
    if top.get("black_transparent") is True:
        return (0.0, 0.0, 0.0)
    return None


def _transforms_entries(src: Path, file_split: str | None, meta: dict) -> tuple[list[dict], dict]:
    """Check one transforms file and find its photos without decoding them: (entries, top)
    with one dict per frame (``file_split``: the split the file's name gives, if any)."""
    top = _read_json(src)
    if not isinstance(top, dict) or not isinstance(top.get("frames"), list):
        raise LoadError(src, "not a transforms file: no 'frames' list")
    if not top["frames"]:
        raise LoadError(src, f"the {file_split} split is empty (no frames)" if file_split else "no frames")
    listed = {}
    for s in SPLITS:
        for p in top.get(f"{s}_filenames") or []:
            listed[_norm_rel(p)] = s
    entries = []
    for i, fr in enumerate(top["frames"]):
        where = f"frame {i}"
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise LoadError(src, f"{where}: needs file_path and transform_matrix")
        rel = str(fr["file_path"])
        where = f"frame {i} ({rel})"
        img_path = find_image(src.parent, rel, src)
        if img_path is None:
            raise LoadError(src, f"{where}: image {rel} not found (tried it as given and with "
                                 f"{', '.join(e for e in IMAGE_EXTS if e.islower())})")
        mask_path = None
        if fr.get("mask_path"):
            mask_path = find_image(src.parent, str(fr["mask_path"]), src, "mask")
            if mask_path is None:
                raise LoadError(src, f"{where}: mask {fr['mask_path']} not found")
        if "split" in fr:
            split = _SPLIT_ALIASES.get(str(fr["split"]).lower())
            if split is None:
                raise LoadError(src, f"{where}: unknown split {fr['split']!r} (train, val or test)")
        else:  # nerfstudio's *_filenames lists name the file with or without its extension
            r = _norm_rel(rel)
            split = listed.get(r) or listed.get(r + img_path.suffix) or file_split or "train"
        for p in (img_path, mask_path):
            if p is not None:
                note_outside_file(meta, src, p)
        entries.append({"src": src, "top": top, "frame": fr, "where": where, "image": img_path,
                        "mask": mask_path, "split": split})
    return entries, top


def _transforms_frame(e: dict) -> Frame:
    """Decode one entry of :func:`_transforms_entries` into a Frame."""
    src, fr, where, img_path = e["src"], e["frame"], e["where"], e["image"]
    rgba = read_rgba(img_path, owner=src)
    h, w = rgba.shape[:2]
    fx, fy, cx, cy = _intrinsics({**e["top"], **fr}, w, h, where, src, img_path.name)
    c2w_gl = _pose(fr["transform_matrix"], where, src)
    mask = None
    if e["mask"] is not None:
        mask = read_mask(e["mask"], src)
        if mask.shape != (h, w):
            raise LoadError(src, f"{where}: mask {e['mask'].name} is {mask.shape[1]}x{mask.shape[0]} "
                                 f"but the image is {w}x{h}")
    cam = Camera.from_opengl_c2w(c2w_gl, fx, fy, cx, cy, w, h, name=img_path.name)
    return Frame(cam, rgba, name=img_path.name, split=e["split"], mask=mask)


def _load_transforms_set(path: Path) -> ViewSet:
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        names = {p.name.lower(): p for p in folder.iterdir() if p.is_file() and _is_transforms_name(p.name)}
        blender = {m.group(1).lower(): p for n, p in names.items() if (m := _BLENDER_FILE.match(n))}
        if "transforms_train.json" in names:
            files = [(blender[s], s) for s in SPLITS if s in blender]
        elif "transforms.json" in names:
            files = [(names["transforms.json"], None)]
        elif len(names) == 1:
            files = [(next(iter(names.values())), None)]
        else:
            listed = ", ".join(sorted(p.name for p in names.values()))
            raise LoadError(path, f"several transforms files and no transforms.json or "
                                  f"transforms_train.json: {listed}; open one of them")
    else:
        m = _BLENDER_FILE.match(path.name)
        files = [(path, m.group(1).lower() if m else None)]
    background = None
    meta: dict = {"format": "blender" if files[0][1] else "transforms",
                  "files": [str(p) for p, _ in files]}
    entries: list[dict] = []
    for src, split in files:
        es, top = _transforms_entries(src, split, meta)
        entries.extend(es)
        background = background or _background(top, src)
        meta.setdefault("transforms", {k: v for k, v in top.items() if k != "frames" and "_filenames" not in k})
    # every photo's size from its header first: a scene too large to hold is refused before
    # a single photo is decoded
    sizes = [(*image_size(e["image"], e["src"]), 4) for e in entries]
    sizes += [(*image_size(e["mask"], e["src"], "mask"), 1) for e in entries if e["mask"] is not None]
    check_pixel_budget(path, sizes)
    frames = [_transforms_frame(e) for e in entries]
    return ViewSet(frames, background=background or (1.0, 1.0, 1.0), name=folder.name,
                   source=str(path), meta=meta)


# -- public ------------------------------------------------------------------------------------

def load_viewset(path: str | Path) -> ViewSet:
    """Load posed photos: a ``transforms*.json`` file, or a folder holding transforms files or a
    COLMAP text model.

    Parameters
    ----------
    path : a ``transforms.json`` / ``transforms_<split>.json`` file; a folder with
        ``transforms.json`` or Blender's ``transforms_{train,val,test}.json`` (these win when
        both are there); or a folder with ``cameras.txt`` + ``images.txt`` (there, in
        ``sparse/0/`` or in ``sparse/``; a model folder itself or ``cameras.txt`` also work).

    Returns
    -------
    ViewSet : frames in file order (COLMAP: by image name) with cameras in the scene's world
        frame, OpenCV camera axes; ``Frame.rgba`` (H, W, 4) uint8 keeps the photo's alpha;
        background from ``"background": [r, g, b]`` (0..1) or instant-ngp's
        ``white_transparent``/``black_transparent``, white otherwise; COLMAP ``points3D.txt``
        as ``points`` with colours. Splits: a frame's ``"split"``, nerfstudio's
        ``train_filenames``/..., the Blender file name, else "train"; COLMAP: every
        :data:`LLFF_HOLD`-th image by name (from the first) is "test", the LLFF convention.

    Raises
    ------
    LoadError : one line naming the problem: no transforms or COLMAP files, unreadable JSON, a
        missing image, an image whose size disagrees with its intrinsics, a non-finite or
        non-invertible pose, an empty split, an unsupported camera model or lens distortion,
        a photo that is a FIFO or device, one above Pillow's pixel limit, or photos that
        together pass :func:`pixel_budget` decoded.
    """
    path = Path(path)
    require_file(path)  # `fit` and `evaluate` come here directly: no FIFO or device either
    if path.is_file():
        if path.name.lower() in ("cameras.txt", "images.txt", "points3d.txt", "cameras.bin", "images.bin",
                                 "points3d.bin"):
            return load_colmap(path.parent, path.parent)
        if path.name.lower() in CAMERA_FILES:
            return load_idr(path.parent, path)
        if path.suffix.lower() != ".json":
            raise LoadError(path, "not a transforms .json file or a scene folder")
        return _load_transforms_set(path)
    try:
        has_transforms = any(_is_transforms_name(p.name) and p.is_file() for p in path.iterdir())
    except OSError as exc:
        raise LoadError(path, f"cannot list the folder ({exc.strerror or exc})") from None
    if has_transforms:
        return _load_transforms_set(path)
    model = colmap_dir(path)
    if model is None and idr_camera_file(path) is not None:
        return load_idr(path, idr_camera_file(path))
    if model is None:
        raise LoadError(path, "no transforms.json, transforms_train.json, COLMAP model "
                              "(cameras.txt, images.txt) here or in sparse/0/, or IDR cameras.npz with image/")
    return load_colmap(path, model)


def save_transforms(path: str | Path, items: ViewSet | Sequence[Frame] | Sequence[Camera], *,
                    image_folder: str = "images", write_images: bool = True,
                    background: Sequence[float] | None = None,
                    protect: Sequence[str | Path] = ()) -> Path:
    """Write a nerfstudio/Blender-compatible ``transforms.json`` (atomically).

    Parameters
    ----------
    path : the .json to write (or a folder: ``transforms.json`` in it).
    items : a ViewSet, Frames or Cameras. Cameras are c2w with OpenCV axes; the file stores
        OpenGL-axes ``transform_matrix`` as NeRF does.
    image_folder : frames' ``file_path`` is ``./<image_folder>/<stem>``, without extension as in
        Blender's files ("" for next to the json).
    write_images : for Frames, also write each image as ``<stem>.png`` (RGBA) and a mask, if
        the frame has one, as ``<stem>_mask.png`` with ``mask_path``.
    background : written as ``"background": [r, g, b]`` (0..1); default: the ViewSet's.
    protect : input files that must not be overwritten.

    Returns
    -------
    Path : the json written. Top-level ``camera_angle_x``, ``fl_x``, ``fl_y``, ``cx``, ``cy``,
    ``w``, ``h`` come from the first camera; frames whose camera differs carry their own; each
    frame has its ``split``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    if isinstance(items, ViewSet):
        background = background if background is not None else items.background
        items = items.frames
    items = list(items)
    if not items:
        raise ValueError("nothing to save: no frames or cameras")
    cams = [it.camera if isinstance(it, Frame) else it for it in items]

    def intr(c: Camera) -> dict:
        return {"camera_angle_x": 2.0 * math.atan(0.5 * c.width / c.fx),
                "camera_angle_y": 2.0 * math.atan(0.5 * c.height / c.fy),
                "fl_x": c.fx, "fl_y": c.fy, "cx": c.cx, "cy": c.cy, "w": c.width, "h": c.height}

    first = intr(cams[0])
    out: dict[str, Any] = dict(first)
    if background is not None:
        out["background"] = [float(v) for v in background][:3]
    prefix = f"./{image_folder.strip('/')}/" if image_folder.strip("/") else "./"
    stems, frames = set(), []
    for i, (it, cam) in enumerate(zip(items, cams)):
        name = (it.name if isinstance(it, Frame) else "") or cam.name or f"frame_{i:04d}"
        stem = Path(name).stem
        if stem in stems:
            raise ValueError(f"two frames would be written as {stem}")
        stems.add(stem)
        fr: dict[str, Any] = {"file_path": prefix + stem, "transform_matrix": cam.opengl_c2w().tolist()}
        own = intr(cam)
        if own != first:
            fr.update(own)
        if isinstance(it, Frame):
            fr["split"] = it.split
            if write_images and it.mask is not None:
                fr["mask_path"] = prefix + stem + "_mask.png"
        frames.append(fr)
    out["frames"] = frames
    if write_images and any(isinstance(it, Frame) for it in items):
        _write_images(path.parent / prefix, items, [Path(f["file_path"]).name for f in frames], protect)
    with atomic_path(path, protect=list(protect)) as tmp:
        tmp.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return path


def _write_images(folder: Path, items: list, stems: list[str], protect: Sequence[str | Path]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for it, stem in zip(items, stems):
        if not isinstance(it, Frame):
            continue
        with atomic_path(folder / f"{stem}.png", protect=list(protect)) as tmp:
            Image.fromarray(np.ascontiguousarray(it.rgba), "RGBA").save(tmp, format="PNG")
        if it.mask is not None:
            with atomic_path(folder / f"{stem}_mask.png", protect=list(protect)) as tmp:
                Image.fromarray(np.asarray(it.mask, bool).astype(np.uint8) * 255, "L").save(tmp, format="PNG")
