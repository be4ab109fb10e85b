"""Checks that run before VTK reads a mesh file: VTK's readers trust their input, allocate
whatever a header declares and crash the process on some damaged files, so every count is
compared with the bytes the file holds, and every index with what it indexes, first.

Each ``check_<format>(path)`` raises a one-line LoadError or returns; none allocates more than
a small multiple of the file (the OBJ and PLY checks read it, vectorised).
"""

from __future__ import annotations

import base64
import mmap
import re
import struct
from pathlib import Path

import numpy as np

from ..model.errors import LoadError
from .common import MAX_BZIP2_RATIO, MAX_DEFLATE_RATIO, check_claim_fits_file

__all__ = ["check_vtk_legacy", "check_stl", "check_vtp", "check_obj", "check_ply", "CHECKS"]


def check_vtk_legacy(path: Path) -> None:
    """A garbled version line makes vtkDataSetReader misparse the cell arrays (and crash);
    then every count in the file must fit the file (see :func:`_vtk_claims`)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    m = re.match(rb"# vtk DataFile Version (\d+)\.\d+\s*\n[^\n]*\n\s*(ASCII|BINARY)\s", head, re.I)
    if not m:
        raise LoadError(path, "not a legacy VTK file (bad '# vtk DataFile Version' header)")
    kind = re.search(rb"DATASET\s+(\w+)", head[m.end():], re.I)
    if kind and kind.group(1).upper() in (b"STRUCTURED_POINTS", b"RECTILINEAR_GRID"):
        raise LoadError(path, "it holds an image grid, not a mesh or point set")
    binary = m.group(2).upper() == b"BINARY"
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        values, nbytes, grid, n_points = _vtk_claims(buf, binary, int(m.group(1)) >= 5)
    size = path.stat().st_size
    # binary data is there byte for byte; an ASCII number takes at least a digit and a space
    check_claim_fits_file(path, nbytes if binary else 2 * values, size,
                          what=f"the header ({values:,} numbers)")
    if grid > max(n_points, 1):
        raise LoadError(path, f"header claims a grid of {grid} points but only {n_points} points")


# binary item sizes of the legacy format's type names (bit: 1/8); unknown names count 1 byte
_VTK_SIZES = {"bit": 0.125, "char": 1, "signed_char": 1, "unsigned_char": 1, "short": 2,
              "unsigned_short": 2, "int": 4, "unsigned_int": 4, "long": 8, "unsigned_long": 8,
              "vtkidtype": 4, "float": 4, "double": 8, "vtktypeint32": 4, "vtktypeuint32": 4,
              "vtktypeint64": 8, "vtktypeuint64": 8}
_VTK_WORD = re.compile(rb"[A-Za-z_][A-Za-z_0-9]{2,}")  # numbers never match: ASCII data is skipped fast
_VTK_KEYS = ("points", "vertices", "lines", "polygons", "triangle_strips", "cells", "cell_types",
             "point_data", "cell_data", "scalars", "color_scalars", "vectors", "normals", "tensors",
             "tensors6", "texture_coordinates", "lookup_table", "dimensions")
_VTK_NARGS = {"cell_types": 1, "point_data": 1, "cell_data": 1, "texture_coordinates": 3, "dimensions": 3}
_VTK_TYPES = frozenset(_VTK_SIZES) | {"string", "utf8_string", "variant"}


def _vtk_claims(buf, binary: bool, v5: bool) -> tuple[int, int, int, int]:
    """(numbers, bytes in binary, grid points, points) that a legacy VTK file's keywords claim.

    Keywords are found anywhere, in any case, even glued to the bytes before them (VTK reads
    words, not lines), and each one's counts read from the words after it as vtkDataReader
    does; field arrays are ``name components tuples type``. A chance match inside binary data
    can only add a claim, so whatever VTK will allocate is counted.
    """
    values = nbytes = n_points = grid = n_attr = 0
    scalars_table = False  # a SCALARS header's own LOOKUP_TABLE line is still to come
    skip_to = -1  # the end of a keyword's own words: its names and types are not keywords
    for m in _VTK_WORD.finditer(buf):
        if m.start() < skip_to:
            continue
        word = m.group().lower().decode()
        if word not in _VTK_TYPES and not word.endswith(_VTK_KEYS):
            continue  # most words in binary data: decided without slicing the buffer
        spans = [(t.group(), t.end()) for _, t in zip(range(5), re.finditer(rb"\S+", buf[m.end():m.end() + 400]))]
        words = [w for w, _ in spans]
        ints = [int(w) if w.isdigit() and len(w) < 20 else None for w in words]
        types = [w.decode("latin-1").lower() for w in words]
        if word in _VTK_TYPES:  # a field array's header: the two counts stand before the type
            before = bytes(buf[max(0, m.start() - 60):m.start()]).split()[-2:]
            if len(before) == 2 and all(b.isdigit() and len(b) < 20 for b in before):
                n = int(before[0]) * int(before[1])
                values, nbytes = values + n, nbytes + int(n * _VTK_SIZES.get(word, 1) + 0.875)
            continue
        key = word if word in _VTK_KEYS else next((k for k in _VTK_KEYS if word.endswith(k)), None)
        if key is None or (len(types) > 2 and None not in ints[:2] and types[2] in _VTK_TYPES):
            continue  # not a keyword, or a field array named like one
        nargs = _VTK_NARGS.get(key, 2) + (key == "scalars" and len(ints) > 2 and ints[2] is not None)
        skip_to = m.end() + spans[min(nargs, len(spans)) - 1][1] if spans else -1
        if key == "lookup_table" and scalars_table:
            scalars_table = False  # SCALARS' own "LOOKUP_TABLE name", followed by its data
            continue
        n = size = 0
        if key in ("point_data", "cell_data") and ints and ints[0] is not None:
            n_attr = ints[0]
        elif key == "points" and len(ints) > 1 and ints[0] is not None:
            n, size, n_points = 3 * ints[0], _VTK_SIZES.get(types[1], 1), n_points + ints[0]
        elif key in _VTK_KEYS[1:6] and len(ints) > 1 and None not in ints[:2]:
            # v5: offsets + connectivity; before: each cell's size and ids (so cells <= size)
            n, size = (ints[0] + ints[1] if v5 else max(ints[0], ints[1])), 4
        elif key == "cell_types" and ints and ints[0] is not None:
            n, size = ints[0], 4
        elif key == "dimensions" and len(ints) > 2 and None not in ints[:3]:
            grid = max(grid, ints[0] * ints[1] * ints[2])
        elif key == "scalars" and len(types) > 1:
            scalars_table = True
            comps = ints[2] if len(ints) > 2 and ints[2] is not None else 1
            n, size = n_attr * comps, _VTK_SIZES.get(types[1], 1)
        elif key == "color_scalars" and len(ints) > 1 and ints[1] is not None:
            n, size = n_attr * ints[1], 1
        elif key in ("vectors", "normals", "tensors", "tensors6") and len(types) > 1:
            n = n_attr * {"tensors": 9, "tensors6": 6}.get(key, 3)
            size = _VTK_SIZES.get(types[1], 1)
        elif key == "texture_coordinates" and len(ints) > 2 and ints[1] is not None:
            n, size = n_attr * ints[1], _VTK_SIZES.get(types[2], 1)
        elif key == "lookup_table" and len(ints) > 1 and ints[1] is not None:
            n, size = 4 * ints[1], 1
        values, nbytes = values + n, nbytes + int(n * size + 0.875)
    return values, nbytes, grid, n_points


def check_stl(path: Path) -> None:
    """A binary STL holds its triangle count after an 80-byte header, then 50 bytes a
    triangle: a count the file cannot hold is refused. (VTK reads to the end of the file, so
    the count only has to be possible; some writers leave it 0.) ASCII STL has no counts."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(512)
    looks_ascii = head.lstrip().lower().startswith(b"solid") and all(b < 128 for b in head[84:])
    if size < 84 or (looks_ascii and size != 84 + 50 * struct.unpack_from("<I", head, 80)[0]):
        return
    n = struct.unpack_from("<I", head, 80)[0]
    check_claim_fits_file(path, 84 + 50 * n, size, what=f"the STL header ({n} triangles)")


