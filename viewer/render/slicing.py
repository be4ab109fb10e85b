"""Cutting 2D slices out of volumes for the axial, coronal and sagittal views (numpy only).

Display frame of a slice view: ``x_disp = u . p``, ``y_disp = v . p`` for a RAS point ``p``
(mm), where ``u`` points to the screen's right, ``v`` up and ``n = u x v`` out of the screen.
The orientations are 3D Slicer's (radiological convention: the patient's right on the screen's
left in axial and coronal views, anterior on the left in sagittal views).

A slice is an image in that frame: ``pixels[row, col]`` with row 0 at the bottom (VTK image
order), pixel centre ``(col, row)`` at ``origin + (col, row) * spacing``. Volumes whose voxel
axes follow the world axes (up to order and sign, as nearly all scans do) are cut by plain
indexing: exact voxel values, no interpolation, no copy of the volume. Oblique volumes are
resampled on the view's plane (linear for images, nearest for labels), as Slicer does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["ORIENTATIONS", "SliceImage", "plane_axes", "extract_slice", "slice_step", "axis_aligned"]

# columns: u (screen right), v (screen up), n (towards the viewer), each a RAS unit vector
ORIENTATIONS: dict[str, np.ndarray] = {
    "axial": np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]]).T,
    "coronal": np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]).T,
    "sagittal": np.array([[0, -1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]]).T,
}
# n = u x v: axial looks from the feet (n = -S), coronal from the front, sagittal from the left.


def plane_axes(view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, n) RAS unit vectors of a view; raises KeyError for an unknown view."""
    m = ORIENTATIONS[view]
    return m[:, 0], m[:, 1], m[:, 2]


@dataclass
class SliceImage:
    """One cut: ``pixels`` (H, W), pixel spacing and origin in display mm, the plane's depth."""

    pixels: np.ndarray
    origin: tuple[float, float]
    spacing: tuple[float, float]
    depth: float

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) display mm of the outer pixel edges."""
        h, w = self.pixels.shape
        x0 = self.origin[0] - self.spacing[0] / 2
        y0 = self.origin[1] - self.spacing[1] / 2
        return x0, x0 + w * self.spacing[0], y0, y0 + h * self.spacing[1]


def axis_aligned(affine: np.ndarray, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray] | None:
    """For a voxel->RAS affine whose axes follow the world axes, (perm, step).

    ``perm[w]`` is the voxel axis along world axis ``w``; ``step[w]`` the signed mm per voxel
    along it. None for oblique affines.
    """
    m = np.asarray(affine, float)[:3, :3]
    perm = np.argmax(np.abs(m), axis=1)
    if len(set(perm.tolist())) != 3:
        return None
    step = m[np.arange(3), perm]
    off = m.copy()
    off[np.arange(3), perm] = 0
    if np.abs(off).max() > tol * np.abs(step).max():
        return None
    return perm, step


def slice_step(affine: np.ndarray, view: str) -> float:
    """Distance between neighbouring slices of this volume along the view's normal, mm."""
    n = plane_axes(view)[2]
    m = np.asarray(affine, float)[:3, :3]
    # the voxel axis most aligned with the normal sets the stepping
    proj = np.abs(n @ m)
    return float(proj.max())


def extract_slice(array: np.ndarray, affine: np.ndarray, view: str, point: np.ndarray,
                  labels: bool = False) -> SliceImage | None:
    """The slice of ``array`` through RAS ``point`` (mm) for ``view``; None when it misses.

    Parameters
    ----------
    array : (I, J, K) voxels, any dtype (memory-mapped arrays read only the slice).
    affine : (4, 4) voxel index -> RAS mm.
    view : "axial", "coronal" or "sagittal".
    point : (3,) RAS mm the plane passes through (the crosshair).
    labels : nearest-neighbour sampling for oblique volumes (labels never blend).
    """
    u, v, n = plane_axes(view)
    aff = np.asarray(affine, float)
    aligned = axis_aligned(aff)
    depth = float(n @ np.asarray(point, float))
    if aligned is not None:
        return _aligned_slice(array, aff, aligned, u, v, n, np.asarray(point, float), depth)
    return _resampled_slice(array, aff, u, v, n, np.asarray(point, float), depth, labels)


def _world_axis(vec: np.ndarray) -> tuple[int, float]:
    w = int(np.argmax(np.abs(vec)))
    return w, float(np.sign(vec[w]))


def _aligned_slice(array, aff, aligned, u, v, n, point, depth) -> SliceImage | None:
    perm, step = aligned
    wn, _ = _world_axis(n)
    an = perm[wn]
    # fractional index along the normal's voxel axis, nearest slice
    idx = (point[wn] - aff[wn, 3]) / step[wn]
    k = int(np.floor(idx + 0.5))
    if k < 0 or k >= array.shape[an]:
        return None
    wu, su = _world_axis(u)
    wv, sv = _world_axis(v)
    au, av = perm[wu], perm[wv]
    index: list[object] = [slice(None)] * 3
    index[an] = k
    plane = np.asarray(array[tuple(index)])  # 2D over the remaining axes, in axis order
    rest = [a for a in range(3) if a != an]
    # rows follow v, columns follow u
    if rest.index(av) == 1:
        plane = plane.T
    # display coordinate per index: s * (origin + idx * step); flip where it decreases
    du, dv = su * step[wu], sv * step[wv]
    ou, ov = su * aff[wu, 3], sv * aff[wv, 3]
    if du < 0:
        plane = plane[:, ::-1]
        ou = ou + du * (array.shape[au] - 1)
    if dv < 0:
        plane = plane[::-1, :]
        ov = ov + dv * (array.shape[av] - 1)
    return SliceImage(np.ascontiguousarray(plane), (ou, ov), (abs(du), abs(dv)), depth)


def _resampled_slice(array, aff, u, v, n, point, depth, labels) -> SliceImage | None:
    shape = np.array(array.shape)
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)], float)
    world = corners @ aff[:3, :3].T + aff[:3, 3]
    du = world @ u
    dv = world @ v
    dn = world @ n
    if depth < dn.min() - 1e-6 or depth > dn.max() + 1e-6:
        return None
    h = float(np.linalg.norm(aff[:3, :3], axis=0).min())
    nx = int(np.floor((du.max() - du.min()) / h)) + 1
    ny = int(np.floor((dv.max() - dv.min()) / h)) + 1
    xs = du.min() + h * np.arange(nx)
    ys = dv.min() + h * np.arange(ny)
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx): rows follow v
    pts = gx[..., None] * u + gy[..., None] * v + depth * n
    inv = np.linalg.inv(aff)
    ijk = pts @ inv[:3, :3].T + inv[:3, 3]
    coords = np.moveaxis(ijk, -1, 0)
    fill = 0
    if not labels and array.dtype.kind in "iu":
        fill = int(np.iinfo(array.dtype).min) if array.dtype.kind == "i" else 0
    elif not labels:
        fill = np.nan
    out = ndimage.map_coordinates(np.asarray(array), coords, order=0 if labels else 1,
                                  mode="constant", cval=fill, prefilter=False,
                                  output=array.dtype if labels or array.dtype.kind == "f" else np.float32)
    return SliceImage(out, (float(xs[0]), float(ys[0])), (h, h), depth)
