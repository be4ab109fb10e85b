"""Point normals for the shading network of a point renderer.

Under lights fixed in the world, highlights move with the view: a point's learned descriptor can
bake its diffuse colour but not a highlight seen from a new direction (the held-out error of an
NPBG fit on a specular capture is almost all highlights the training views put elsewhere). Given
a surface normal, one small network shared by all points can learn the lobes, as DNR's shading
network does from the mesh's normals (``plugins/dnr``).

Where the normals come from (:func:`cloud_normals`): the file's own when it carries them
(COLMAP's dense ``fused.ply``, most photogrammetry exports, ``main.py capture``'s ``points.ply``:
normals of the surface the photos were shaded with); otherwise each point's is the direction of
least spread of its ``k`` nearest neighbours (principal component analysis), for clouds without
(COLMAP's sparse ``points3D``, XYZ, most LiDAR). The sign is irrelevant either way (the shading
inputs turn it towards the camera). The estimate sees the points' surface, not the shading's: on
the globe capture (a 980-triangle mesh shaded with interpolated vertex normals) the points lie on
flat triangles and their estimated normals are 3.7 degrees off the shading's (median), which drew
each highlight as a patchwork of the triangles it crosses in new views (held-out PSNR, NPBG, 5
minutes: 31.4 dB estimated, 33.8 with the surface's normals; docs/PERFORMANCE.md). Computed once
per fit; the checkpoint stores them with the network.
"""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_normals", "cloud_normals"]

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


def cloud_normals(cloud, own: bool = True) -> np.ndarray:
    """(N, 3) float32 unit normals of a PointCloud: its own (``own`` and the cloud has them) where
    they are finite and not zero, estimated (:func:`estimate_normals`) where not."""
    n = getattr(cloud, "normals", None) if own else None
    if n is None:
        return estimate_normals(cloud.points)
    n = np.asarray(n, np.float64).reshape(-1, 3)
    length = np.linalg.norm(n, axis=1)
    ok = np.isfinite(length) & (length > 1e-6)
    out = np.zeros(n.shape, np.float32)
    out[ok] = n[ok] / length[ok, None]
    if not ok.all():
        out[~ok] = estimate_normals(cloud.points)[~ok]
    return out
