"""The default demo scene's data: a textured globe (pyvista's, or one made here), a point cloud, and
how they sit next to the CT phantom (whose own tests are in test_phantom.py). No downloads."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.geometry.primitives import uv_sphere
from viewer.samples import demo
from viewer.model import LabelMap, Mesh, PointCloud, Volume


def test_textured_mesh():
    mesh = demo.textured_mesh(radius=50.0, center=(200.0, 0.0, 0.0))
    assert isinstance(mesh, Mesh) and mesh.n_faces > 0
    assert mesh.uv.shape == (mesh.n_points, 2)
    assert 0.0 <= mesh.uv.min() and mesh.uv.max() <= 1.0
    assert mesh.texture.dtype == np.uint8 and mesh.texture.ndim == 3 and mesh.texture.shape[2] in (3, 4)
    r = np.linalg.norm(mesh.points - [200.0, 0.0, 0.0], axis=1)
    np.testing.assert_allclose(r.max(), 50.0, rtol=1e-6)
    # uv origin bottom-left: the north pole (+z) maps to v = 1, the top row of the texture
    assert mesh.uv[np.argmax(mesh.points[:, 2]), 1] == pytest.approx(1.0)
    assert mesh.uv[np.argmin(mesh.points[:, 2]), 1] == pytest.approx(0.0)


def test_procedural_globe_is_the_geometry_sphere_with_the_globe_texture():
    mesh = demo.procedural_globe()
    assert mesh.texture.shape == (256, 512, 3) and mesh.texture.dtype == np.uint8
    np.testing.assert_array_equal(demo.globe_texture(), mesh.texture)
    assert (mesh.texture[0, 0] == 255).all()  # the orientation mark at the top-left
    np.testing.assert_allclose(np.linalg.norm(mesh.points, axis=1), 1.0)
    assert mesh.uv[np.argmax(mesh.points[:, 2]), 1] == pytest.approx(1.0)
    # one uv sphere in the code base: the demo's name for it is the geometry room's function
    assert demo.uv_sphere is uv_sphere
    assert mesh.n_faces == uv_sphere(48, 96).n_faces


@pytest.mark.parametrize("direction, u", [((1, 0, 0), 0.5), ((0, 1, 0), 0.75), ((0, -1, 0), 0.25)],
                         ids=["+x", "+y", "-y"])
def test_procedural_globe_faces_the_way_pyvistas_globe_does(direction, u):
    """The fallback must put the same texture column where pyvista's globe does: u = 0.5 at +x."""
    d = np.asarray(direction, float)
    for mesh in (demo.procedural_globe(), demo.textured_mesh(radius=1.0)):
        i = np.argmax(mesh.points @ d)
        assert mesh.uv[i, 0] == pytest.approx(u, abs=0.02), mesh.meta
        assert mesh.uv[i, 1] == pytest.approx(0.5, abs=0.02)  # the equator is the texture's middle row


def test_point_cloud():
    pc = demo.point_cloud(n=5000, seed=3)
    assert isinstance(pc, PointCloud) and pc.n_points == 5000
    assert pc.colors.shape == (5000, 3) and pc.colors.dtype == np.uint8
    np.testing.assert_array_equal(pc.points, demo.point_cloud(n=5000, seed=3).points)
    extent = np.ptp(pc.points, axis=0)
    assert 50 < extent.max() < 150  # ~100 mm across
    low, high = np.argmin(pc.points[:, 2]), np.argmax(pc.points[:, 2])
    assert pc.colors[low, 2] > pc.colors[low, 0] and pc.colors[high, 0] > pc.colors[high, 2]


def test_demo_layers_do_not_overlap():
    layers = demo.demo_layers()
    assert [type(x) for x in layers] == [Volume, LabelMap, Mesh]
    vol, _, mesh = layers
    vb = vol.bounds_world()
    mb = np.asarray(mesh.bounds()).reshape(3, 2)
    assert mb[0, 0] > vb[1, 0] or mb[0, 1] < vb[0, 0]  # separated along x
    assert 90 < np.ptp(mesh.points, axis=0).max() < 110
    centre_z = float(vb[:, 2].mean())
    assert mb[2, 0] > centre_z  # the axial plane the window opens on does not cut the globe
