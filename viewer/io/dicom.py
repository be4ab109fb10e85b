"""DICOM series (a folder of single-frame slices, any file names) through pydicom.

Geometry follows DICOM PS3.3 C.7.6.2 (Image Plane): the patient frame is LPS millimetres,
``ImageOrientationPatient`` gives the row and column direction cosines and
``ImagePositionPatient`` the centre of the first transmitted pixel of each slice. Slices are
ordered by their position along the slice normal; ``InstanceNumber`` is never trusted.
Nothing patient-identifying (name, ID, birth date) is read into the results or messages.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from ..model.errors import LoadError
from ..model.volume import Volume
from .common import check_fits_in_memory

__all__ = ["SeriesInfo", "list_series", "load_dicom"]

# what pydicom raises for damaged files; header scanning skips such files, loading names them
_READ_ERRORS = (InvalidDicomError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError,
                AttributeError, RuntimeError, NotImplementedError, OverflowError, struct.error)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SAME_POSITION_MM = 1e-3  # two slices closer than this along the normal are the same slice


@dataclass
class _Slice:
    """What the header pass keeps of one file (no pixels, nothing about the patient)."""

    path: Path
    sop: str
    ipp: np.ndarray | None  # (3,) ImagePositionPatient, LPS mm
    slope: float
    inter: float


@dataclass
class SeriesInfo:
    """One stackable series found in a folder: what a series picker shows.

    ``shape`` is ``(rows, cols, n_slices)`` as DICOM counts them; the loaded array is
    ``(cols, rows, n_slices)``. ``uid`` is the SeriesInstanceUID; when one series mixes
    orientations or image sizes it is split and the smaller parts get ``uid + "#2"``, ``"#3"``...
    ``problem`` is set (a reason) when the series was found but cannot be loaded.
    ``files`` are in slice order when positions are known.
    """

    uid: str
    description: str
    modality: str
    n_files: int
    shape: tuple[int, int, int]
    files: list[Path] = field(default_factory=list, repr=False)
    problem: str | None = None
    _slices: list[_Slice] = field(default_factory=list, repr=False)
    _iop: tuple[float, ...] | None = field(default=None, repr=False)
    _bits: tuple[int, int] = field(default=(16, 0), repr=False)  # BitsStored, PixelRepresentation
    _syntaxes: set[str] = field(default_factory=set, repr=False)
    _allocated: int = field(default=16, repr=False)  # BitsAllocated

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def as_dict(self) -> dict[str, Any]:
        """Plain, patient-free fields for ``volume.meta['series']`` and scene files."""
        return {"uid": self.uid, "description": self.description, "modality": self.modality,
                "shape": tuple(self.shape), "n_files": self.n_files}


# ---------------------------------------------------------------------------------------------
# header pass: group files into series
# ---------------------------------------------------------------------------------------------
def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _first(value: Any) -> Any:
    # some writers store several values where one is expected (WindowCenter often has two)
    return value[0] if isinstance(value, (list, tuple, MultiValue)) and len(value) else value


def _number(ds: Any, keyword: str, default: float) -> float:
    """A numeric element's value; raises on an unreadable one (the file is then skipped)."""
    value = ds.get(keyword)
    return default if value is None or value == "" else float(_first(value))


