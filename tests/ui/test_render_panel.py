"""The Neural Rendering panel in the real window: training from the panel (a small stand-in torch
renderer written to the plugin contract, and the real texture plugin), the learned view over the
3D view, latest-frame-wins rendering, the comparison with its PSNR, checkpoints, bad input."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pytest
import torch

from viewer.jobs.progress import ImagePreview
from viewer.model import layer_for
from viewer.plugins import RendererBase

from ..conftest import quiesce
from .test_viewset_layer import sphere_views

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@dataclass
class TinyConfig:
    """Settings of the stand-in renderer."""

    iterations: int = field(default=12, metadata={"help": "optimisation steps"})
    learning_rate: float = field(default=0.3, metadata={"help": "Adam learning rate"})


class TinyNet(torch.nn.Module):
    """One learned colour inside the mesh's bounding sphere, the background outside."""

    def __init__(self, center: np.ndarray, radius: float, background) -> None:
        super().__init__()
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float64))
        self.radius, self.background = float(radius), tuple(background)
        self.logit = torch.nn.Parameter(torch.zeros(3))

    def coverage(self, camera) -> np.ndarray:
        o, d = camera.pixel_rays()
        oc = o - self.center.numpy()
        b = d @ oc
        return b * b - (oc @ oc - self.radius ** 2) > 0