_XML_TAG = re.compile(rb"<(Piece|Points|PointData|CellData|Verts|Lines|Strips|Polys|DataArray|AppendedData)"
                      rb"\b([^>]*)>")
_XML_ATTR = re.compile(rb"(\w+)\s*=\s*[\"']([^\"']*)[\"']")


def check_vtp(path: Path) -> None:
    """Every count a VTP file declares must fit the file before vtkXMLPolyDataReader sees it:
    it allocates from them first and aborts the whole process when that fails.

    Each DataArray needs tuples x components values of at least one byte (its tuples: its
    NumberOfTuples, else its Piece's point or cell count), each declared point three values
    and each cell one; compressed data can expand only so
    far (``compressor=``: deflate's bound, LZMA the loose one), and a compressed array's block
    header (its block count and sizes) must fit the file too.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        stop = buf.find(b"<AppendedData")  # raw appended bytes may hold anything
        head_end = stop if stop >= 0 else len(buf)  # the XML part, scanned in place (no copy)
        at = buf.find(b"<VTKFile", 0, 4096)
        opening = bytes(buf[at:buf.find(b">", at, at + 4096) + 1]) if at >= 0 else b""
        top = dict(_XML_ATTR.findall(opening))
        compressor = top.get(b"compressor", b"").upper()
        kind = None if not compressor else "bzip2" if b"LZMA" in compressor else "gzip"
        hsize = 8 if top.get(b"header_type", b"").upper() == b"UINT64" else 4
        appended = buf.find(b"_", stop) + 1 if stop >= 0 else -1
        raw = stop >= 0 and b'encoding="raw"' in bytes(buf[stop:stop + 200])
        need, declared, counts, section = 0, 0, {}, b""
        for m in _XML_TAG.finditer(buf, 0, head_end):
            tag, attrs = m.group(1), dict(_XML_ATTR.findall(m.group(2)))
            try:
                if tag == b"Piece":
                    counts = {k[8:]: int(v) for k, v in attrs.items() if k.startswith(b"NumberOf")}
                    if any(v < 0 for v in counts.values()):
                        raise ValueError("negative count")
                    # a point is three numbers, a cell at least its offset, even with no arrays
                    declared += sum(3 * v if k == b"Points" else v for k, v in counts.items())
                    continue
                if tag != b"DataArray":
                    section = tag
                    continue
                comps = int(attrs.get(b"NumberOfComponents", 1))
                cells = sum(counts.get(k, 0) for k in (b"Verts", b"Lines", b"Strips", b"Polys"))
                default = counts.get(section, cells) if section in (b"Verts", b"Lines", b"Strips", b"Polys") \
                    else counts.get(b"Points", 0) if section in (b"Points", b"PointData") else cells
                tuples = int(attrs.get(b"NumberOfTuples", default))
                if comps < 0 or tuples < 0:
                    raise ValueError("negative count")
                need += comps * tuples
                if kind and attrs.get(b"format") in (b"binary", b"appended"):
                    _check_vtp_blocks(path, buf, m.end(), attrs, appended, raw, hsize, size, kind)
            except ValueError as exc:
                raise LoadError(path, f"bad count in the VTP header ({exc})") from None
    check_claim_fits_file(path, max(need, declared), size, compression=kind, what="the VTP header")


def _check_vtp_blocks(path: Path, buf, end: int, attrs: dict, appended: int, raw: bool,
                      hsize: int, size: int, kind: str) -> None:
    """A compressed array starts with (blocks, block size, last block size, sizes...): VTK
    allocates from them, so they must fit the file (and its compression bound)."""
    fmt = "<" + "IQ"[hsize == 8] * 3
    if attrs.get(b"format") == b"appended":
        if appended <= 0:
            return
        pos = appended + int(attrs.get(b"offset", 0))
        blob = bytes(buf[pos:pos + (3 * hsize if raw else 4 * hsize + 8)])
    else:
        blob = bytes(buf[end:end + 8 * hsize]).lstrip()
        raw = False
    if not raw:
        blob = base64.b64decode(blob[:4 * hsize] + b"===", validate=False) if blob else b""
    if len(blob) < 3 * hsize:
        return  # VTK reports the short header itself
    blocks, block, last = struct.unpack_from(fmt, blob)
    limit = size * (MAX_BZIP2_RATIO if kind == "bzip2" else MAX_DEFLATE_RATIO) + 1024
    if blocks * hsize > size or max(block, last) > limit or blocks * block > limit:
        raise LoadError(path, f"corrupt compressed data header ({blocks} blocks of {block} bytes "
                              f"in a {size}-byte file)")


def check_obj(path: Path) -> None:
    """Every face/line/point corner ``v[/vt][/vn]`` must name an existing v, vt and vn: VTK does
    not check, and crashes. Vectorised over the whole file (about 0.1 s per 10 MB)."""
    data = np.fromfile(path, np.uint8)
    starts = np.r_[0, np.flatnonzero(data[:-2] == 10) + 1]  # lines with at least 2 more bytes
    ends = np.r_[starts[1:] - 1, len(data)]
    c0, c1, c2 = (data[np.minimum(starts + i, len(data) - 1)] for i in range(3))
    ws1, ws2 = (c1 == 32) | (c1 == 9), (c2 == 32) | (c2 == 9)
    v = c0 == ord("v")
    counts = np.array([np.sum(v & ws1), np.sum(v & (c1 == ord("t")) & ws2),
                       np.sum(v & (c1 == ord("n")) & ws2)])
    is_f = ((c0 == ord("f")) | (c0 == ord("l")) | (c0 == ord("p"))) & ws1
    data[starts[is_f]] = 32  # drop the keyword: only corners and newlines are left in the runs
    first_f = is_f & ~np.r_[False, is_f[:-1]]
    last_f = is_f & ~np.r_[is_f[1:], False]  # runs of consecutive face lines, copied at once
    runs = [data[i:j] for i, j in zip(starts[first_f], ends[last_f] + 1)]
    corners = np.concatenate(runs) if runs else np.empty(0, np.uint8)
    hashes, lf = np.flatnonzero(corners == ord("#")), np.r_[np.flatnonzero(corners == 10), len(corners)]
    for h, e in zip(hashes, lf[np.searchsorted(lf, hashes)]):  # trailing comments (rare)
        corners[h:e] = 32
    text = corners.tobytes().replace(b"//", b"/0/")  # "v//vn": vt 0 stands for "none"
    chars = np.frombuffer(text, np.uint8)
    space = chars <= 32
    first = np.flatnonzero(~space & np.r_[True, space[:-1]])  # where each corner starts
    slashes = np.flatnonzero(chars == ord("/"))
    per = 1 + np.bincount(np.searchsorted(first, slashes, side="right") - 1, minlength=len(first))
    try:
        numbers = np.fromstring(text.replace(b"/", b" "), dtype=np.int64, sep=" ")
    except ValueError:
        numbers = np.empty(0, np.int64)
    if len(numbers) != per.sum() or per.max(initial=1) > 3:
        raise LoadError(path, "a face corner is not of the form v, v/vt, v//vn or v/vt/vn")
    slot = np.arange(len(numbers)) - np.repeat(np.cumsum(per) - per, per)  # 0 v, 1 vt, 2 vn
    limit = counts[slot]
    ok = ((numbers >= -limit) & (numbers != 0) & (numbers <= limit)) | ((numbers == 0) & (slot == 1))
    if not ok.all():
        bad = int(np.argmin(ok))
        raise LoadError(path, f"a face uses {('v', 'vt', 'vn')[slot[bad]]} {numbers[bad]} but the "
                              f"file has {limit[bad]}: corrupt file")


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_PLY_INDEX = ("vertex_indices", "vertex_index")


def check_ply(path: Path) -> None:
    """Check a PLY's header, length and face indices before VTK sees it: vtkPLYReader (VTK 9)
    segfaults on truncated binary data and on out-of-range face indices."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise LoadError(path, "not a PLY file (no 'ply ... end_header' header)")
    start = head.find(b"\n", end) + 1 or len(head)
    fmt, elements = "", []  # (name, count, [(property, list count dtype | None, item dtype)])
    try:
        for line in head[:end].decode("ascii", "replace").splitlines():
            tok = line.split()
            if tok and tok[0] == "format":
                fmt = tok[1]
            elif tok and tok[0] == "element":
                elements.append((tok[1], int(tok[2]), []))
            elif tok and tok[0] == "property" and elements:
                is_list = tok[1] == "list"
                elements[-1][2].append((tok[-1], _PLY_TYPES[tok[2]] if is_list else None,
                                        _PLY_TYPES[tok[3] if is_list else tok[1]]))
            elif tok and tok[0] not in ("ply", "comment", "obj_info"):
                raise ValueError(line[:40])
    except (IndexError, KeyError, ValueError) as exc:
        raise LoadError(path, f"bad PLY header line ({type(exc).__name__}: {exc})") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise LoadError(path, f"unknown PLY format {fmt!r}")
    names = {name: {p for p, _, _ in props} for name, _, props in elements}
    counts = {name: count for name, count, _ in elements}
    if any(c < 0 for c in counts.values()):
        raise LoadError(path, "negative element count in the PLY header")
    if not {"x", "y", "z"} <= names.get("vertex", set()):
        raise LoadError(path, "the PLY header has no vertex x, y, z properties")
    if "face" in counts and not names["face"] & set(_PLY_INDEX):  # VTK would crash on it
        raise LoadError(path, "the PLY faces have no vertex_indices property")
    n_vert = counts["vertex"]
    # the least each element's records can take (lists empty; ASCII: a digit and a space per
    # value), checked before any walk or allocation: the counts are the file's own claims
    each = [sum(np.dtype(c if c is not None else t).itemsize for _, c, t in props)
            if fmt != "ascii" else 2 * len(props) for _, _, props in elements]
    need = sum(count * b for (_, count, _), b in zip(elements, each)) - (fmt == "ascii")
    check_claim_fits_file(path, need, path.stat().st_size - start,
                          what=f"the PLY header ({', '.join(f'{c:,} {n}' for n, c, _ in elements)})")
    try:
        if fmt == "ascii":
            _walk_ascii_ply(path, start, elements, n_vert)
            return
        order = "<" if fmt == "binary_little_endian" else ">"
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos = start
            for name, count, props in elements:
                pos = _ply_element_end(buf, pos, count, props, order,
                                       n_vert if name == "face" else None)
                if pos > len(buf):
                    raise ValueError(f"the file is truncated (its {name} data is incomplete)")
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None
    except IndexError:
        raise LoadError(path, "a face line has fewer values than the header says") from None