def _read_header(f: Path) -> tuple[tuple, _Slice, dict[str, Any]] | None:
    """(group key, slice record, series-level fields) for an image file, else None."""
    # pydicom's warnings about sloppy stray files are noise in a folder scan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # defer_size: large non-pixel elements (icons, private blobs) are never read
            ds = pydicom.dcmread(f, stop_before_pixels=True, defer_size="2 KB")
            if "Rows" not in ds or "Columns" not in ds:
                return None  # DICOMDIR, structured reports, presentation states: no image
            uid = str(ds.get("SeriesInstanceUID", "") or "")
            rows, cols = int(ds.Rows), int(ds.Columns)
            iop = _floats(ds.get("ImageOrientationPatient"), 6)
            ipp = _floats(ds.get("ImagePositionPatient"), 3)
            rec = _Slice(f, str(ds.get("SOPInstanceUID", "") or f), None if ipp is None else np.array(ipp),
                         _number(ds, "RescaleSlope", 1.0), _number(ds, "RescaleIntercept", 0.0))
            meta = getattr(ds, "file_meta", None)
            info = {
                "description": str(ds.get("SeriesDescription", "") or ""),
                "modality": str(ds.get("Modality", "") or ""),
                "frames": int(_number(ds, "NumberOfFrames", 1)),
                "samples": int(_number(ds, "SamplesPerPixel", 1)),
                "bits": (int(_number(ds, "BitsStored", 16)), int(_number(ds, "PixelRepresentation", 0))),
                "allocated": int(_number(ds, "BitsAllocated", 16)),
                "syntax": str(meta.get("TransferSyntaxUID", "")) if meta is not None else "",
                "iop": iop,
            }
        except _READ_ERRORS:
            return None  # not DICOM, or too damaged to group: skipped like any other stray file
    # orientations that differ only in the last printed digits belong to the same stack;
    # a different pixel size or field of view is a different grid, so a different stack
    ps = _floats(ds.get("PixelSpacing"), 2)
    key = (uid, None if iop is None else tuple(np.round(iop, 3)), rows, cols,
           None if ps is None else tuple(np.round(ps, 4)))
    return key, rec, info


def _walk(folder: Path, recursive: bool):
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if _is_regular(Path(root, name)):
                    yield Path(root, name)
    else:
        yield from sorted(p for p in folder.iterdir() if _is_regular(p))


def _is_regular(path: Path) -> bool:
    """Only regular files are opened: a FIFO in the folder would block the scan for ever,
    a device (or a link to /dev/zero) would never end."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _normal(iop: tuple[float, ...]) -> np.ndarray:
    """Slice normal (LPS) = row cosine x column cosine."""
    return np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))


def _scan(folder: Path, recursive: bool = True) -> list[SeriesInfo]:
    groups: dict[tuple, tuple[list[_Slice], dict[str, Any]]] = {}
    for f in _walk(folder, recursive):
        found = _read_header(f)
        if found is None:
            continue
        key, rec, info = found
        slices, first = groups.setdefault(key, ([], {**info, "syntaxes": set()}))
        slices.append(rec)
        first["syntaxes"].add(info["syntax"])
        if info["frames"] > 1:
            first["frames"] = info["frames"]
        if info["samples"] != 1:
            first["samples"] = info["samples"]
    out: list[SeriesInfo] = []
    parts: dict[str, int] = {}
    # biggest part of a split series keeps the plain UID, so `series=uid` finds the main stack
    for key, (slices, first) in sorted(groups.items(), key=lambda kv: -len(kv[1][0])):
        uid, _, rows, cols, _ = key
        parts[uid] = parts.get(uid, 0) + 1
        problem = None
        if first["frames"] > 1:
            problem = "multi-frame (enhanced) DICOM images are not supported yet"
        elif first["samples"] != 1:
            problem = "colour (RGB) DICOM images cannot be shown as a volume"
        elif len(slices) > 1 and (first["iop"] is None or any(s.ipp is None for s in slices)):
            problem = ("the slices have no ImageOrientationPatient/ImagePositionPatient, "
                       "so they cannot be put in order")
        if first["iop"] is not None and all(s.ipp is not None for s in slices):
            normal = _normal(first["iop"])
            slices.sort(key=lambda s: float(s.ipp @ normal))
        out.append(SeriesInfo(
            uid=uid if parts[uid] == 1 else f"{uid}#{parts[uid]}", description=first["description"],
            modality=first["modality"], n_files=len(slices), shape=(rows, cols, len(slices)),
            files=[s.path for s in slices], problem=problem, _slices=slices, _iop=first["iop"],
            _bits=first["bits"], _syntaxes=first["syntaxes"], _allocated=first["allocated"]))
    out.sort(key=lambda s: (-s.n_voxels, s.description, s.uid))
    return out


def list_series(folder: Path) -> list[SeriesInfo]:
    """Every image series under ``folder`` (searched recursively), largest first.

    Parameters
    ----------
    folder : a folder of DICOM files with any names; other files are skipped silently.

    Returns
    -------
    list of SeriesInfo, sorted by voxel count (largest first). Empty when nothing is readable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(folder, "not a folder")
    return _scan(folder, recursive=True)


