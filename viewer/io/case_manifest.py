"""``cases.json``: the case manifest classifiers and detectors train on.

A JSON list, one object per case::

    [{"image": "crops/case_000.nii.gz", "label": "lesion", "boxes": [[r0, a0, s0, r1, a1, s1]]},
     {"image": "crops/case_001.nii.gz", "label": "no lesion", "boxes": []}, ...]

``image``: a volume file or DICOM folder, relative to the manifest's folder (or absolute).
``label``: the case's class name. ``boxes`` (optional): what the image holds, in RAS millimetres
(min corner, max corner); an empty list means nothing, a missing key means not said (labels alone).

:func:`read_manifest` checks all of it before a long training starts, each problem one
:class:`~viewer.model.errors.LoadError` line naming the manifest and the case: a file that is
missing, a box that is malformed or lies outside its image, a single class, images of mixed
modality (a CT next to an MR: one intensity normalisation cannot serve both).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..model.errors import LoadError
from ..model.volume import Volume
from .common import atomic_path, require_regular_file

__all__ = ["ManifestCase", "read_manifest", "write_manifest", "image_extent", "box_problem", "MAX_MANIFEST_BYTES",
           "MAX_CASES", "MAX_BOXES"]

MAX_MANIFEST_BYTES = 16 << 20  # a manifest of 100 000 cases is ~10 MB; more is not a manifest
MAX_CASES = 100_000
MAX_BOXES = 1000  # per case
_KEYS = {"image", "label", "boxes"}
# a box may reach half a voxel past the outermost voxel centres (the voxels' own extent) and a
# rounding error beyond that
_TOLERANCE_MM = 1e-3


@dataclass
class ManifestCase:
    """One row of a manifest, its image loaded (or None with ``load=False``)."""

    image: Volume | None
    label: str
    boxes: list[tuple[float, ...]] | None
    name: str
    path: Path  # the image file or folder, resolved against the manifest's folder


def image_extent(shape: Sequence[int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min corner, max corner) in RAS mm of the voxels of a grid: the outer faces of the
    outermost voxels (centres +- half a voxel), for any orientation."""
    idx = np.array([[i, j, k] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                    for k in (-0.5, shape[2] - 0.5)], float)
    ras = idx @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]
    return ras.min(axis=0), ras.max(axis=0)


def box_problem(box: Any) -> str | None:
    """Why ``box`` is not [r0, a0, s0, r1, a1, s1] with finite numbers and min < max, or None."""
    if not isinstance(box, (list, tuple)) or len(box) != 6:
        return f"a box is 6 numbers [r0, a0, s0, r1, a1, s1], got {json.dumps(box)[:80]}"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in box):
        return f"a box's corners are finite numbers, got {json.dumps(box)[:80]}"
    if any(box[a] >= box[a + 3] for a in range(3)):
        return f"a box's min corner comes first and is below its max corner on every axis, got {list(box)}"
    return None


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise LoadError(path, "no such file")
    size = require_regular_file(path, what="manifest")
    if size > MAX_MANIFEST_BYTES:
        raise LoadError(path, f"{size >> 20} MB is not a case manifest (at most {MAX_MANIFEST_BYTES >> 20})")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LoadError(path, f"not JSON ({' '.join(str(exc).split())[:200]})") from None


def _row(path: Path, i: int, row: Any) -> tuple[str, str, list[tuple[float, ...]] | None]:
    """(image, label, boxes) of row ``i``, its form checked."""
    where = f"case {i + 1}"
    if not isinstance(row, dict):
        raise LoadError(path, f"{where}: each case is an object {{image, label, boxes}}, got {type(row).__name__}")
    extra = sorted(set(row) - _KEYS)
    if extra:
        raise LoadError(path, f"{where}: unknown key {extra[0]!r} (a case has image, label and boxes)")
    image, label = row.get("image"), row.get("label")
    if not isinstance(image, str) or not image.strip():
        raise LoadError(path, f"{where}: 'image' must be a file name (relative to the manifest)")
    if not isinstance(label, str) or not label.strip():
        raise LoadError(path, f"{where} ({image}): 'label' must be a class name")
    if "boxes" not in row:
        return image, label.strip(), None
    boxes = row["boxes"]
    if not isinstance(boxes, list) or len(boxes) > MAX_BOXES:
        raise LoadError(path, f"{where} ({image}): 'boxes' must be a list of at most {MAX_BOXES} boxes")
    for b, box in enumerate(boxes):
        problem = box_problem(box)
        if problem:
            raise LoadError(path, f"{where} ({image}), box {b + 1}: {problem}")
    return image, label.strip(), [tuple(float(v) for v in box) for box in boxes]


