"""Normals and orientation of triangle meshes: smooth normals that keep creases, crease splitting,
the orientation of a closed mesh. numpy only."""

from __future__ import annotations

import numpy as np

from ..model.geometry import Mesh, faces_around

__all__ = ["smooth_normals", "split_creases", "closed_orientation"]


def _weld_and_face_normals(points, faces):
    pts = np.asarray(points, float)
    faces = np.asarray(faces, np.int64)
    _, weld = np.unique(pts, axis=0, return_inverse=True)
    fn = np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]])
    fu = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
    return pts, faces, weld.reshape(-1), fn, fu


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.where(norm > 0, v / np.where(norm > 0, norm, 1.0), fallback)


def smooth_normals(points: np.ndarray, faces: np.ndarray, crease_angle: float = 40.0) -> np.ndarray:
    """(N, 3) unit vertex normals, smooth across uv seams.

    Each vertex averages (area-weighted) the normals of all faces around its POSITION (so the
    copies of a vertex split along a uv seam agree) that lie within ``crease_angle`` degrees of
    the mean normal of its own faces (a vertex already split along a sharp edge keeps the normal
    of its side). See :func:`split_creases` to split vertices at sharp edges first.
    """
    pts, faces, weld, fn, fu = _weld_and_face_normals(points, faces)
    own = np.zeros((len(pts), 3))
    for k in range(3):
        np.add.at(own, faces[:, k], fn)
    own_len = np.linalg.norm(own, axis=1)
    own = _unit(own, np.zeros(3))
    vi, g = faces_around(weld, faces, weld)
    keep = np.einsum("ij,ij->i", fu[g], own[vi]) >= np.cos(np.radians(crease_angle))
    keep |= own_len[vi] == 0  # a vertex of degenerate triangles only: all faces around it
    acc = np.zeros((len(pts), 3))
    np.add.at(acc, vi[keep], fn[g[keep]])
    return _unit(acc, np.array([0.0, 0.0, 1.0]))


def split_creases(mesh: Mesh, crease_angle: float = 40.0) -> Mesh:
    """A copy of ``mesh`` with normals that are sharp at creases and smooth elsewhere.

    Every face corner gets the area-weighted mean normal of the faces around its position
    whose normal is within ``crease_angle`` degrees of its own face's; a vertex whose corners
    end up with different normals is split into one vertex per normal (uv, colours copied).
    Faces keep their order and winding.
    """
    pts, faces, weld, fn, fu = _weld_and_face_normals(mesh.points, mesh.faces)
    corner_pos = weld[faces].reshape(-1)
    ci, g = faces_around(weld, faces, corner_pos)
    own_face = ci // 3
    degenerate = np.linalg.norm(fn, axis=1) == 0
    keep = (np.einsum("ij,ij->i", fu[g], fu[own_face]) >= np.cos(np.radians(crease_angle)))
    keep |= degenerate[own_face]
    acc = np.zeros((3 * len(faces), 3))
    np.add.at(acc, ci[keep], fn[g[keep]])
    normals = _unit(acc, np.array([0.0, 0.0, 1.0]))
    src = faces.reshape(-1)
    key = np.concatenate([src[:, None].astype(float), np.round(normals, 6)], 1)
    _, first, new_index = np.unique(key, axis=0, return_index=True, return_inverse=True)
    keep_src = src[first]

    def take(a):
        return None if a is None else np.asarray(a)[keep_src]

    return Mesh(pts[keep_src], new_index.reshape(-1, 3), uv=take(mesh.uv), texture=mesh.texture,
                colors=take(mesh.colors), normals=normals[first], name=mesh.name, source=mesh.source,
                meta={k: v for k, v in mesh.meta.items() if k != "vmapping"})


def closed_orientation(points: np.ndarray, faces: np.ndarray) -> int:
    """+1 if the triangles form closed surfaces, consistently oriented, facing outwards (positive
    signed volume); -1 if they face inwards; 0 if not closed or not consistently oriented.

    Vertices at the same position count as one (meshes split along uv seams); triangles with
    two corners at one position are ignored.
    """
    pts = np.asarray(points, float)
    _, weld = np.unique(pts, axis=0, return_inverse=True)
    f = weld.reshape(-1)[np.asarray(faces, np.int64)]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    if len(f) < 4:
        return 0
    n = int(weld.max()) + 1
    u = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    v = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    fwd, back = np.sort(u * n + v), np.sort(v * n + u)
    if np.any(fwd[1:] == fwd[:-1]) or not np.array_equal(fwd, back):
        return 0  # an edge used twice the same way, or without its opposite: open or flipped
    a, b, c = (pts[np.asarray(faces)[:, k]] for k in range(3))
    vol = float(np.einsum("ij,ij->", a, np.cross(b, c)))
    return 1 if vol > 0 else (-1 if vol < 0 else 0)
