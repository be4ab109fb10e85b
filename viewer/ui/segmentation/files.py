"""What the Segmentation panel does with files, without Qt: pairing images with their label files
in a folder, and copying a checkpoint folder into place atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...io import VOLUME_SUFFIXES
from ..training_panel import copy_checkpoint  # noqa: F401  (kept importable from here)

__all__ = ["LABEL_SUFFIXES", "same_grid", "volume_stem", "pairs_in_folder", "copy_checkpoint"]

LABEL_SUFFIXES = ("_seg", "_label", "_labels", "_mask")


def same_grid(a, b, atol: float = 1e-3) -> bool:
    """Two volumes/label maps on one voxel grid: equal shape, affines equal within ``atol`` mm."""
    return tuple(a.shape) == tuple(b.shape) and np.allclose(a.affine, b.affine, atol=atol)


def volume_stem(path: Path) -> tuple[str, str]:
    """``case1.nii.gz`` -> ("case1", ".nii.gz"): the name without its volume suffix, and the suffix."""
    name = path.name
    for suf in VOLUME_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    return path.stem, path.suffix


def pairs_in_folder(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, labels) files of a folder: ``X.nii.gz`` with ``X_seg`` / ``X_label(s)`` / ``X_mask``
    in any volume format, sorted by name. Files that are nobody's partner are left out."""
    files = {}
    for p in sorted(Path(folder).iterdir()):
        stem, suf = volume_stem(p)
        if p.is_file() and suf.lower() in VOLUME_SUFFIXES:
            files.setdefault(stem, p)
    pairs = []
    for stem, path in files.items():
        if any(stem.endswith(s) and stem[: -len(s)] in files for s in LABEL_SUFFIXES):
            continue  # a label file of another stem
        for s in LABEL_SUFFIXES:
            if stem + s in files:
                pairs.append((path, files[stem + s]))
                break
    return pairs
