"""Where a mesh or a point cloud meets a plane: the outline a slice view draws over the image.

numpy only. A plane is given by its unit normal ``n`` and its depth ``n . p``; results are in the
plane's own 2D frame (``x = u . p``, ``y = v . p``), the display frame of a slice view.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mesh_plane_segments", "points_near_plane"]


def mesh_plane_segments(points: np.ndarray, faces: np.ndarray, n: np.ndarray, depth: float,
                        u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The segments where triangles cross the plane ``n . p = depth``.

    Parameters
    ----------
    points : (N, 3) vertices; faces : (F, 3) vertex indices.
    n, u, v : (3,) unit vectors, ``n`` normal to the plane, ``u``/``v`` its in-plane axes.

    Returns
    -------
    (M, 2, 2) float64: segment m runs from ``[m, 0]`` to ``[m, 1]`` in (u, v) mm. Vertices lying
    exactly on the plane count as above it, so an edge in the plane is drawn once, not twice, and
    a triangle that only touches the plane at a vertex gives nothing.
    """
    points = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if len(faces) == 0:
        return np.zeros((0, 2, 2))
    d = points @ np.asarray(n, np.float64) - float(depth)
    above = d[faces] >= 0  # (F, 3)
    count = above.sum(axis=1)
    crossing = (count == 1) | (count == 2)
    tri, dt, up = faces[crossing], d[faces[crossing]], above[crossing]
    # the lone vertex (the one on its own side) and the two others, in cyclic order
    lone = np.where(up.sum(axis=1) == 1, np.argmax(up, axis=1), np.argmin(up, axis=1))
    rows = np.arange(len(tri))
    a, b, c = lone, (lone + 1) % 3, (lone + 2) % 3
    pa, pb, pc = points[tri[rows, a]], points[tri[rows, b]], points[tri[rows, c]]
    da, db, dc = dt[rows, a], dt[rows, b], dt[rows, c]
    t1 = (da / (da - db))[:, None]  # the lone vertex's two edges cross the plane
    t2 = (da / (da - dc))[:, None]
    q1, q2 = pa + t1 * (pb - pa), pa + t2 * (pc - pa)
    uv = np.stack([np.asarray(u, np.float64), np.asarray(v, np.float64)], axis=1)  # (3, 2)
    seg = np.stack([q1 @ uv, q2 @ uv], axis=1)
    # a triangle touching the plane at one vertex gives a point, not a segment
    return seg[np.any(np.abs(seg[:, 0] - seg[:, 1]) > 1e-12, axis=1)]


def points_near_plane(points: np.ndarray, n: np.ndarray, depth: float, half_thickness: float,
                      u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points within ``half_thickness`` mm of the plane, projected onto it.

    Returns ``((K, 2) positions in (u, v) mm, (K,) indices into points)``.
    """
    points = np.asarray(points, np.float64)
    d = points @ np.asarray(n, np.float64) - float(depth)
    idx = np.flatnonzero(np.abs(d) <= half_thickness)
    near = points[idx]
    return np.stack([near @ np.asarray(u, np.float64), near @ np.asarray(v, np.float64)], axis=1), idx