def _uint8(image) -> np.ndarray:
    return (np.clip(np.asarray(image, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


class StandIn(RendererBase):
    """A renderer plugin as ``viewer.plugins`` describes one (fit, render, save, load)."""

    name = "stand-in"
    description = "one colour in the mesh's bounding sphere (test stand-in)"
    Config = TinyConfig

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.renders, self._lock = delay, 0, threading.Lock()

    def fit(self, views, geometry, config, progress, *, checkpoint_dir=None, sources=None):
        pts = np.asarray(geometry.points)
        c = pts.mean(0)
        net = TinyNet(c, float(np.linalg.norm(pts - c, axis=1).max()), views.background)
        target = torch.as_tensor(np.concatenate(
            [f.rgb(views.background)[net.coverage(f.camera)] for f in views.split("train")]))
        opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
        for step in range(config.iterations):
            loss = ((torch.sigmoid(net.logit) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            progress.update(step + 1, config.iterations, f"step {step + 1}")
            value = float(loss.detach())
            progress.metrics(step + 1, loss=value, psnr=-10.0 * np.log10(value))
            time.sleep(0.02)
        held = views.split("test")[0]
        progress.preview(ImagePreview(held.name, _uint8(self.render(net, held.camera)),
                                      _uint8(held.rgb(views.background))))
        net.plugin, net.config, net.metrics = self.name, asdict(config), {"steps": config.iterations}
        return net

    def render(self, model, camera, background=None):
        with self._lock:
            self.renders += 1
        time.sleep(self.delay)
        img = np.empty((camera.height, camera.width, 3), np.float32)
        img[:] = model.background if background is None else background
        with torch.no_grad():
            img[model.coverage(camera)] = torch.sigmoid(model.logit).numpy()
        return img

    def save(self, model, path):
        raise NotImplementedError

    def load(self, path, device="cpu"):
        raise NotImplementedError


@pytest.fixture
def window(qtbot):
    from viewer.geometry.primitives import uv_sphere
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win, before_close_func=quiesce(qtbot))
    win.scene.add(layer_for(uv_sphere(48, 24)))
    win.scene.add(layer_for(sphere_views(8, size=32)))
    win.render_dock.show()
    win.show()
    qtbot.waitExposed(win)
    yield win


def _train(panel, qtbot, timeout=60000):
    from PySide6.QtCore import Qt

    assert panel.train_btn.isEnabled()
    qtbot.mouseClick(panel.train_btn, Qt.MouseButton.LeftButton)
    job = panel.job
    assert job is not None and not panel.train_btn.isEnabled()
    with qtbot.waitSignal(job.finished, timeout=timeout):
        pass
    qtbot.waitUntil(lambda: panel.model is not None and panel.job is None, timeout=5000)


def _show_learned_full_size(window, panel, qtbot):
    """Turn the learned view on and wait for its full-size image of the 3D view (a camera that
    just moved is drawn at a third of the size first); the panel's learned view."""
    learned = panel.learned
    with qtbot.waitSignal(learned.shown, timeout=60000):
        panel.learned_box.setChecked(True)
    w, h = window.views["3d"].view.renderer.GetSize()
    qtbot.waitUntil(lambda: learned.overlay.image is not None and learned.overlay.image.shape == (h, w, 3)
                    and not learned.scheduler.busy(), timeout=60000)
    return learned


def _object_pixel(cam, image):
    """The colour of ``image`` where the scene's centre (the sphere's) projects with ``cam``."""
    uv, z = cam.project(np.zeros((1, 3)))
    assert z[0] > 0
    return image[int(uv[0, 1]), int(uv[0, 0])]


def test_train_stand_in_then_learned_view(window, qtbot):
    panel = window.render_panel
    plugin = StandIn()
    panel.set_plugins({plugin.name: plugin})
    assert panel.form is not None and panel.form.widget("iterations").value == 12
    assert not panel.learned_box.isEnabled()  # no model yet
    _train(panel, qtbot)
    bar = panel.bar
    assert bar.curve("loss")[0][-1] == 12 and bar.curve("psnr")[0]
    assert bar.progress.value() == 1000 and bar.status.text().startswith("Done")
    assert bar.preview.rgb is not None and not bar.preview.image.pixmap().isNull()
    assert "ground truth | learned" in bar.preview.caption.text()

    layer = window.scene.of_kind(type(window.scene[1]))[0]
    layer.selected_frame = 0  # look at the sphere through the first camera
    learned = panel.learned
    with qtbot.waitSignal(learned.shown, timeout=20000):
        panel.learned_box.setChecked(True)
    qtbot.waitUntil(lambda: learned.last_camera is not None and not learned.scheduler.busy(), timeout=20000)
    w, h = window.views["3d"].view.renderer.GetSize()
    image = learned.overlay.image
    assert image.shape == (h, w, 3) and learned.overlay.isVisible()
    assert (learned.last_camera.width, learned.last_camera.height) == (w, h)
    assert not np.all(_object_pixel(learned.last_camera, image) == 255)  # the object, not the background
    assert np.all(image[0, 0] == 255)  # a corner: background
    panel.learned_box.setChecked(False)
    assert not learned.overlay.isVisible()


def test_moving_camera_renders_low_then_full_resolution(window, qtbot):
    from PySide6.QtCore import QPoint, Qt

    panel = window.render_panel
    plugin = StandIn()
    panel.set_plugins({plugin.name: plugin})
    panel.form.set_values(iterations=3)
    _train(panel, qtbot)
    learned = panel.learned
    sizes = []
    learned.shown.connect(lambda img: sizes.append(img.shape[:2]))
    panel.learned_box.setChecked(True)
    qtbot.waitUntil(lambda: len(sizes) >= 1 and not learned.scheduler.busy(), timeout=20000)
    sizes.clear()
    view3d = window.views["3d"]
    before = view3d.view.camera_key()
    # a mouse drag on the overlay rotates the camera: over a native view the overlay is a native
    # window that takes the mouse and hands it on; over a QOpenGLWidget it lets the mouse through
    widget = learned.overlay if learned.overlay.testAttribute(Qt.WidgetAttribute.WA_NativeWindow) \
        else view3d.plotter.interactor
    assert learned.overlay.isVisible()
    start = widget.rect().center()
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    for dx in range(10, 80, 10):
        qtbot.mouseMove(widget, start + QPoint(dx, 0))
        qtbot.wait(15)
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=start + QPoint(70, 0))
    assert view3d.view.camera_key() != before
    w, h = view3d.view.renderer.GetSize()
    # while it moves: 1/3 size images; 150 ms after it stops: one at full size
    qtbot.waitUntil(lambda: bool(sizes) and sizes[-1] == (h, w) and not learned.scheduler.busy(), timeout=20000)
    assert sizes[0] == (h // 3, w // 3)
    np.testing.assert_allclose(learned.last_camera.c2w, view3d.view.current_camera().c2w)
    # a resized view is drawn again at its new size
    sizes.clear()
    window.maximize("3d")
    qtbot.waitUntil(lambda: bool(sizes) and sizes[-1] == tuple(view3d.view.renderer.GetSize())[::-1]
                    and not learned.scheduler.busy(), timeout=20000)
    assert view3d.view.renderer.GetSize() != (w, h)


def test_latest_frame_wins(window, qtbot):
    panel = window.render_panel
    plugin = StandIn()
    panel.set_plugins({plugin.name: plugin})
    panel.form.set_values(iterations=2)
    _train(panel, qtbot)
    learned = panel.learned
    panel.learned_box.setChecked(True)
    qtbot.waitUntil(lambda: learned.last_camera is not None and not learned.scheduler.busy(), timeout=20000)
    plugin.delay, plugin.renders = 0.3, 0
    started = learned.scheduler.started
    for _ in range(5):  # five requests while the first still renders
        learned.request(full=True)
    qtbot.waitUntil(lambda: not learned.scheduler.busy(), timeout=20000)
    assert plugin.renders <= 2 and learned.scheduler.started - started <= 2
    assert learned.scheduler.dropped >= 3


def test_compare_shows_psnr(window, qtbot):
    panel = window.render_panel
    plugin = StandIn()
    panel.set_plugins({plugin.name: plugin})
    panel.form.set_values(iterations=5)
    _train(panel, qtbot)
    panel.open_compare()
    view = panel.compare_view
    qtbot.waitUntil(lambda: view.result is not None, timeout=20000)
    test_frames = [f for f in window.scene[1].data.frames if f.split == "test"]
    assert [f.name for f in panel.compare_frames] == [f.name for f in test_frames]
    assert "PSNR" in view.text.text() and "dB" in view.text.text() and test_frames[0].name in view.text.text()
    assert view.result["truth"].shape == view.result["error"].shape == (32, 32, 3)
    assert 5.0 < view.result["psnr"] < 60.0
    first = view.text.text()
    view.next_btn.click()
    qtbot.waitUntil(lambda: view.text.text() != first and "PSNR" in view.text.text(), timeout=20000)
    assert test_frames[1].name in view.text.text()


def test_cancel_stops_training(window, qtbot):
    panel = window.render_panel
    panel.set_plugins({"stand-in": StandIn()})
    panel.form.set_values(iterations=500)  # ~10 s: cancelled long before
    panel.train()
    job = panel.job
    qtbot.waitUntil(lambda: "elapsed" in panel.bar.status.text(), timeout=20000)
    with qtbot.waitSignal(job.cancelled, timeout=20000):
        panel.bar.cancel_btn.click()
    assert panel.job is None and panel.model is None and panel.bar.status.text() == "Cancelled."
    assert panel.train_btn.isEnabled()


def test_bad_inputs_get_a_dialog(qtbot):
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win)
    panel = win.render_panel
    panel.set_plugins({"stand-in": StandIn()})
    panel.train()  # nothing loaded
    assert panel.job is None and "photo set" in panel.last_error
    win.scene.add(layer_for(sphere_views(4)))
    panel.train()  # photos but no mesh
    assert panel.job is None and "mesh" in panel.last_error
    panel.open_compare()  # no model
    assert "Train a model" in panel.last_error
    qtbot.waitUntil(lambda: not win.jobs.busy(), timeout=20000)
    win.close()


def test_texture_plugin_trains_from_the_panel(window, qtbot, tmp_path):
    texture = pytest.importorskip("plugins.texture")
    panel = window.render_panel
    if "texture" not in panel.plugins:
        panel.set_plugins({"texture": texture.PLUGIN})
    panel.chooser.choose("texture")
    assert panel.plugin() is panel.plugins["texture"]
    panel.form.set_values(size=32, minutes=0.0, iters=12, batch=2, crop=0, val_every=6, val_views=2,
                          texture_size=64, levels=2)
    _train(panel, qtbot, timeout=120000)
    assert "texture" in panel.model_label.text()
    layer = window.scene[1]
    layer.selected_frame = 1
    learned = _show_learned_full_size(window, panel, qtbot)
    image = learned.overlay.image
    assert not np.all(_object_pixel(learned.last_camera, image) >= 250)
    assert np.all(image[0, 0] >= 250)  # white background in the corner
    # checkpoint round trip through the panel
    panel.save_checkpoint(str(tmp_path / "ckpt"))
    qtbot.waitUntil(lambda: (tmp_path / "ckpt" / "config.json").is_file() and not window.jobs.busy(), timeout=30000)
    old = panel.model
    panel.load_checkpoint(str(tmp_path / "ckpt"))
    qtbot.waitUntil(lambda: panel.model is not old, timeout=30000)
    assert "loaded" in panel.model_label.text()


def test_npbg_trains_from_a_points_layer_and_colours_it(window, qtbot):
    """The real point renderer from the panel: the Geometry box offers the points layer, the
    learned view draws the object, and the cloud comes back coloured by its descriptors."""
    npbg = pytest.importorskip("plugins.npbg")
    from viewer.model import PointCloud, PointsLayer

    panel = window.render_panel
    if "npbg" not in panel.plugins:
        panel.set_plugins({"npbg": npbg.PLUGIN})
    sphere = window.scene[0].data  # the fixture's mesh: sample its vertices as the cloud
    cloud = window.scene.add(layer_for(PointCloud(np.asarray(sphere.points, np.float32), name="sphere points")))
    panel.chooser.choose("npbg")
    assert panel.geometry_kind() == "points" and panel.mesh() is cloud
    panel.form.set_values(size=32, minutes=0.0, iters=6, batch=2, crop=0, val_every=3, val_views=2, unet_levels=3)
    _train(panel, qtbot, timeout=120000)
    assert "npbg" in panel.model_label.text() and panel.descriptors_btn.isVisible()
    window.scene[1].selected_frame = 0
    _show_learned_full_size(window, panel, qtbot)
    panel.learned_box.setChecked(False)
    n = len(window.scene)
    panel.descriptors_btn.click()
    qtbot.waitUntil(lambda: len(window.scene) == n + 1, timeout=30000)
    coloured = window.scene[len(window.scene) - 1]
    assert isinstance(coloured, PointsLayer) and coloured.data.n_points == cloud.data.n_points
    assert coloured.data.colors is not None and coloured.data.colors.std() > 0


def test_idr_trains_from_photos_alone_and_shows_its_surface(window, qtbot):
    """IDR from the panel: no geometry to choose, its surface appears as a mesh layer, and its
    signed distance opens as a volume whose slices cross zero."""
    idr = pytest.importorskip("plugins.idr")
    from viewer.model import ImageLayer, MeshLayer

    panel = window.render_panel
    if "idr" not in panel.plugins:
        panel.set_plugins({"idr": idr.PLUGIN})
    panel.chooser.choose("idr")
    assert panel.geometry_kind() == "none" and not panel.mesh_box.isEnabled() and panel.mesh() is None
    meshes = len(window.scene.of_kind(MeshLayer))
    panel.form.set_values(size=32, minutes=0.0, iters=20, val_every=10, val_views=2)
    _train(panel, qtbot, timeout=120000)
    assert "idr" in panel.model_label.text()
    surfaces = window.scene.of_kind(MeshLayer)[meshes:]
    assert len(surfaces) == 1 and surfaces[0].name.startswith("idr surface") and surfaces[0].data.n_faces > 0
    assert panel.volume_btn.isVisible()
    panel.volume_btn.click()
    qtbot.waitUntil(lambda: bool(window.scene.of_kind(ImageLayer)), timeout=60000)
    sdf = window.scene.of_kind(ImageLayer)[0]
    assert sdf.level == 0.0 and sdf.data.array.min() < 0 < sdf.data.array.max()