def _check_indices(ids, n_vert: int) -> None:
    if len(ids) and (min(ids) < 0 or max(ids) >= n_vert):
        bad = min(ids) if min(ids) < 0 else max(ids)
        raise ValueError(f"a face uses vertex {bad} but there are {n_vert} vertices: corrupt file")


def _walk_ascii_ply(path: Path, start: int, elements: list, n_vert: int) -> None:
    """One element a line (as VTK reads them); face lines parsed to check their indices."""
    with open(path, "rb") as fh:
        fh.seek(start)
        lines = (ln for ln in fh if ln.strip())
        for name, count, props in elements:
            check = name == "face" and any(p in _PLY_INDEX for p, _, _ in props)
            for _ in range(count):
                line = next(lines, None)
                if line is None:
                    raise ValueError(f"the file is truncated (its {name} data is incomplete)")
                tok, i = line.split() if check else (), 0
                for prop, c, _t in props if check else ():
                    n = int(tok[i]) if c is not None else 0  # ValueError for junk
                    if prop in _PLY_INDEX:
                        ids = [int(v) for v in tok[i + 1:i + 1 + n]]
                        if len(ids) < n:
                            raise ValueError("a face line is shorter than its vertex count")
                        _check_indices(ids, n_vert)
                    i += 1 + n if c is not None else 1


