"""The built-in demo data: deterministic, anatomically oriented, fast, no downloads."""

from __future__ import annotations

import time

import numpy as np
import pytest

from viewer.samples import demo
from viewer.model import LabelMap, Mesh, PointCloud, Volume


@pytest.fixture(scope="module")
def phantom() -> tuple[Volume, LabelMap]:
    return demo.ct_phantom()


def test_phantom_is_deterministic_and_seeded(phantom):
    vol, lab = phantom
    vol2, lab2 = demo.ct_phantom()
    np.testing.assert_array_equal(vol.array, vol2.array)
    np.testing.assert_array_equal(lab.array, lab2.array)
    np.testing.assert_array_equal(vol.affine, vol2.affine)
    other, _ = demo.ct_phantom(seed=1)
    assert not np.array_equal(vol.array, other.array)


def test_phantom_geometry(phantom):
    vol, lab = phantom
    assert vol.shape == (128, 128, 96) and vol.array.dtype == np.int16
    assert vol.axcodes == "LPS"  # voxel axes as in a DICOM-ordered array
    np.testing.assert_allclose(np.diag(vol.affine)[:3], [-1.5, -1.5, 2.0])
    np.testing.assert_allclose(vol.center_world(), 0.0, atol=1e-9)
    assert vol.modality == "CT" and vol.name == "CT phantom"
    np.testing.assert_array_equal(lab.affine, vol.affine)
    assert lab.shape == vol.shape


def test_phantom_hounsfield_ranges(phantom):
    vol, lab = phantom
    a = vol.array
    assert -1100 <= a.min() and a.max() <= 2200
    corner = a[:10, :10, :]  # outside the body: air
    assert abs(np.median(corner) + 1000) < 5 and 5 < corner.std() < 15  # noise sd ~10 HU
    expected = {1: 60, 2: 30, 3: 50}
    for value, hu in expected.items():
        assert abs(np.median(a[lab.array == value]) - hu) < 5, value
    bone = a[lab.array == 4]
    assert 650 <= np.median(bone) <= 1250 and bone.max() < 1300


def test_marker_is_at_marker_ras(phantom):
    vol, lab = phantom
    ijk = np.rint(vol.world_to_index(np.asarray(demo.MARKER_RAS))).astype(int)
    assert vol.array[tuple(ijk)] > 1500
    assert vol.value_at(np.asarray(demo.MARKER_RAS)) > 1500
    # the bright voxels are a sphere centred exactly on MARKER_RAS, with the documented radius
    bright = np.argwhere(vol.array > 1500)
    centre = vol.index_to_world(bright.mean(axis=0))
    np.testing.assert_allclose(centre, demo.MARKER_RAS, atol=0.5)
    vox_ml = len(bright) * vol.voxel_ml
    assert vox_ml == pytest.approx(4 / 3 * np.pi * demo.MARKER_RADIUS_MM ** 3 / 1000, rel=0.15)
    # asymmetric: patient's left (-x in RAS), anterior (+y), superior (+z)
    assert demo.MARKER_RAS[0] < 0 < demo.MARKER_RAS[1] and demo.MARKER_RAS[2] > 0


@pytest.mark.parametrize("shape, spacing", [((48, 48, 32), (4.0, 4.0, 6.0)),  # same 192 mm view
                                            ((32, 32, 24), (1.5, 1.5, 2.0))])  # a small view
def test_other_grids_keep_every_organ_and_the_marker(shape, spacing):
    vol, lab = demo.ct_phantom(shape, spacing, seed=2)
    assert vol.shape == lab.shape == shape and vol.axcodes == "LPS"
    assert set(np.unique(lab.array)) == {0, 1, 2, 3, 4}
    marker = np.asarray(vol.meta["marker_ras"])
    assert vol.value_at(marker) > 1500
    if np.allclose(np.multiply(shape, spacing), 192.0):
        np.testing.assert_allclose(marker, demo.MARKER_RAS)  # the same patient, coarser


def test_labels_present_with_names_and_anatomical_sides(phantom):
    vol, lab = phantom
    assert lab.array.dtype == np.uint8
    assert set(np.unique(lab.array)) == {0, 1, 2, 3, 4}
    assert {l.value: l.name for l in lab.table} == {1: "liver", 2: "kidneys", 3: "spleen", 4: "bone"}
    for label in lab.table:
        assert all(0.0 <= c <= 1.0 for c in label.color)

    def centroid(value: int) -> np.ndarray:
        return vol.index_to_world(np.argwhere(lab.array == value).mean(axis=0))

    assert centroid(1)[0] > 0  # liver on the patient's right (+x in RAS)
    assert centroid(3)[0] < 0  # spleen on the left
    kidneys = vol.index_to_world(np.argwhere(lab.array == 2))
    assert (kidneys[:, 0] > 0).any() and (kidneys[:, 0] < 0).any()  # one each side
    assert (kidneys[:, 1] < 0).all()  # posterior


def test_phantom_is_fast():
    t0 = time.perf_counter()
    demo.ct_phantom()
    assert time.perf_counter() - t0 < 1.0


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


def test_procedural_sphere_fallback():
    mesh = demo.uv_sphere()
    assert mesh.texture.shape == (256, 512, 3) and mesh.texture.dtype == np.uint8
    np.testing.assert_allclose(np.linalg.norm(mesh.points, axis=1), 1.0)
    assert mesh.uv[np.argmax(mesh.points[:, 2]), 1] == pytest.approx(1.0)
    assert (mesh.texture[0, 0] == 255).all()  # the orientation mark at the top-left
    np.testing.assert_array_equal(demo.procedural_texture(), mesh.texture)


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
