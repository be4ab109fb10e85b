"""View sets in the window: loading adds a layer with one frustum per frame; a click on a frustum
looks through that camera (exactly: the VTK camera read back as a Camera equals the frame's) and
shows its photo; scene files restore view-set layers."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model import Camera, Frame, Scene, ViewSet, ViewSetLayer, layer_for
from viewer.model.camera import sphere_cameras

pytestmark = [pytest.mark.gui]


def sphere_views(n: int = 8, size: int = 32, radius: float = 4.0) -> ViewSet:
    """``n`` cameras around a unit sphere at the origin, each photo the sphere coloured by its
    normal (ray-traced in numpy), transparent elsewhere; every 4th frame is "test"."""
    frames = []
    for i, cam in enumerate(sphere_cameras(n, (0.0, 0.0, 0.0), radius, size)):
        o, d = cam.pixel_rays()
        b = d @ o
        disc = b * b - (o @ o - 1.0)
        hit = disc > 0
        t = -b - np.sqrt(np.where(hit, disc, 0.0))
        normal = o + t[..., None] * d
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[..., :3] = np.where(hit[..., None], (0.5 + 0.5 * normal) * 255, 0).astype(np.uint8)
        rgba[..., 3] = np.where(hit, 255, 0)
        frames.append(Frame(cam, rgba, name=f"r_{i:03d}.png", split="test" if i % 4 == 3 else "train"))
    return ViewSet(frames, background=(1.0, 1.0, 1.0), name="spheres")


@pytest.fixture
def window(app_window):
    return app_window


def test_layer_props_check_store_emit():
    views = sphere_views(4)
    layer = layer_for(views)
    assert isinstance(layer, ViewSetLayer) and layer.kind == "viewset"
    assert layer.frustum_scale > 0 and layer.selected_frame == -1 and layer.frame is None
    seen = []
    layer.events.selected_frame.connect(seen.append)
    layer.selected_frame = 2
    layer.selected_frame = 2  # no change: no event
    assert seen == [2] and layer.frame is views.frames[2]
    for bad in (4, -2, 1.5):
        with pytest.raises(ValueError):
            layer.selected_frame = bad
    with pytest.raises(ValueError):
        layer.frustum_scale = 0.0
    with pytest.raises(ValueError):
        layer.color = (2.0, 0.0, 0.0)
    state = layer.display_state()
    assert {"frustum_scale", "show_thumbnails", "selected_frame", "color"} <= set(state)


def test_frustum_corners_follow_the_intrinsics():
    from viewer.render.frusta import frustum_points

    cam = Camera(50.0, 60.0, 20.0, 14.0, 40, 30, np.eye(4))
    pts = frustum_points(cam, 2.0)
    uv, z = cam.project(pts[1:5])
    np.testing.assert_allclose(z, 2.0)
    np.testing.assert_allclose(uv, [[0, 0], [40, 0], [40, 30], [0, 30]], atol=1e-9)


def test_sparse_points_are_drawn_with_the_frusta():
    import pyvista as pv

    from viewer.model import PointCloud
    from viewer.render.view3d import View3D

    views = sphere_views(4)
    views.points = PointCloud(np.random.default_rng(0).normal(size=(50, 3)) * 0.3,
                              colors=np.full((50, 3), 200, np.uint8))
    scene = Scene()
    layer = scene.add(layer_for(views))
    plotter = pv.Plotter(off_screen=True, window_size=[200, 150])
    try:
        view = View3D(plotter.renderer, scene)
        visual = view.frusta[id(layer)]
        assert visual.points is not None and visual.points in view.props[id(layer)]
        assert visual.points.GetMapper().GetInput().GetNumberOfPoints() == 50
        assert len(view.frustum_actors(layer)) == 4
        scene.remove(layer)
        assert not view.frusta and not plotter.renderer.GetActors().IsItemPresent(visual.points)
        view.close()
    finally:
        plotter.close()


def test_loading_a_photo_set_draws_one_frustum_per_frame(window, qtbot, tmp_path):
    from viewer.io.photosets import save_transforms

    views = sphere_views(8)
    (tmp_path / "scene").mkdir()
    save_transforms(tmp_path / "scene", views)
    window.open_paths([str(tmp_path / "scene")])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    layer = window.scene[0]
    assert isinstance(layer, ViewSetLayer) and len(layer.data.frames) == 8
    view = window.views["3d"].view
    actors = view.frustum_actors(layer)
    assert len(actors) == 8
    renderer_actors = view.renderer.GetActors()
    assert all(renderer_actors.IsItemPresent(a) for a in actors)
    held_out = [f.split for f in layer.data.frames].index("test")
    colors = [a.GetProperty().GetColor() for a in actors]
    assert colors[held_out] != colors[0]  # train and test frames differ in colour
    # the thumbnails (built in a worker) arrive as one textured actor
    qtbot.waitUntil(lambda: view.frusta[id(layer)].quads.GetVisibility(), timeout=20000)
    assert view.frusta[id(layer)].quads.GetTexture() is not None
    layer.visible = False
    assert not any(a.GetVisibility() for a in actors)


def _click_point(view, layer):
    """A frame whose frustum is the one picked at its far face's centre, and that point in
    Qt widget coordinates."""
    cam = view.current_camera()
    visual = view.frusta[id(layer)]
    for i, pts in enumerate(visual.frusta):
        uv, z = cam.project(pts[1:5].mean(0, keepdims=True))
        x, y = float(uv[0, 0]), float(uv[0, 1])
        if z[0] > 0 and 5 < x < cam.width - 5 and 5 < y < cam.height - 5:
            hit = view.pick_frame(round(x), cam.height - round(y) - 1)
            if hit is not None and hit[1] == i:
                return i, x, y
    raise AssertionError("no frustum to click")


def test_click_on_a_frustum_looks_through_its_camera(window, qtbot):
    from PySide6.QtCore import QPoint, Qt

    views = sphere_views(8)
    window.scene.add(layer_for(views))
    layer = window.scene[0]
    panel = window.views["3d"]
    qtbot.wait(200)
    panel.plotter.render()
    index, x, y = _click_point(panel.view, layer)
    widget = panel.plotter.interactor
    ratio = widget.devicePixelRatioF()
    at = QPoint(round(x / ratio), round(y / ratio))
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=at)  # a click, as a person makes one
    qtbot.wait(30)
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=at)
    qtbot.waitUntil(lambda: layer.selected_frame == index, timeout=5000)
    frame = layer.data.frames[index]
    vtk_cam = panel.view.renderer.GetActiveCamera()
    seen = Camera.from_vtk(vtk_cam.GetPosition(), vtk_cam.GetFocalPoint(), vtk_cam.GetViewUp(),
                           vtk_cam.GetViewAngle(), frame.camera.width, frame.camera.height,
                           vtk_cam.GetWindowCenter())
    np.testing.assert_allclose(seen.K, frame.camera.K, atol=1e-6)
    np.testing.assert_allclose(seen.c2w, frame.camera.c2w, atol=1e-6)
    centre = np.zeros((1, 3))  # the sphere's centre projects to the same pixel in both
    np.testing.assert_allclose(seen.project(centre)[0], frame.camera.project(centre)[0], atol=1e-6)
    # the photo shows beside the view, and the frame list follows
    assert window.photo_dock.isVisible()
    assert frame.name in window.photo_view.caption.text() and frame.split in window.photo_view.caption.text()
    assert window.photo_view.image.shape == (32, 32, 3)
    assert window.render_panel.frame_list.currentRow() == index


def test_frame_list_selects_frames(window, qtbot):
    views = sphere_views(6)
    layer = window.scene.add(layer_for(views))
    panel = window.render_panel
    assert panel.frame_list.count() == 6 and "r_002" in panel.frame_list.item(2).text()
    panel.frame_list.setCurrentRow(4)
    assert layer.selected_frame == 4
    cam = window.views["3d"].view.current_camera()
    np.testing.assert_allclose(cam.center, views.frames[4].camera.center, atol=1e-9)


def test_scene_file_restores_a_view_set(tmp_path):
    from viewer.io.scene_file import read_scene, restore_layers, save_scene
    from viewer.io.photosets import save_transforms

    views = sphere_views(4)
    (tmp_path / "photos").mkdir()
    save_transforms(tmp_path / "photos", views)
    from viewer.io import load_path

    loaded = load_path(tmp_path / "photos")
    scene = Scene()
    layer = scene.add(layer_for(loaded, frustum_scale=0.25, show_thumbnails=False, color=(0.2, 0.9, 0.3)))
    layer.selected_frame = 3
    save_scene(scene, tmp_path / "s.lucid3d.json")
    (restored,) = restore_layers(read_scene(tmp_path / "s.lucid3d.json"))
    assert isinstance(restored, ViewSetLayer) and len(restored.data.frames) == 4
    assert (restored.frustum_scale, restored.show_thumbnails, restored.selected_frame) == (0.25, False, 3)
    assert restored.color == (0.2, 0.9, 0.3)


def test_frustum_size_slider_scales_by_decades(window, qtbot):
    """The slider spans a tenth to ten times the size the layer opened with, on a log scale, and
    the frusta drawn follow it; the box shows the exact value."""
    from viewer.model.layer import default_frustum_scale
    from viewer.ui.layer_panel import FRUSTUM_STEPS

    layer = window.scene.add(layer_for(sphere_views(8)))
    window.scene.selected = layer
    panel = window.layer_panel
    default = default_frustum_scale(layer.data)
    assert panel.frustum_slider.value() == 0
    visual = window.views["3d"].view.frusta[id(layer)]
    depth = lambda: float(np.linalg.norm(visual.frusta[0][1:5].mean(0) - visual.frusta[0][0]))  # noqa: E731
    before = depth()
    for pos, factor in ((FRUSTUM_STEPS, 10.0), (-FRUSTUM_STEPS, 0.1), (FRUSTUM_STEPS // 2, 10 ** 0.5)):
        panel.frustum_slider.setValue(pos)
        assert layer.frustum_scale == pytest.approx(default * factor)
        assert panel.frustum_scale.value() == pytest.approx(layer.frustum_scale, rel=1e-2)
        assert depth() / before == pytest.approx(factor, rel=1e-6)
    layer.frustum_scale = default * 100  # set elsewhere (a scene file): the slider pins at its end
    assert panel.frustum_slider.value() == FRUSTUM_STEPS
