"""Point clouds: .xyz / .pts text through numpy, .las / .laz through laspy (lazrs for LAZ).

Coordinates stay in the file's units and frame (LAS: scaled and offset to real coordinates,
usually metres of a projected CRS). Colours become (N, 3) uint8; a per-point intensity, when
present, is kept as ``meta["intensity"]`` (N,) float32.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np

from ..model.errors import LoadError
from ..model.geometry import PointCloud
from .common import check_fits_in_memory, require_file

__all__ = ["load_points", "load_text_points", "load_las"]

# A line holding one integer: the point count many .pts writers put first (Leica PTS puts one
# before every scan, so such lines are dropped wherever they are).
_COUNT_LINE = re.compile(r"^[ \t]*[+-]?\d+[ \t]*\r?$", re.M)

# A column-name line ("x y z r g b", "X,Y,Z") first in the file (after comments/blank lines).
_HEADER_LINE = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*[A-Za-z_][^\n]*(?:\n|\Z)")


def load_points(path: Path) -> PointCloud:
    """Read a .xyz, .pts, .las or .laz point cloud.

    Returns
    -------
    PointCloud : (N, 3) float points in the file's units; colours (N, 3) uint8 when present.

    Raises
    ------
    LoadError : unreadable, truncated or empty files, as ``"PATH: reason"`` on one line.
    """
    path = Path(path)
    require_file(path)
    suffix = path.suffix.lower()
    if suffix in (".las", ".laz"):
        return load_las(path)
    if suffix in (".xyz", ".pts", ".txt", ".csv"):
        return load_text_points(path)
    raise LoadError(path, f"not a point cloud format ({suffix or 'no extension'})")


def load_text_points(path: Path) -> PointCloud:
    """Whitespace- or comma-separated columns ``x y z [r g b] [intensity]``, '#' comments.

    Column layouts by count: 3 ``xyz``; 4 ``xyz i``; 6 ``xyz rgb``; 7 ``xyz i rgb`` (Leica
    PTS) or ``xyz rgb i``, whichever gives valid colours (PTS order tried first for .pts);
    more columns: colours are not guessed. Colours are 0..255, or 0..1 when none exceeds 1.
    """
    path = Path(path)
    check_fits_in_memory(path, (path.stat().st_size,), np.uint8, factor=4.0)
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise LoadError(path, "not a text point file (it holds binary data)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # an accented comment from an old exporter, or binary junk
        text = raw.decode("latin-1")
    text = text.replace(",", " ").replace(";", " ")
    # point counts (PTS: one before each scan) are only compared with the rows read, never
    # used to allocate: a count the file does not hold means it was cut short
    claimed = sum(max(int(c), 0) for c in _COUNT_LINE.findall(text) if len(c.strip()) < 19)
    text = _COUNT_LINE.sub("", text)
    text = _HEADER_LINE.sub("", text, count=1)
    if not re.search(r"^[ \t]*[^\s#/]", text, re.M):  # (loadtxt would warn, then return nothing)
        raise LoadError(path, "no points in the file")
    try:
        data = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=("#", "//"), ndmin=2)
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = "".join(ch if ch.isprintable() else "?" for ch in reason[:160])
        raise LoadError(path, f"not a table of numbers ({reason})") from None
    if data.size == 0 or data.shape[0] == 0:
        raise LoadError(path, "no points in the file")
    n_cols = data.shape[1]
    if claimed > data.shape[0]:
        raise LoadError(path, f"the file is truncated (its count lines say {claimed} points; "
                              f"{data.shape[0]} follow)")
    if n_cols < 3:
        raise LoadError(path, f"each line needs at least x y z, found {n_cols} column(s)")
    if not np.all(np.isfinite(data[:, :3])):
        raise LoadError(path, "some coordinates are NaN or infinite")
    colors, intensity = None, None
    if n_cols == 4:
        intensity = data[:, 3]
    elif n_cols == 6:
        colors = _as_colors(data[:, 3:6])
    elif n_cols == 7:
        layouts = [(4, 3), (3, 6)]  # (first colour column, intensity column)
        if path.suffix.lower() != ".pts":
            layouts.reverse()
        for first, icol in layouts:
            colors = _as_colors(data[:, first:first + 3])
            if colors is not None:
                intensity = data[:, icol]
                break
    meta: dict = {"format": path.suffix.lstrip(".").upper(), "columns": n_cols}
    if intensity is not None:
        meta["intensity"] = intensity.astype(np.float32)
    if n_cols >= 6 and colors is None:
        meta["note"] = f"{n_cols} columns: colours not recognised, points only"
    return PointCloud(data[:, :3].copy(), colors=colors, name=path.name, source=str(path),
                      meta=meta)


def _as_colors(c: np.ndarray) -> np.ndarray | None:
    """(N, 3) uint8 from 0..255 or 0..1 values; None when the columns are not colours."""
    if not np.all(np.isfinite(c)) or c.min(initial=0) < 0 or c.max(initial=0) > 255:
        return None
    if c.max(initial=0) <= 1.0:  # 0..1 floats (an all-0/1 file is read as 0..1 too)
        c = c * 255.0
    elif np.any(c != np.round(c)):
        return None
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def load_las(path: Path) -> PointCloud:
    """LAS/LAZ through laspy: real (scaled, offset) x y z; colours from red/green/blue.

    LAS colours are 16-bit by the specification but many writers store 0..255: they are
    shifted down by 8 bits only when some value exceeds 255.
    """
    import laspy  # lazily: only point-cloud users pay for it

    path = Path(path)
    _check_las_header(path)
    try:
        with laspy.open(str(path)) as reader:
            n = int(reader.header.point_count)
            if n == 0:
                raise LoadError(path, "the file holds no points")
            check_fits_in_memory(path, (n, 8), np.float64, factor=2.0)
            las = reader.read()
    except LoadError:
        raise
    except laspy.errors.LaspyException as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(path, f"not a readable LAS/LAZ file ({msg[:160]})") from None
    except (ValueError, OSError, EOFError, IndexError, KeyError, RuntimeError) as exc:
        # lazrs reports cut-short compressed data as LazrsError (a RuntimeError)
        msg = " ".join(str(exc).split())[:160]
        raise LoadError(path, f"not a readable LAS/LAZ file ({type(exc).__name__}: {msg})") from None
    points = np.column_stack([np.asarray(las.x, float), np.asarray(las.y, float),
                              np.asarray(las.z, float)])
    if len(points) < n:
        raise LoadError(path, f"the file is truncated ({len(points)} of {n} points)")
    dims = set(las.point_format.dimension_names)
    colors = None
    if {"red", "green", "blue"} <= dims:
        rgb = np.column_stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)])
        colors = (rgb >> 8 if rgb.max(initial=0) > 255 else rgb).astype(np.uint8)
    meta: dict = {"format": "LAZ" if path.suffix.lower() == ".laz" else "LAS",
                  "point_format": int(las.point_format.id),
                  "offset": [float(v) for v in las.header.offsets]}
    if "intensity" in dims:
        meta["intensity"] = np.asarray(las.intensity, np.float32)
    return PointCloud(points, colors=colors, name=path.name, source=str(path), meta=meta)


def _check_las_header(path: Path) -> None:
    """Sizes in the public header block must fit the file, checked before laspy allocates:
    one flipped bit in a record count makes it try to read billions of records."""
    with open(path, "rb") as fh:
        head = fh.read(375)
    if len(head) < 227 or head[:4] != b"LASF":
        raise LoadError(path, "not a LAS/LAZ file (no 'LASF' signature)")
    header_size, data_offset, n_vlr = struct.unpack_from("<HII", head, 94)
    point_size = struct.unpack_from("<H", head, 105)[0]
    n_points = struct.unpack_from("<I", head, 107)[0]
    size = path.stat().st_size
    evlr_ok = True
    if header_size >= 375 and len(head) >= 375:  # LAS 1.4: 64-bit count, extended VLRs
        # readers take one count or the other: the larger one must fit
        n_points = max(n_points, struct.unpack_from("<Q", head, 247)[0])
        evlr_start, n_evlr = struct.unpack_from("<QI", head, 235)
        # each EVLR has a 60-byte header; a lying count made laspy loop for ever at the end
        evlr_ok = n_evlr == 0 or (data_offset <= evlr_start <= size and n_evlr * 60 <= size - evlr_start)
    ok = 227 <= header_size <= data_offset <= size and n_vlr * 54 <= data_offset - header_size
    ok = ok and evlr_ok
    data = size - data_offset
    if path.suffix.lower() == ".laz":  # identical points compress ~2400:1; allow 10000:1
        ok = ok and n_points * point_size <= 10000 * max(data, 1)
    elif ok and n_points * point_size > data:
        raise LoadError(path, f"the file is truncated (the header says {n_points} points of "
                              f"{point_size} bytes; {data} bytes follow the header)")
    if not ok:
        raise LoadError(path, "corrupt LAS header (its sizes and counts do not fit the file)")
