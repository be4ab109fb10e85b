"""MetaImage (.mha, and .mhd with its detached raw file) through SimpleITK.

ITK images live in the LPS patient frame: the world point of voxel index ``(i, j, k)`` is
``origin + direction @ diag(spacing) @ (i, j, k)``, with ``direction``'s columns the unit
axis vectors. The RAS affine is that matrix with its x and y rows negated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..model.errors import LoadError
from ..model.volume import Volume
from .common import check_fits_in_memory

__all__ = ["load_itk"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}


def _component_dtype(pixel_id: int) -> np.dtype | None:
    """numpy dtype of one pixel component, None for complex or label pixels."""
    table = {
        sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16,
        sitk.sitkInt16: np.int16, sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32,
        sitk.sitkUInt64: np.uint64, sitk.sitkInt64: np.int64, sitk.sitkFloat32: np.float32,
        sitk.sitkFloat64: np.float64,
        sitk.sitkVectorUInt8: np.uint8, sitk.sitkVectorInt8: np.int8,
        sitk.sitkVectorUInt16: np.uint16, sitk.sitkVectorInt16: np.int16,
        sitk.sitkVectorUInt32: np.uint32, sitk.sitkVectorInt32: np.int32,
        sitk.sitkVectorUInt64: np.uint64, sitk.sitkVectorInt64: np.int64,
        sitk.sitkVectorFloat32: np.float32, sitk.sitkVectorFloat64: np.float64,
    }
    dt = table.get(pixel_id)
    return None if dt is None else np.dtype(dt)


def _itk_reason(exc: Exception) -> str:
    """The useful tail of an ITK exception (they start with source file names and lines)."""
    text = str(exc)
    for marker in ("ERROR:", "Description:"):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    text = " ".join(re.sub(r"\(0x[0-9a-f]+\)", "", text).split())  # no object addresses
    text = text.split(" Reason:")[0]  # a stale errno ("No such file") even when the file exists
    return text[:300] or type(exc).__name__


def _missing_data_file(path: Path) -> str | None:
    """The detached ``ElementDataFile`` a .mhd names when it is not there, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("latin-1")
    except OSError:
        return None
    m = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", head, re.MULTILINE)
    if not m or m.group(1).split()[0].upper() in ("LOCAL", "LIST") or "%" in m.group(1):
        return None  # embedded data, or a list/pattern of files ITK resolves itself
    name = m.group(1)
    return None if (path.parent / name).exists() else name


def load_itk(path: Path) -> Volume:
    """Read a MetaImage file into a ``Volume`` with its RAS affine.

    Parameters
    ----------
    path : ``.mha`` or ``.mhd`` (whose ``ElementDataFile`` is read from beside it).

    Returns
    -------
    Volume whose array is ``(x, y, z)`` = ITK's index order: a transposed (Fortran-ordered)
    view of the ``(z, y, x)`` array SimpleITK hands out, not a second copy. 4D images give
    their first frame (only that frame is read) and
    vector images their first component (``meta['frames']`` / ``meta['components']``).
    """
    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise LoadError(path, f"not a readable MetaImage file ({_itk_reason(exc)})") from None
    size = tuple(int(s) for s in reader.GetSize())
    ncomp = int(reader.GetNumberOfComponents())
    dtype = _component_dtype(reader.GetPixelID())
    if dtype is None:
        kind = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        raise LoadError(path, f"unsupported voxel type ({kind})")
    missing = _missing_data_file(path)
    if missing:
        raise LoadError(path, f"the data file it refers to is missing ({missing})")
    if not 2 <= len(size) <= 4:
        raise LoadError(path, f"cannot show a {len(size)}D image as a volume")
    meta: dict[str, Any] = {"format": "MetaImage"}
    notes = []
    if len(size) == 4:
        # read only the first frame (ITK streams the region; size 0 drops the 4th axis)
        reader.SetExtractIndex([0, 0, 0, 0])
        reader.SetExtractSize([*size[:3], 0])
        if size[3] > 1:
            meta["frames"] = size[3]
            notes.append(f"4D image with {size[3]} frames: showing the first")
    # ITK's buffer and the numpy copy coexist for a moment
    check_fits_in_memory(path, (*size[:3], ncomp), dtype, factor=2.0)
    try:
        img = reader.Execute()
        if ncomp > 1:
            img = sitk.VectorIndexSelectionCast(img, 0)
            meta["components"] = ncomp
            notes.append(f"{ncomp} components per voxel: showing the first")
        zyx = sitk.GetArrayFromImage(img)
    except RuntimeError as exc:
        raise LoadError(path, f"the file is truncated or corrupt ({_itk_reason(exc)})") from None
    d = img.GetDimension()
    direction = np.array(img.GetDirection(), dtype=float).reshape(d, d)
    spacing = np.array(img.GetSpacing(), dtype=float)
    origin = np.array(img.GetOrigin(), dtype=float)
    del img  # the array is a copy: free ITK's buffer now
    if zyx.ndim == 2:  # a 2D image: one slice, 1 mm thick along the plane normal
        zyx = zyx[None]
    lps = np.eye(4)
    lps[:d, :d] = direction * spacing  # scales column c (axis c) by spacing[c]
    lps[:d, 3] = origin
    if zyx.dtype.kind == "b":
        zyx = zyx.astype(np.uint8)
    if notes:
        meta["note"] = "; ".join(notes)
    modality = ""
    if reader.HasMetaDataKey("Modality"):
        modality = _MODALITIES.get(reader.GetMetaData("Modality").strip(), "")
    try:
        return Volume(zyx.transpose(2, 1, 0), _LPS_TO_RAS @ lps, modality=modality,
                      name=path.stem, source=str(path), meta=meta)
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None