# ---------------------------------------------------------------------------------------------
# loading one series
# ---------------------------------------------------------------------------------------------
def load_dicom(path: Path, series: str | None = None) -> Volume:
    """Load one DICOM series as a ``Volume`` (values in modality units: HU for CT).

    Parameters
    ----------
    path : a folder (searched recursively), or one DICOM file: then the series that file
        belongs to is loaded from the files beside it with the same SeriesInstanceUID.
    series : SeriesInstanceUID to load (see :func:`list_series`); default: the largest series,
        and ``meta['note']`` says which one was taken when there were several.

    Returns
    -------
    Volume whose array is ``(cols, rows, n_slices)``: i along the DICOM row direction (across
    a column index), j down the rows, k in order along the slice normal; the affine maps
    ``(i, j, k)`` to RAS mm (DICOM LPS with x and y negated), oblique and tilted stacks exact.
    """
    path = Path(path)
    folder = path
    if path.is_file():
        folder = path.parent
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the pixel pass reports what matters
                ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size="2 KB")
            has_image = "Rows" in ds and "Columns" in ds
            is_index = "DirectoryRecordSequence" in ds
            uid = str(ds.get("SeriesInstanceUID", "") or "")
        except _READ_ERRORS as exc:
            raise LoadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
        if is_index:
            infos = _scan(folder)  # a DICOMDIR: load what it indexes, from the files themselves
        elif not has_image:
            raise LoadError(path, "this DICOM file holds no image (a report, a presentation state, "
                                  "or a damaged file)")
        elif series is None:
            infos = [s for s in _scan(folder, recursive=False)
                     if s.uid.split("#")[0] == uid and path.name in {f.name for f in s.files}]
        else:
            infos = _scan(folder, recursive=False)
    else:
        infos = _scan(folder)
    if not infos:
        raise LoadError(path, "no readable DICOM series in this folder")
    if series is not None:
        chosen = next((s for s in infos if s.uid == series), None)
        if chosen is None:
            raise LoadError(path, f"no series with UID {series} here ({len(infos)} series found)")
    else:
        chosen = next((s for s in infos if s.problem is None), infos[0])
    vol = _load_series(path, chosen)
    vol.name = folder.name or str(folder)
    vol.meta["series"] = [s.as_dict() for s in infos]
    if series is None and len(infos) > 1:
        rows, cols, n = chosen.shape
        which = "the largest" if chosen is infos[0] else "the largest readable one"
        note = (f"{len(infos)} series in folder; loaded {which}: '{chosen.description}' "
                f"({chosen.modality}, {rows}x{cols}x{n})")
        vol.meta["note"] = "; ".join([note] + ([vol.meta["note"]] if "note" in vol.meta else []))
    return vol


def _check_decodable(path: Path, syntaxes: set[str]) -> None:
    """Refuse compressed pixel data that no installed pydicom plugin can decode, up front."""
    from pydicom.pixels import get_decoder

    for s in sorted(x for x in syntaxes if x):
        ts = UID(s)
        if not ts.is_transfer_syntax or not ts.is_compressed:
            continue
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise LoadError(path, f"pixel data is compressed as '{ts.name}', "
                                  "which cannot be decoded") from None
        if not decoder.is_available:
            need = "; ".join(decoder.missing_dependencies) or "an extra decoder plugin"
            raise LoadError(path, f"pixel data is compressed as '{ts.name}'; reading it needs one of: {need}")


def _check_rescale(path: Path, slices: list[_Slice]) -> None:
    """Refuse a NaN or infinite RescaleSlope/Intercept: it would make every voxel NaN."""
    for s in slices:
        if not (np.isfinite(s.slope) and np.isfinite(s.inter)):
            raise LoadError(path, f"{s.path.name} has RescaleSlope {s.slope:g} and RescaleIntercept "
                                  f"{s.inter:g}: not finite numbers, so no voxel value can be computed")


