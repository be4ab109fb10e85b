"""Point normals for the shading network of a point renderer, from the points alone.

Under lights fixed in the world, highlights move with the view: a point's learned descriptor can
bake its diffuse colour but not a highlight seen from a new direction (the held-out error of an
NPBG fit on a specular capture is almost all highlights the training views put elsewhere). Given
a surface normal, one small network shared by all points can learn the lobes, as DNR's shading
network does from the mesh's normals (``plugins/dnr``). A cloud has no faces, so each point's
normal is the direction of least spread of its ``k`` nearest neighbours (principal component
analysis); its sign is irrelevant (the shading inputs turn it towards the camera). Computed once
per fit from the points (a file's own normals are not read: COLMAP and most scans have none, and
one rule for every cloud fits and renders alike); the checkpoint stores them with the network.
"""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_normals"]

K_NEIGHBOURS = 16
_CHUNK = 200_000  # points per batch of neighbour queries (bounds the (chunk, k, 3) temporaries)


def estimate_normals(points: np.ndarray, k: int = K_NEIGHBOURS) -> np.ndarray:
    """(N, 3) float32 unit normals of ``points`` (N, 3): the eigenvector of the least eigenvalue
    of the covariance of each point's ``k`` nearest neighbours (itself included). Fewer than 3
    points, or a degenerate neighbourhood: (0, 0, 1)."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, np.float64).reshape(-1, 3)
    out = np.zeros((len(p), 3), np.float32)
    out[:, 2] = 1.0
    if len(p) < 3:
        return out
    k = int(min(k, len(p)))
    centre = p.mean(0)
    tree = cKDTree(p - centre)
    for lo in range(0, len(p), _CHUNK):
        q = p[lo:lo + _CHUNK] - centre
        _, idx = tree.query(q, k=k)
        nb = tree.data[idx]  # (n, k, 3)
        nb = nb - nb.mean(1, keepdims=True)
        cov = np.einsum("nki,nkj->nij", nb, nb)
        w, v = np.linalg.eigh(cov)  # ascending eigenvalues
        n = v[:, :, 0]
        ok = np.isfinite(n).all(1) & (w[:, 1] > 0)
        out[lo:lo + _CHUNK][ok] = n[ok]
    return out
