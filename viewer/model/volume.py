"""Voxel volumes in world millimetres (RAS, the NIfTI convention)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Volume", "axcodes", "voxel_volume_ml"]

_POS = "RAS"
_NEG = "LPI"


def axcodes(affine: np.ndarray) -> str:
    """Anatomical direction each voxel axis points to, e.g. ``"LPS"`` for a DICOM-ordered array.

    Parameters
    ----------
    affine : (4, 4) voxel index -> RAS mm.

    The axis a voxel axis is assigned is its largest direction cosine, taken greedily so that
    no two voxel axes share a world axis (as nibabel's ``aff2axcodes`` does for non-degenerate
    affines).
    """
    m = np.asarray(affine, float)[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    norms[norms == 0] = 1.0
    cos = np.abs(m / norms)
    codes = [""] * 3
    taken: set[int] = set()
    # strongest cosines first, so an oblique axis never steals the axis another one owns
    for flat in np.argsort(-cos, axis=None):
        world, vox = divmod(int(flat), 3)
        if codes[vox] or world in taken:
            continue
        codes[vox] = _POS[world] if m[world, vox] >= 0 else _NEG[world]
        taken.add(world)
    return "".join(codes)


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in millilitres (|det| of the 3x3 part, mm^3 / 1000)."""
    return float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0


@dataclass(eq=False)
class Volume:
    """A scalar volume on a voxel grid placed in the world.

    Parameters
    ----------
    array : (I, J, K) voxel values, indexed ``array[i, j, k]`` in the file's own voxel order
        (often Fortran-ordered and memory-mapped; never written to).
    affine : (4, 4) maps a voxel index ``(i, j, k, 1)`` to RAS millimetres. DICOM's LPS is
        converted on load; oblique orientations are kept exactly.
    modality : "CT", "MR", ... or "" when unknown. CT values are Hounsfield units.
    name : display name.
    source : where it came from (file or folder), used by scene files.
    meta : loader extras (series description, 4D frame count, original header, ...).
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""
    name: str = ""
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _stats: dict[str, float] | None = field(default=None, init=False, repr=False)
    _quick: tuple[float, float] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a volume is 3D, got shape {self.array.shape}")
        self.affine = np.asarray(self.affine, dtype=float).reshape(4, 4)
        if not np.all(np.isfinite(self.affine)) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise ValueError("the voxel-to-world affine is singular or not finite")

    # geometry -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along each voxel axis, mm."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore

    @property
    def axcodes(self) -> str:
        return axcodes(self.affine)

    @property
    def voxel_ml(self) -> float:
        return voxel_volume_ml(self.affine)

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """(..., 3) voxel indices (may be fractional) -> (..., 3) RAS mm."""
        ijk = np.asarray(ijk, float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, ras: np.ndarray) -> np.ndarray:
        """(..., 3) RAS mm -> (..., 3) fractional voxel indices."""
        inv = np.linalg.inv(self.affine)
        ras = np.asarray(ras, float)
        return ras @ inv[:3, :3].T + inv[:3, 3]

    def bounds_world(self) -> np.ndarray:
        """(2, 3) min and max RAS mm over the voxel centres of the 8 corners."""
        n = np.array(self.shape) - 1
        corners = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
        w = self.index_to_world(corners)
        return np.stack([w.min(0), w.max(0)])

    def center_world(self) -> np.ndarray:
        return self.index_to_world((np.array(self.shape) - 1) / 2.0)

    def value_at(self, ras: np.ndarray) -> float | None:
        """Voxel value nearest to a RAS point, or None outside the grid."""
        ijk = np.rint(self.world_to_index(ras)).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= np.array(self.shape)):
            return None
        return float(self.array[tuple(ijk)])

    # statistics (finite values only: NaN/Inf voxels load but never poison the numbers) -------
    def stats(self) -> dict[str, float]:
        """min, max and the 0.5 / 99.5 percentiles of the finite voxels (cached)."""
        if self._stats is None:
            self._stats = finite_stats(self.array)
        return self._stats

    def quick_range(self) -> tuple[float, float]:
        """A robust display range from a strided subsample: cheap enough for the first frame."""
        if self._stats is not None:
            return self._stats["p_low"], self._stats["p_high"]
        if self._quick is None:  # cached: the views and the panel ask for it again and again
            step = max(1, int(round((self.array.size / 2_000_000) ** (1 / 3))))
            sub = np.asarray(self.array[::step, ::step, ::step])
            s = finite_stats(sub)
            self._quick = (s["p_low"], s["p_high"])
        return self._quick


def finite_stats(a: np.ndarray) -> dict[str, float]:
    """min/max/percentiles over finite values; zeros when there are none."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            a = a[finite]
    if a.size == 0:
        return {"min": 0.0, "max": 0.0, "p_low": 0.0, "p_high": 0.0}
    lo, hi = float(a.min()), float(a.max())
    step = max(1, a.size // 1_000_000)
    sample = a.reshape(-1)[::step] if a.flags.c_contiguous or a.ndim == 1 else a.ravel(order="K")[::step]
    p_lo, p_hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if p_hi <= p_lo:
        p_lo, p_hi = lo, hi
    return {"min": lo, "max": hi, "p_low": p_lo, "p_high": p_hi}
