"""Slice views draw where meshes and point clouds cross their plane (rendered pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.geometry.primitives import uv_sphere
from viewer.model import MeshLayer, PointCloud, PointsLayer, Scene, Volume, layer_for
from viewer.render.offscreen import render_scene


def _scene(cursor_z: float) -> Scene:
    scene = Scene()
    # a dark 80 mm cube of voxels centred on the origin frames the view
    vol = Volume(np.zeros((80, 80, 80), np.int16), np.array([[1, 0, 0, -39.5], [0, 1, 0, -39.5],
                                                             [0, 0, 1, -39.5], [0, 0, 0, 1.0]]))
    scene.add(layer_for(vol))
    mesh = MeshLayer(uv_sphere(radius=20.0))
    mesh.color = (1.0, 0.0, 0.0)
    scene.add(mesh)
    ring = np.array([[30 * np.cos(t), 30 * np.sin(t), 0.0] for t in np.linspace(0, 2 * np.pi, 60, endpoint=False)])
    pts = PointsLayer(PointCloud(np.concatenate([ring, ring + [0, 0, 25.0]])))
    pts.color, pts.point_size = (0.0, 1.0, 0.0), 5.0
    scene.add(pts)
    scene.cursor = np.array([0.0, 0.0, cursor_z])
    return scene


def _radii(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Distances of the masked pixels from the image centre, in mm (80 mm across 400 px, 5 % margin)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    mm_per_px = 80.0 * 1.1 / h  # reset_camera fits the 80 mm volume with a 5 % margin each side
    return np.hypot(xs - (w - 1) / 2, ys - (h - 1) / 2) * mm_per_px


@pytest.mark.parametrize("z,circle_mm", [(0.0, 20.0), (12.0, 16.0)])
def test_mesh_outline_and_nearby_points_drawn_in_the_axial_view(z, circle_mm):
    img = render_scene(_scene(z), "axial", (400, 400)).astype(int)
    red = (img[..., 0] > 220) & (img[..., 1] < 40) & (img[..., 2] < 40)
    green = (img[..., 1] > 220) & (img[..., 0] < 40)
    assert red.sum() > 100
    r = _radii(img, red)
    assert abs(np.median(r) - circle_mm) < 1.5, (np.median(r), circle_mm)
    if z == 0.0:  # the ring of points lies in this plane, the other 25 mm above it
        assert green.sum() > 100 and abs(np.median(_radii(img, green)) - 30.0) < 2.0
    else:
        assert green.sum() == 0


def test_nothing_drawn_where_the_plane_misses_the_mesh():
    img = render_scene(_scene(35.0), "axial", (400, 400)).astype(int)
    assert ((img[..., 0] > 220) & (img[..., 1] < 40)).sum() == 0


def test_hidden_layer_not_drawn():
    scene = _scene(0.0)
    for layer in scene:
        if isinstance(layer, MeshLayer):
            layer.visible = False
    img = render_scene(scene, "coronal", (300, 300)).astype(int)
    assert ((img[..., 0] > 220) & (img[..., 1] < 40)).sum() == 0


def _box_layer():
    from viewer.model.boxes import Boxes, BoxesLayer

    return BoxesLayer(Boxes([[-5, -5, -5, 5, 5, 5]], [0.9]))


@pytest.mark.parametrize("make", [
    lambda: layer_for(Volume(np.zeros((8, 8, 8), np.int16), np.eye(4))),
    lambda: MeshLayer(uv_sphere(radius=3.0)),
    lambda: PointsLayer(PointCloud(np.zeros((4, 3)))),
    _box_layer,
], ids=["image", "mesh", "points", "boxes"])
def test_a_removed_layer_is_no_longer_heard_by_the_slice_view(make):
    """A slice view lets go of every slot it connected to a layer once the layer is removed: its
    visuals used to loop over the event group, which yields names, and failed silently."""
    import pyvista as pv

    from viewer.render.slice_view import SliceView

    layer = make()
    before = {name: len(getattr(layer.events, name)) for name in layer.events}
    scene = Scene()
    plotter = pv.Plotter(off_screen=True, window_size=[64, 64])
    try:
        view = SliceView(plotter.renderer, scene, "axial")
        scene.add(layer)
        assert any(len(getattr(layer.events, n)) > before[n] for n in before)  # the view listens
        scene.remove(layer)
        assert {name: len(getattr(layer.events, name)) for name in layer.events} == before
        view.close()
    finally:
        plotter.close()
