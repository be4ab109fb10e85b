"""NIfTI-1/2 (.nii, .nii.gz, .hdr/.img) through nibabel."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from ..model.errors import LoadError
from ..model.labels import LabelMap
from ..model.volume import Volume
from .common import atomic_path, check_fits_in_memory


def _why(exc: Exception, path: Path) -> str:
    """The library's reason without the path it repeats (the message already starts with it)."""
    text = str(exc).replace(str(path), "").replace("File  ", "File ").strip(" :")
    return text or type(exc).__name__

__all__ = ["load_nifti", "save_nifti"]


def load_nifti(path: Path) -> Volume:
    """Read a NIfTI file into a ``Volume``; 4D files give their first frame (``meta['frames']``).

    The array is nibabel's own (memory-mapped for uncompressed files, so the first slice is
    drawn before the whole file is read); scaling (scl_slope/inter) is applied by nibabel.
    """
    try:
        img = nib.load(str(path))
    except nib.filebasedimages.ImageFileError as exc:
        raise LoadError(path, f"not a readable NIfTI file ({_why(exc, path)})") from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise LoadError(path, f"not a readable NIfTI file ({_why(exc, path)})") from None
    shape = img.shape
    if len(shape) < 3:
        shape = tuple(shape) + (1,) * (3 - len(shape))
    dtype = img.get_data_dtype()
    scaled = img.dataobj.slope != 1 or img.dataobj.inter != 0  # type: ignore[attr-defined]
    check_fits_in_memory(path, shape[:3], np.float32 if scaled else dtype,
                         factor=2.0 if str(path).endswith(".gz") else 1.0)
    frames = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    try:
        if frames > 1:
            data = np.asanyarray(img.dataobj[(..., *([0] * (len(shape) - 3)))])
            data = data.reshape(shape[:3], order="F")
        else:
            # float32, not nibabel's default float64, when the header asks for scaling
            raw = img.dataobj.get_scaled(np.float32) if scaled else np.asanyarray(img.dataobj)
            data = raw.reshape(shape[:3], order="F")
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        raise LoadError(path, f"the file is truncated or corrupt ({_why(exc, path)})") from None
    if data.dtype.kind not in "biuf":
        raise LoadError(path, f"unsupported voxel type {data.dtype}")
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        zooms = img.header.get_zooms()[:3]
        affine = np.diag([*(z if z > 0 else 1.0 for z in zooms), 1.0])
    meta = {"format": "NIfTI", "header": img.header}
    if frames > 1:
        meta["frames"] = frames
        meta["note"] = f"4D file with {frames} frames: showing the first"
    name = path.name
    for suffix in (".nii.gz", ".nii", ".hdr", ".img"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    modality = "CT" if _looks_like_ct(img, data) else ""
    try:
        return Volume(data, affine, modality=modality, name=name, source=str(path), meta=meta)
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None


def _looks_like_ct(img, data: np.ndarray) -> bool:
    """NIfTI carries no modality; a header description or HU-like range gives CT away."""
    descrip = bytes(img.header.get("descrip", b"")).lower() if "descrip" in img.header else b""
    if b"ct" in descrip.split() or b"hounsfield" in descrip:
        return True
    if data.dtype.kind not in "iuf" or data.size == 0:
        return False
    corner = np.asarray(data[: max(1, data.shape[0] // 8), : max(1, data.shape[1] // 8), :: max(1, data.shape[2] // 4)])
    return data.dtype.kind in "if" and corner.size > 0 and np.nanmin(corner) <= -900 and np.nanmin(corner) >= -3100


def save_nifti(data: Volume | LabelMap, path: str | Path, protect=()) -> Path:
    """Write a volume or label map as NIfTI with its RAS affine, atomically.

    Labels are stored as the smallest unsigned integer type that holds them; images keep their
    dtype. When the data came from a NIfTI file its header (units, descrip, intent) is reused.
    """
    path = Path(path)
    arr = np.asarray(data.array)
    if isinstance(data, LabelMap):
        top = int(arr.max()) if arr.size else 0
        lo = int(arr.min()) if arr.size else 0
        dt = np.uint8 if lo >= 0 and top < 256 else np.uint16 if lo >= 0 and top < 65536 else np.int32
        arr = arr.astype(dt, copy=False)
    header = data.meta.get("header") if isinstance(data.meta.get("header"), nib.Nifti1Header) else None
    img = nib.Nifti1Image(arr, data.affine, header=header.copy() if header is not None else None)
    img.set_qform(data.affine, code=1)
    img.set_sform(data.affine, code=1)
    img.header.set_data_dtype(arr.dtype)
    if header is not None:
        img.header["scl_slope"], img.header["scl_inter"] = 1.0, 0.0
    with atomic_path(path, protect=protect) as tmp:
        nib.save(img, str(tmp))
    return path
