"""Surface meshes and point clouds in world coordinates (the file's own units)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Mesh", "PointCloud", "faces_around"]


@dataclass(eq=False)
class Mesh:
    """A triangle mesh.

    Parameters
    ----------
    points : (N, 3) float vertex positions.
    faces : (M, 3) int vertex indices of each triangle (polygons are triangulated on load).
    uv : (N, 2) float texture coordinates in 0..1, origin at the image's bottom-left (OpenGL).
    texture : (H, W, 3 or 4) uint8 texture image, row 0 at the top.
    colors : (N, 3) uint8 per-vertex colours.
    normals : (N, 3) float per-vertex normals.
    """

    points: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    name: str = ""
    source: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=float).reshape(-1, 3)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        n = len(self.points)
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= n):
            raise ValueError("faces refer to vertices that do not exist")
        for name, width in (("uv", 2), ("colors", 3), ("normals", 3)):
            arr = getattr(self, name)
            if arr is not None and np.asarray(arr).reshape(len(arr), -1).shape != (n, width):
                raise ValueError(f"{name} has {len(arr)} rows for {n} vertices")

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    def bounds(self) -> list[float]:
        """[xmin, xmax, ymin, ymax, zmin, zmax] of the finite vertices."""
        return _bounds(self.points)


@dataclass(eq=False)
class PointCloud:
    """Points with optional per-point colours (uint8 RGB) and normals."""

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    name: str = ""
    source: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=float).reshape(-1, 3)
        if self.colors is not None:
            c = np.asarray(self.colors)
            if c.shape != (len(self.points), 3):
                raise ValueError(f"colours have shape {c.shape} for {len(self.points)} points")
            if c.dtype != np.uint8:
                c = np.clip(c * 255.0 if c.dtype.kind == "f" and c.max() <= 1.0 else c, 0, 255)
                c = c.astype(np.uint8)
            self.colors = c

    @property
    def n_points(self) -> int:
        return len(self.points)

    def bounds(self) -> list[float]:
        return _bounds(self.points)


def _bounds(points: np.ndarray) -> list[float]:
    p = points[np.all(np.isfinite(points), axis=1)] if len(points) else points
    if len(p) == 0:
        return [0.0] * 6
    lo, hi = p.min(0), p.max(0)
    return [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])]


def faces_around(weld: np.ndarray, faces: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, face) pair with ``face`` touching position ``query[i]``: indices into
    ``query`` and into ``faces`` (``weld`` maps vertices to positions)."""
    cw = weld[faces].reshape(-1)
    order = np.argsort(cw, kind="stable")
    cw_sorted, cf_sorted = cw[order], np.repeat(np.arange(len(faces)), 3)[order]
    start = np.searchsorted(cw_sorted, query, "left")
    count = np.searchsorted(cw_sorted, query, "right") - start
    qi = np.repeat(np.arange(len(query)), count)
    return qi, cf_sorted[start[qi] + np.arange(len(qi)) - np.repeat(np.cumsum(count) - count, count)]