def _ply_element_end(buf, pos: int, count: int, props: list, order: str,
                     n_vert: int | None) -> int:
    """Byte offset after ``count`` binary records from ``pos`` (beyond ``len(buf)`` if cut
    short); face indices are checked against ``n_vert`` unless it is None."""
    size = lambda t: np.dtype(t).itemsize  # noqa: E731

    def record_end(off: int, lists: list | None = None) -> int:
        first = off
        for prop, c, t in props:
            if c is None:
                off += size(t)
                continue
            n = int(struct.unpack_from(order + np.dtype(c).char, buf, off)[0]) \
                if off + size(c) <= len(buf) else -1
            if n < 0 or off + size(c) + n * size(t) > len(buf):
                return len(buf) + 1
            if lists is not None:  # (offset in the record, property, count type, type, length)
                lists.append((off - first, prop, c, t, n))
            off += size(c)
            if n_vert is not None and prop in _PLY_INDEX and n:
                _check_indices(struct.unpack_from(f"{order}{n}{np.dtype(t).char}", buf, off), n_vert)
            off += n * size(t)
        return off

    lists: list = []
    stride = record_end(pos, lists) - pos  # of the first record
    if count == 0 or not lists:
        return pos + count * stride
    if pos + count * stride <= len(buf):
        # vectorised when every record has the first one's list lengths (triangle meshes)
        rec = np.frombuffer(buf, np.uint8, count * stride, pos).reshape(count, stride)
        same = all(np.all(rec[:, o:o + size(c)].copy().view(order + c) == n)
                   for o, _, c, _, n in lists)
        ranges = [(int(ids.min()), int(ids.max())) for ids in (
            rec[:, o + size(c):o + size(c) + n * size(t)].copy().view(order + t)
            for o, prop, c, t, n in lists if same and n_vert is not None and prop in _PLY_INDEX and n)]
        del rec  # release the view before the mmap is closed (or an error is raised)
        if same:
            for lo_hi in ranges:
                _check_indices(lo_hi, n_vert)
            return pos + count * stride
    off = pos  # mixed list lengths: walk record by record (slow; rare in binary files)
    for _ in range(count):
        off = record_end(off)
        if off > len(buf):
            break
    return off


CHECKS = {".ply": check_ply, ".obj": check_obj, ".vtk": check_vtk_legacy, ".stl": check_stl, ".vtp": check_vtp}
"""The check to run before VTK's reader, by suffix."""
