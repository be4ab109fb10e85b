"""Plane cuts of meshes and point clouds, against the exact answers for a sphere and a box."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.geometry.cuts import mesh_plane_segments, points_near_plane
from viewer.geometry.primitives import uv_sphere
from viewer.render.slicing import plane_axes


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("offset", [0.0, 6.0, -9.5])
def test_sphere_cut_is_a_circle_of_the_right_radius(view, offset):
    mesh = uv_sphere(radius=12.0, center=(3.0, -2.0, 5.0))
    u, v, n = plane_axes(view)
    centre = np.array([3.0, -2.0, 5.0])
    depth = float(n @ centre) + offset
    seg = mesh_plane_segments(mesh.points, mesh.faces, n, depth, u, v)
    assert len(seg) > 20
    ends = seg.reshape(-1, 2)
    r = np.linalg.norm(ends - [u @ centre, v @ centre], axis=1)
    expected = np.sqrt(12.0 ** 2 - offset ** 2)
    # vertices lie on the sphere; the chords' ends on its facets, a little inside
    assert np.all(r <= expected + 1e-9) and np.all(r >= expected * 0.97), (r.min(), r.max(), expected)
    # the segments close into a loop: every end point is shared by an even number of segments
    # (two; four where the plane passes through a vertex or the uv seam's split copies)
    keys, counts = np.unique(np.round(ends, 6), axis=0, return_counts=True)
    assert np.all(counts % 2 == 0), counts
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum()
    assert length == pytest.approx(2 * np.pi * expected, rel=0.02)  # the circle's perimeter, once


def test_plane_missing_the_mesh_gives_nothing():
    mesh = uv_sphere(radius=5.0)
    u, v, n = plane_axes("axial")
    assert mesh_plane_segments(mesh.points, mesh.faces, n, float(n @ [0, 0, 20.0]), u, v).shape == (0, 2, 2)


def test_face_lying_in_the_plane_is_not_drawn_twice():
    # a unit cube's bottom face (z = 0) lies in the plane z = 0
    pts = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 7, 5], [4, 6, 7], [0, 5, 1], [0, 4, 5],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    u, v, n = np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]
    seg = mesh_plane_segments(pts, faces, n, 0.5, u, v)
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum()
    assert length == pytest.approx(4.0)  # the square section's perimeter
    # at the bottom plane itself the section is the face's outline at most once
    assert np.linalg.norm(np.diff(mesh_plane_segments(pts, faces, n, 0.0, u, v), axis=1), axis=2).sum() <= 4.0 + 1e-9


def test_points_near_the_plane_projected():
    pts = np.array([[0, 0, 0.4], [1, 2, -0.4], [5, 5, 0.6], [7, 1, 3]], float)
    u, v, n = np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]
    uv, idx = points_near_plane(pts, n, 0.0, 0.5, u, v)
    assert idx.tolist() == [0, 1] and np.allclose(uv, [[0, 0], [1, 2]])