def _check_pixel_bytes(path: Path, info: SeriesInfo, slices: list[_Slice]) -> None:
    """Each uncompressed file must be big enough for the Rows x Columns x BitsAllocated it claims.

    Checked on the file sizes before the volume is allocated, so a folder of tiny files that
    claim 65535 x 65535 pixels each is refused at once instead of allocating gigabytes.
    """
    syntaxes = [UID(x) for x in info._syntaxes if x]
    if any(ts.is_compressed or ts.is_deflated for ts in syntaxes if ts.is_transfer_syntax):
        return  # compressed pixels: only the memory check applies
    rows, cols = info.shape[0], info.shape[1]
    need = (rows * cols * max(info._allocated, 1) + 7) // 8
    for s in slices:
        try:
            size = s.path.stat().st_size
        except OSError as exc:
            raise LoadError(path, f"cannot read {s.path.name} ({exc.strerror or exc})") from None
        if size < need:
            raise LoadError(path, f"{s.path.name} holds {size} bytes, too few for the {rows}x{cols} pixels of "
                                  f"{info._allocated} bits it claims (truncated, or a corrupt header)")


def _start_dtype(info: SeriesInfo) -> tuple[np.dtype, np.dtype]:
    """(dtype to allocate, worst-case dtype for the memory check) after rescaling.

    Integer slope and intercept keep values exact in integers; int16 is allocated first and
    widened only if a slice really needs it (a 16-bit signed CT with intercept -1024 could in
    theory overflow int16 but practically never does).
    """
    coeffs = {(s.slope, s.inter) for s in info._slices}
    if not all(float(a).is_integer() and float(b).is_integer() for a, b in coeffs):
        return np.dtype(np.float32), np.dtype(np.float32)
    bits, signed = info._bits
    bits = min(max(bits, 1), 32)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    ends = [v for a, b in coeffs for v in (a * lo + b, a * hi + b)]
    for dt in (np.int16, np.int32):
        if min(ends) >= np.iinfo(dt).min and max(ends) <= np.iinfo(dt).max:
            return np.dtype(np.int16), np.dtype(dt)
    return np.dtype(np.int16), np.dtype(np.int64)


