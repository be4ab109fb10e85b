"""Measurements a clinician places on the slices: rulers and spherical regions of interest.

Both live in RAS millimetres on the scene (``scene.measurements``), are drawn by the slice views
where they cross the plane, and are saved in scene files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .volume import Volume

__all__ = ["Ruler", "Region", "measurement_from_dict"]


def _point(v, what: str) -> tuple[float, float, float]:
    try:
        p = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be 3 numbers, got {v!r}") from None
    if len(p) != 3 or not all(math.isfinite(x) for x in p) or any(isinstance(x, bool) for x in v):
        raise ValueError(f"{what} must be 3 finite numbers, got {v!r}")
    return p  # type: ignore[return-value]


@dataclass(eq=False)
class Ruler:
    """A distance between two points (RAS mm)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    name: str = "ruler"
    kind: str = field(default="ruler", init=False)

    def __post_init__(self) -> None:
        self.p0, self.p1 = _point(self.p0, "p0"), _point(self.p1, "p1")

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.p1, self.p0)))

    def summary(self) -> str:
        return f"{self.name}: {self.length_mm:.1f} mm"

    def to_dict(self) -> dict:
        return {"kind": "ruler", "name": self.name, "p0": list(self.p0), "p1": list(self.p1)}


@dataclass(eq=False)
class Region:
    """A sphere of ``radius_mm`` at ``center``: statistics of an image's voxels inside it."""

    center: tuple[float, float, float]
    radius_mm: float
    name: str = "region"
    kind: str = field(default="region", init=False)
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.center = _point(self.center, "center")
        if isinstance(self.radius_mm, bool) or not isinstance(self.radius_mm, (int, float)) \
                or not 0 < float(self.radius_mm) < 1e4:
            raise ValueError(f"radius_mm must be a positive number of mm, got {self.radius_mm!r}")
        self.radius_mm = float(self.radius_mm)

    def measure(self, volume: Volume) -> dict:
        """Mean, SD, min, max of ``volume``'s voxels whose centres lie in the sphere (HU for CT),
        their count and the sphere's voxel volume in mL; stored in ``stats``."""
        aff = np.asarray(volume.affine, float)
        inv = np.linalg.inv(aff)
        c = (inv @ np.append(self.center, 1.0))[:3]
        sp = np.linalg.norm(aff[:3, :3], axis=0)
        half = np.ceil(self.radius_mm / sp).astype(int) + 1
        lo = np.maximum(np.floor(c).astype(int) - half, 0)
        hi = np.minimum(np.ceil(c).astype(int) + half + 1, volume.shape)
        if np.any(hi <= lo):
            self.stats = {"voxels": 0}
            return self.stats
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        offs = np.stack([g - x for g, x in zip(grids, c)], -1) @ aff[:3, :3].T
        inside = np.linalg.norm(offs, axis=-1) <= self.radius_mm
        vals = np.asarray(volume.array[tuple(slice(a, b) for a, b in zip(lo, hi))], float)[inside]
        vals = vals[np.isfinite(vals)]
        voxel_ml = abs(float(np.linalg.det(aff[:3, :3]))) / 1000.0
        if vals.size == 0:
            self.stats = {"voxels": 0}
        else:
            self.stats = {"voxels": int(vals.size), "mean": float(vals.mean()), "sd": float(vals.std(ddof=0)),
                          "min": float(vals.min()), "max": float(vals.max()), "volume_ml": vals.size * voxel_ml,
                          "unit": "HU" if volume.modality == "CT" else ""}
        return self.stats

    def summary(self) -> str:
        s = self.stats
        if not s.get("voxels"):
            return f"{self.name}: r {self.radius_mm:.1f} mm, no voxels"
        u = f" {s['unit']}" if s.get("unit") else ""
        return (f"{self.name}: mean {s['mean']:.1f}{u}, SD {s['sd']:.1f}, min {s['min']:.0f}, max {s['max']:.0f}, "
                f"{s['volume_ml']:.2f} mL")

    def to_dict(self) -> dict:
        return {"kind": "region", "name": self.name, "center": list(self.center), "radius_mm": self.radius_mm}


def measurement_from_dict(d: object) -> Ruler | Region:
    """The inverse of ``to_dict``; ValueError naming the problem for anything else."""
    if not isinstance(d, dict):
        raise ValueError("a measurement must be an object")
    name = d.get("name", d.get("kind"))
    if not isinstance(name, str):
        raise ValueError(f"name must be text, got {name!r}")
    if d.get("kind") == "ruler":
        return Ruler(d.get("p0"), d.get("p1"), name)  # type: ignore[arg-type]
    if d.get("kind") == "region":
        return Region(d.get("center"), d.get("radius_mm"), name)  # type: ignore[arg-type]
    raise ValueError(f"kind must be ruler or region, got {d.get('kind')!r}")
