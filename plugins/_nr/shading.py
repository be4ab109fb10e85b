"""Per-pixel surface normals for the renderers, from the mesh's geometry alone.

Under lights fixed in the world (any photo shoot), shading is a function of the surface normal
and the view direction: diffuse of the normal, highlights of both. A neural texture can bake the
diffuse part, but highlights move with the view; SH of the view direction alone (bands 0-2) are
far too smooth for them. Given the normal, one small network shared by all texels can learn the
lobes (see ``plugins/dnr``).

The normals are computed from points and faces only (never read from the file), so a checkpoint,
which stores points, faces and uv, renders with exactly the normals it was fitted with: each face
corner gets the area-weighted mean normal of the faces around its POSITION (copies of a vertex
split along uv seams agree) that lie within ``crease_angle`` degrees of its own face (sharp at
creases, smooth elsewhere), as ``viewer.compute.capture.split_creases`` shades a capture. A pixel's
normal interpolates its triangle's three corner normals with barycentrics recovered from its uv.
"""

from __future__ import annotations

import numpy as np

from viewer.model.geometry import Mesh, faces_around

__all__ = ["MeshShading", "mesh_shading"]

_CACHE_KEY = "_nr_shading"


def _corner_normals(points: np.ndarray, faces: np.ndarray, crease_angle: float) -> np.ndarray:
    """(F, 3, 3) unit normal of each face corner (see the module docstring)."""
    pts = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    _, weld = np.unique(pts, axis=0, return_inverse=True)
    weld = weld.reshape(-1)
    fn = np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]])
    fu = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
    corner_pos = weld[faces].reshape(-1)
    # every (corner, face touching the corner's position) pair: the same adjacency capture shades with
    ci, g = faces_around(weld, faces, corner_pos)
    own = ci // 3
    keep = np.einsum("ij,ij->i", fu[g], fu[own]) >= np.cos(np.radians(crease_angle))
    keep |= np.linalg.norm(fn, axis=1)[own] == 0
    acc = np.zeros((len(corner_pos), 3))
    np.add.at(acc, ci[keep], fn[g[keep]])
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    acc = np.where(norm > 0, acc / np.where(norm > 0, norm, 1.0), np.array([0.0, 0.0, 1.0]))
    return acc.reshape(-1, 3, 3).astype(np.float32)


class MeshShading:
    """Corner normals and uv-to-barycentric maps of one mesh (with uv).

    Parameters
    ----------
    mesh : triangle mesh with ``uv``; its world frame is the cameras'.
    crease_angle : degrees; faces meeting at a sharper angle keep separate normals.
    """

    def __init__(self, mesh: Mesh, crease_angle: float = 40.0) -> None:
        if mesh.uv is None:
            raise ValueError("per-pixel normals need a mesh with uv")
        faces = np.asarray(mesh.faces, np.int64)
        self.corner = _corner_normals(mesh.points, faces, crease_angle)
        uv = np.asarray(mesh.uv, np.float64)[faces]  # (F, 3, 2)
        e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        ok = np.abs(det) > 1e-14
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        # b = M (uv - uv0), M = inverse of [e1 e2]; a face flat in uv gets its centre's normal
        self.inv = np.stack([e2[:, 1], -e2[:, 0], -e1[:, 1], e1[:, 0]], 1).reshape(-1, 2, 2) * inv_det[:, None, None]
        self.uv0 = uv[:, 0]
        self.flat_uv = ~ok

    def normals(self, face: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 unit world normals of a rasterized view (0 where ``face`` < 0).

        face : (H, W) triangle ids, -1 where uncovered; uv : (H, W, 2) the pixels' uv.
        """
        f = np.asarray(face).reshape(-1)
        out = np.zeros((f.size, 3), np.float32)
        pix = np.flatnonzero(f >= 0)
        if pix.size:
            fid = f[pix]
            d = np.asarray(uv, np.float64).reshape(-1, 2)[pix] - self.uv0[fid]
            b = np.einsum("nij,nj->ni", self.inv[fid], d)
            b = np.where(self.flat_uv[fid, None], 1.0 / 3.0, np.clip(b, 0.0, 1.0))
            w = np.concatenate([1.0 - b.sum(1, keepdims=True), b], 1).clip(0.0, 1.0)
            n = np.einsum("nk,nkc->nc", w, self.corner[fid])
            out[pix] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return out.reshape(*np.shape(face), 3)


def mesh_shading(mesh: Mesh) -> MeshShading:
    """The mesh's :class:`MeshShading`, computed once and kept in ``mesh.meta``."""
    # keyed by the arrays themselves: meshes derived from this one copy its meta
    key = (id(mesh.points), id(mesh.faces), id(mesh.uv))
    cached = mesh.meta.get(_CACHE_KEY)
    if not (isinstance(cached, tuple) and cached[0] == key):
        cached = mesh.meta[_CACHE_KEY] = (key, MeshShading(mesh))
    return cached[1]
