"""Label names and colours beside a mask: ITK-SNAP label descriptions and 3D Slicer colour tables.

A NIfTI mask holds only integers; the names ("left caudate") and colours live in a small text
file that every tool reads differently. Both common formats are read and written here:

ITK-SNAP label description (``*.txt``, what *Segmentation > Export label descriptions* writes)::

    # IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
        0     0    0    0     0    0   0  "Clear Label"
        1   255    0    0     1    1   1  "Left caudate"

3D Slicer colour table (``*.ctbl``, or ``*.txt`` with the same content)::

    # Color table file ...
    0 Background 0 0 0 0
    1 Left_caudate 255 0 0 255

A sidecar is found by the mask's stem: ``mask.nii.gz`` → ``mask.txt``, ``mask.ctbl``,
``mask.label.txt`` or ``mask_labels.txt`` (the first that exists and parses).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..model.errors import LoadError
from ..model.labels import Label, LabelTable
from .common import atomic_path, require_regular_file

__all__ = ["read_label_file", "write_itksnap_labels", "write_slicer_ctbl", "find_sidecar",
           "sidecar_path", "MAX_LABEL_FILE_BYTES"]

MAX_LABEL_FILE_BYTES = 4 << 20  # thousands of labels fit in a few hundred kB
MAX_LABEL_VALUE = 2**31 - 1


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def sidecar_path(mask: str | Path, style: str = "itksnap") -> Path:
    """Where a label file for ``mask`` is written: ``STEM.txt`` (ITK-SNAP) or ``STEM.ctbl`` (Slicer)."""
    mask = Path(mask)
    return mask.with_name(_stem(mask) + (".ctbl" if style == "slicer" else ".txt"))


def find_sidecar(mask: str | Path) -> Path | None:
    """The label file beside ``mask`` with the same stem, if there is one (regular files only)."""
    mask = Path(mask)
    stem = _stem(mask)
    for name in (f"{stem}.txt", f"{stem}.ctbl", f"{stem}.label.txt", f"{stem}_labels.txt", f"{stem}.labels.txt"):
        p = mask.with_name(name)
        if p != mask and p.is_file():
            return p
    return None


def _color(parts: list[str], path: Path, lineno: int) -> tuple[float, float, float]:
    try:
        rgb = [int(float(x)) for x in parts]
    except ValueError:
        raise LoadError(path, f"line {lineno}: colour {' '.join(parts)!r} is not three numbers") from None
    if not all(0 <= c <= 255 for c in rgb):
        raise LoadError(path, f"line {lineno}: colour components must be within 0..255")
    return tuple(c / 255.0 for c in rgb)  # type: ignore[return-value]


def _value(text: str, path: Path, lineno: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise LoadError(path, f"line {lineno}: label value {text!r} is not an integer") from None
    if not 0 <= v <= MAX_LABEL_VALUE:
        raise LoadError(path, f"line {lineno}: label value {v} out of range")
    return v


def read_label_file(path: str | Path) -> LabelTable:
    """Read an ITK-SNAP label description or a Slicer colour table (the format is recognised
    from the lines themselves). Value 0 (background, "Clear Label") is left out of the table."""
    path = Path(path)
    size = require_regular_file(path)
    if size > MAX_LABEL_FILE_BYTES:
        raise LoadError(path, f"{size} bytes is too large for a label file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LoadError(path, f"cannot read it ({exc.strerror or exc})") from None
    labels: list[Label] = []
    seen: set[int] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if '"' in line:  # ITK-SNAP: IDX R G B A VIS MSH "LABEL"
            try:
                parts = shlex.split(line)
            except ValueError:
                raise LoadError(path, f"line {lineno}: unbalanced quotes") from None
            if len(parts) < 8:
                raise LoadError(path, f"line {lineno}: an ITK-SNAP label line has 8 fields, found {len(parts)}")
            value = _value(parts[0], path, lineno)
            color = _color(parts[1:4], path, lineno)
            try:
                alpha, vis = float(parts[4]), int(float(parts[5]))
            except ValueError:
                raise LoadError(path, f"line {lineno}: opacity and visibility must be numbers") from None
            if not 0.0 <= alpha <= 1.0:
                raise LoadError(path, f"line {lineno}: opacity {alpha} is not within 0..1")
            name, visible, opacity = parts[7], bool(vis), alpha
        else:  # Slicer: VALUE NAME R G B A
            parts = line.split()
            if len(parts) < 6:
                raise LoadError(path, f"line {lineno}: expected 'value name R G B A' (Slicer) or an "
                                      "ITK-SNAP line with a quoted name")
            value = _value(parts[0], path, lineno)
            name = parts[1]
            color = _color(parts[2:5], path, lineno)
            try:
                a = int(float(parts[5]))
            except ValueError:
                raise LoadError(path, f"line {lineno}: alpha {parts[5]!r} is not a number") from None
            if not 0 <= a <= 255:
                raise LoadError(path, f"line {lineno}: alpha must be within 0..255")
            visible, opacity = True, a / 255.0
        if value in seen:
            raise LoadError(path, f"line {lineno}: label value {value} appears twice")
        seen.add(value)
        if value != 0:
            labels.append(Label(value, name, color, visible, opacity if opacity > 0 else 1.0))
    if not labels:
        raise LoadError(path, "no labels in this file")
    return LabelTable(labels)


def _rgb255(color) -> list[int]:
    return [int(round(float(c) * 255)) for c in color]


def write_itksnap_labels(table: LabelTable, path: str | Path, protect=()) -> Path:
    """Write ``table`` as an ITK-SNAP label description file (atomically)."""
    lines = ["################################################",
             "# ITK-SnAP Label Description File (written by Lucid3D)",
             "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
             "################################################",
             '    0     0    0    0     0    0   0  "Clear Label"']
    for lab in table:
        r, g, b = _rgb255(lab.color)
        name = lab.name.replace('"', "'")
        lines.append(f'{lab.value:5d} {r:5d} {g:4d} {b:4d} {lab.opacity:5.2f} {int(lab.visible):4d} '
                     f'{int(lab.visible):3d}  "{name}"')
    return _write(path, "\n".join(lines) + "\n", protect)


def write_slicer_ctbl(table: LabelTable, path: str | Path, protect=()) -> Path:
    """Write ``table`` as a 3D Slicer colour table (names' spaces become underscores: Slicer
    splits on whitespace)."""
    lines = [f"# Color table file {Path(path).name} (written by Lucid3D)", f"# {len(table) + 1} values",
             "0 Background 0 0 0 0"]
    for lab in table:
        r, g, b = _rgb255(lab.color)
        name = "_".join(lab.name.split()) or f"label_{lab.value}"
        lines.append(f"{lab.value} {name} {r} {g} {b} {int(round(lab.opacity * 255))}")
    return _write(path, "\n".join(lines) + "\n", protect)


def _write(path: str | Path, text: str, protect) -> Path:
    path = Path(path)
    with atomic_path(path, protect=protect) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def labels_with_sidecar(labels, mask_path: str | Path):
    """``labels`` (a LabelMap read from ``mask_path``) with names and colours from the label file
    beside it, when there is one. Values the file does not name keep their default entry; a file
    that cannot be read does not stop the mask from opening (its reason goes to ``meta['note']``)."""
    side = find_sidecar(mask_path)
    if side is None:
        return labels
    try:
        named = read_label_file(side)
    except LoadError as exc:
        note = f"label names not read from {side.name}: {exc.reason}"
        labels.meta["note"] = "; ".join(filter(None, [labels.meta.get("note"), note]))
        return labels
    rows = {lab.value: lab for lab in labels.table}
    for lab in named:
        rows[lab.value] = lab
    labels.table = LabelTable(list(rows.values()))
    labels.meta["label_file"] = str(side)
    return labels