def read_manifest(path: str | os.PathLike, *, load: bool = True, need_boxes: bool = False,
                  min_classes: int = 2) -> list[ManifestCase]:
    """The cases of the manifest at ``path``, every image loaded and every row checked.

    ``need_boxes``: every case must say its boxes (a detector learns from nothing else).
    ``min_classes``: at least this many distinct labels. With ``load=False`` only the JSON and
    the files' existence are checked (no image is read: boxes and modality go unchecked).
    Raises LoadError naming the manifest (or an image the manifest names that cannot be read).
    """
    from . import load_path
    from .guards import reading

    path = Path(path)
    rows = _read_json(path)
    if not isinstance(rows, list) or not rows:
        raise LoadError(path, "a case manifest is a non-empty JSON list of {image, label, boxes}")
    if len(rows) > MAX_CASES:
        raise LoadError(path, f"{len(rows)} cases; at most {MAX_CASES}")
    parsed = [_row(path, i, r) for i, r in enumerate(rows)]
    if need_boxes:
        for i, (image, _, boxes) in enumerate(parsed):
            if boxes is None:
                raise LoadError(path, f"case {i + 1} ({image}): no 'boxes' (a detector learns from boxes; "
                                      "give [] for a case without any)")
    classes = sorted({label for _, label, _ in parsed})
    if len(classes) < min_classes:
        raise LoadError(path, f"every case is labelled {classes[0]!r}: one class only, nothing to tell apart "
                              f"(at least {min_classes} classes needed)")
    folder = path.parent
    cases: list[ManifestCase] = []
    for i, (image, label, boxes) in enumerate(parsed):
        img_path = folder / image
        if not img_path.exists():
            raise LoadError(path, f"case {i + 1}: {image}: no such file")
        cases.append(ManifestCase(None, label, boxes, Path(image).name, img_path))
    if not load:
        return cases
    for i, case in enumerate(cases):
        with reading(case.path):
            vol = load_path(case.path)
        if not isinstance(vol, Volume) or np.asarray(vol.array).ndim != 3:
            raise LoadError(path, f"case {i + 1}: {rows[i]['image']}: not a 3D image volume")
        lo, hi = image_extent(vol.shape, vol.affine)
        for b, box in enumerate(case.boxes or []):
            if np.any(np.asarray(box[:3]) < lo - _TOLERANCE_MM) or np.any(np.asarray(box[3:]) > hi + _TOLERANCE_MM):
                raise LoadError(path, f"case {i + 1} ({rows[i]['image']}), box {b + 1}: {list(box)} lies outside "
                                      f"the image (it spans {_fmt(lo)} to {_fmt(hi)} mm RAS)")
        case.image = vol
    _check_modality(path, cases, rows)
    return cases


def _fmt(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.1f}" for x in v) + "]"


def _check_modality(path: Path, cases: list[ManifestCase], rows: list[dict]) -> None:
    """One modality for all: the first image whose modality differs from the first one's is named."""
    def modality(v: Volume) -> str:
        return (v.modality or "").upper() or "unknown (not CT)"

    first = modality(cases[0].image)
    for i, case in enumerate(cases[1:], start=1):
        m = modality(case.image)
        if m != first:
            raise LoadError(path, f"images of mixed modality: case 1 ({rows[0]['image']}) is {first}, case {i + 1} "
                                  f"({rows[i]['image']}) is {m}; train on one modality")


def write_manifest(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` ({image, label, boxes}) as a manifest, atomically; the rows are checked as
    :func:`read_manifest` checks their form (not the files)."""
    path = Path(path)
    out = []
    for i, row in enumerate(rows):
        image, label, boxes = _row(path, i, dict(row))
        entry: dict[str, Any] = {"image": image, "label": label}
        if boxes is not None:
            entry["boxes"] = [[round(v, 3) for v in b] for b in boxes]
        out.append(entry)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return path