def _widen(arr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``arr`` converted to a wider integer type when ``values`` would not fit exactly."""
    if arr.dtype.kind == "f" or values.size == 0:
        return arr
    lo, hi = int(values.min()), int(values.max())
    if np.iinfo(arr.dtype).min <= lo and hi <= np.iinfo(arr.dtype).max:
        return arr
    big = np.int32 if np.iinfo(np.int32).min <= lo and hi <= np.iinfo(np.int32).max else np.int64
    return arr.astype(big, order="F")


def _load_series(path: Path, info: SeriesInfo) -> Volume:
    if info.problem:
        raise LoadError(path, f"series '{info.description}': {info.problem}")
    # the same file copied twice (same SOP instance) is harmless: keep one copy
    seen: set[str] = set()
    slices = [s for s in info._slices if not (s.sop in seen or seen.add(s.sop))]
    rows, cols, n = info.shape[0], info.shape[1], len(slices)
    iop = info._iop or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    rowcos, colcos = np.array(iop[:3]), np.array(iop[3:])
    if (abs(np.linalg.norm(rowcos) - 1) > 1e-2 or abs(np.linalg.norm(colcos) - 1) > 1e-2
            or abs(rowcos @ colcos) > 1e-2):
        raise LoadError(path, f"ImageOrientationPatient {list(iop)} is not two orthogonal unit vectors")
    normal = _normal(iop)
    normal = normal / np.linalg.norm(normal)
    notes: list[str] = []
    if n > 1:
        pos = np.array([s.ipp @ normal for s in slices])
        dup = int(np.sum(np.diff(pos) < _SAME_POSITION_MM))
        if dup:
            raise LoadError(path, f"series '{info.description}' has {dup} slice(s) at the same position "
                                  "as another (several echoes, phases or acquisitions in one series?); "
                                  "cannot stack them into one volume")
        ipp = np.array([s.ipp for s in slices])
        # the first-to-last vector per slice keeps gantry-tilted (sheared) stacks exact
        step = (ipp[-1] - ipp[0]) / (n - 1)
        gaps = np.diff(pos)
        tol = max(0.01, 0.01 * abs(float(gaps.mean())))
        off_line = np.linalg.norm(ipp - (ipp[0] + np.arange(n)[:, None] * step), axis=1).max()
        if np.abs(gaps - gaps.mean()).max() > tol or off_line > tol:
            notes.append(f"warning: slice spacing is not uniform ({gaps.min():.3g} to {gaps.max():.3g} mm; "
                         "missing slices?): positions between slices are approximate")
    _check_decodable(path, info._syntaxes)
    _check_rescale(path, slices)
    dtype, worst = _start_dtype(info)
    check_fits_in_memory(path, (cols, rows, n), worst)
    _check_pixel_bytes(path, info, slices)
    # Fortran order: each slice is one contiguous block and i runs fastest, as VTK wants
    arr = np.empty((cols, rows, n), dtype=dtype, order="F")
    first: dict[str, Any] = {}
    said: dict[str, None] = {}  # pydicom's warnings, once each, for the note
    for k, s in enumerate(slices):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = pydicom.dcmread(s.path)
                pix = ds.pixel_array
            said.update(dict.fromkeys(f"pydicom: {w.message}" for w in caught))
            if k == 0:
                first = {key: ds.get(key) for key in ("PixelSpacing", "SliceThickness",
                         "SpacingBetweenSlices", "WindowWidth", "WindowCenter", "PhotometricInterpretation")}
        except _READ_ERRORS as exc:
            raise LoadError(path, f"cannot read the pixel data of {s.path.name} "
                                  f"({type(exc).__name__}: {exc})") from None
        del ds  # drop the file's bytes before reading the next one
        if pix.shape != (rows, cols):
            raise LoadError(path, f"{s.path.name} has pixel data of shape {pix.shape}, "
                                  f"expected {(rows, cols)}")
        if pix.dtype.kind == "f" or arr.dtype.kind == "f":
            if arr.dtype.kind != "f":
                arr = arr.astype(np.float32, order="F")  # float pixel data: rare, but exact
            values = pix * s.slope + s.inter if (s.slope, s.inter) != (1.0, 0.0) else pix
        elif (s.slope, s.inter) != (1.0, 0.0):
            values = pix.astype(np.int64) * int(s.slope) + int(s.inter)
        else:
            values = pix
        if values.dtype.kind in "iu":
            arr = _widen(arr, values)
        arr[:, :, k] = values.T  # pixel_array is [row, col] = [j, i]

    spacing = _floats(first.get("PixelSpacing"), 2)
    if spacing is None or min(spacing) <= 0:
        notes.append("no PixelSpacing: assuming 1 mm pixels")
        spacing = (1.0, 1.0)
    if n == 1:
        thick = next((t for t in (_try_float(first.get("SliceThickness")),
                                  _try_float(first.get("SpacingBetweenSlices"))) if t and t > 0), 1.0)
        step = normal * thick
    origin = slices[0].ipp if slices[0].ipp is not None else np.zeros(3)
    if info._iop is None or slices[0].ipp is None:
        notes.append("no patient position in the file: placed at the origin, axial")
    lps = np.eye(4)
    # PixelSpacing = [between rows, between columns]: the column spacing goes with the row cosine
    lps[:3, 0] = rowcos * spacing[1]
    lps[:3, 1] = colcos * spacing[0]
    lps[:3, 2] = step
    lps[:3, 3] = origin
    meta: dict[str, Any] = {"format": "DICOM", "modality": info.modality, "series_uid": info.uid,
                            "series_description": info.description}
    window = (_try_float(first.get("WindowWidth")), _try_float(first.get("WindowCenter")))
    if None not in window:
        meta["window"] = window
    if str(first.get("PhotometricInterpretation") or "") == "MONOCHROME1":
        meta["photometric"] = "MONOCHROME1"
        notes.append("MONOCHROME1: low values are meant to be shown bright")
    if len(slices) < len(info._slices):
        notes.append(f"{len(info._slices) - len(slices)} duplicate file(s) ignored")
    notes.extend(list(said)[:3])
    if notes:
        meta["note"] = "; ".join(notes)
    try:
        return Volume(arr, _LPS_TO_RAS @ lps, modality=info.modality, source=str(path), meta=meta)
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None


def _try_float(value: Any) -> float | None:
    """First value of a DS/IS element as float, None when absent or unreadable."""
    try:
        out = float(_first(value))
    except (TypeError, ValueError, IndexError):
        return None
    return out if np.isfinite(out) else None
