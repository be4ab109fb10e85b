"""What the Segmentation and Neural Rendering panels share: the method chooser (every installed
plugin; an unavailable one greyed out with its reason), one training bar (progress, time left,
live curves, Cancel) and the typed previews, drawn; and building the panels imports no torch.

The plugins here are small stand-ins written to the contract (``viewer.plugins``), with no torch,
so the panels are driven exactly as by a real method, in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from viewer.jobs.progress import ImagePreview, SlicePreview
from viewer.plugins import PluginInfo, RendererBase, SegmenterBase

pytestmark = [pytest.mark.gui]

ROOT = Path(__file__).resolve().parents[2]
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


@dataclass
class StepConfig:
    """Settings of the stand-ins."""

    steps: int = field(default=200, metadata={"help": "reports to make"})
    delay: float = field(default=0.05, metadata={"help": "seconds per step"})


@dataclass
class Trained:
    plugin: str
    config: dict
    metrics: dict


def _slice_preview() -> SlicePreview:
    ref, pred = np.zeros((20, 20), np.int64), np.zeros((20, 20), np.int64)
    ref[4:16, 4:16] = 1
    pred[4:16, 4:16] = 2
    return SlicePreview("case 7", pred, ref, (1.0, 1.0), {1: (1.0, 0.0, 0.0), 2: (0.0, 1.0, 0.0)})


def _image_preview() -> ImagePreview:
    target, image = np.zeros((30, 30, 3), np.uint8), np.zeros((30, 30, 3), np.uint8)
    target[:] = BLUE
    image[:] = YELLOW
    return ImagePreview("r_003.png", image, target)


def _steps(plugin, progress, config, preview, **kwargs) -> Trained:
    plugin.calls.append(kwargs)
    for i in range(config.steps):
        progress.update(i + 1, config.steps, f"step {i + 1}")
        progress.metrics(i + 1, loss=1.0 / (i + 1), val_dice=i / config.steps, psnr=10.0 + i)
        if i == 1:
            progress.preview(preview())
        time.sleep(config.delay)
    return Trained(plugin.name, {}, {"steps": config.steps})


class StepSegmenter(SegmenterBase):
    name = "steps-seg"
    description = "reports steps, curves and a slice preview (test stand-in)"
    Config = StepConfig

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def train(self, cases, config, progress, *, checkpoint_dir=None, sources=()):
        return _steps(self, progress, config, _slice_preview, checkpoint_dir=checkpoint_dir, sources=sources)

    def predict(self, model, volume, progress, *, tta=False):
        raise NotImplementedError

    def save(self, model, path):
        raise NotImplementedError

    def load(self, path, device="cpu"):
        raise NotImplementedError


class StepRenderer(RendererBase):
    name = "steps-nr"
    description = "reports steps, curves and an image preview (test stand-in)"
    Config = StepConfig

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def fit(self, views, geometry, config, progress, *, checkpoint_dir=None, sources=None):
        return _steps(self, progress, config, _image_preview, checkpoint_dir=checkpoint_dir, sources=sources)

    def render(self, model, camera, background=None):
        raise NotImplementedError

    def save(self, model, path):
        raise NotImplementedError

    def load(self, path, device="cpu"):
        raise NotImplementedError


BROKEN = PluginInfo("broken", "lucid3d_missing:PLUGIN", "broken-dist",
                    problem="cannot be loaded (ModuleNotFoundError: No module named 'lucid3d_missing')")
STANDIN = {"segmentation": StepSegmenter, "render": StepRenderer}


def _data(kind: str) -> list:
    """Layers that let the panel's Train button act: an image/label pair, or photos and a mesh."""
    from viewer.model import LabelMap, Volume, layer_for

    if kind == "segmentation":
        lab = np.zeros((12, 12, 8), np.uint8)
        lab[3:9, 3:9, 2:6] = 1
        return [layer_for(Volume(np.random.default_rng(0).normal(size=lab.shape).astype(np.float32), np.eye(4))),
                layer_for(LabelMap(lab, np.eye(4)))]
    from viewer.geometry.primitives import uv_sphere

    from .test_viewset_layer import sphere_views

    return [layer_for(uv_sphere(16, 8)), layer_for(sphere_views(4, size=16))]


@pytest.fixture
def make_panel(qtbot):
    from viewer.jobs.runner import JobRunner
    from viewer.model import Scene

    made = []

    def make(kind: str, infos, data: bool = False, layers: list = ()):
        from viewer.ui.render_panel import RenderPanel
        from viewer.ui.segmentation import SegmentationPanel

        scene, jobs = Scene(), JobRunner()
        for layer in [*(_data(kind) if data else []), *layers]:
            scene.add(layer)
        cls = SegmentationPanel if kind == "segmentation" else RenderPanel
        panel = cls(scene, jobs, infos=infos)
        qtbot.addWidget(panel)
        panel.show()
        made.append(jobs)
        return panel, jobs

    yield make
    for jobs in made:
        jobs.cancel_all()
        qtbot.waitUntil(lambda: not jobs.busy(), timeout=20000)
        jobs.shutdown()


def _items(chooser) -> list[tuple[str, bool, str]]:
    from PySide6.QtCore import Qt

    box = chooser.box
    return [(box.itemText(i), chooser.item_enabled(i), box.itemData(i, Qt.ItemDataRole.ToolTipRole) or "")
            for i in range(box.count())]


def _rgb(widget) -> np.ndarray:
    """What ``widget`` shows on screen, (H, W, 3) uint8."""
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    rows = np.frombuffer(img.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return rows[:, : 3 * w].reshape(h, w, 3).copy()  # a copy: the QImage's buffer goes with it


def _where(rgb: np.ndarray, color) -> np.ndarray:
    """Column indices of the pixels of exactly ``color``."""
    return np.nonzero(np.all(rgb == np.array(color, np.uint8), axis=-1))[1]


# the method chooser -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["segmentation", "render"])
def test_unavailable_plugin_is_shown_disabled_with_its_reason(make_panel, kind):
    plugin = STANDIN[kind]()
    panel, _ = make_panel(kind, [BROKEN, PluginInfo(plugin.name, "tests:x", "tests", plugin=plugin)])
    items = _items(panel.chooser)
    assert items[0] == (plugin.name, True, plugin.description)
    assert items[1][:2] == ("broken (unavailable)", False)
    assert "ModuleNotFoundError" in items[1][2] and "lucid3d_missing" in items[1][2]
    assert panel.chooser.plugin() is plugin and panel.form is not None


@pytest.mark.parametrize("kind", ["segmentation", "render"])
def test_only_unavailable_plugins_leave_the_panel_usable(make_panel, kind):
    panel, _ = make_panel(kind, [BROKEN], data=True)
    assert _items(panel.chooser) == [("broken (unavailable)", False, f"broken: {BROKEN.problem}")]
    assert panel.chooser.plugin() is None and panel.form is None
    assert not panel.train_btn.isEnabled()
    assert "lucid3d_missing" in panel.chooser.description.text()
    panel.train()  # nothing to train with: nothing happens, nothing breaks
    assert panel.job is None


def test_broken_third_party_entry_points_never_break_the_panels(tmp_path):
    """Real discovery: a distribution on the path whose entry points name a module that does not
    exist and an object that is not a plugin; both panels list them, greyed, with the reason."""
    dist = tmp_path / "lucid3d_broken_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lucid3d-broken-example\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lucid3d.plugins]\nbroken = lucid3d_missing_module:PLUGIN\n"
                                           "notaplugin = json:dumps\n")
    code = textwrap.dedent("""
        import json, sys
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from viewer.jobs.runner import JobRunner
        from viewer.model import Scene
        from viewer.ui.render_panel import RenderPanel
        from viewer.ui.segmentation import SegmentationPanel
        out = {}
        for name, cls in (("segmentation", SegmentationPanel), ("render", RenderPanel)):
            panel = cls(Scene(), JobRunner())
            box = panel.chooser.box
            out[name] = [[box.itemText(i), panel.chooser.item_enabled(i),
                          box.itemData(i, Qt.ItemDataRole.ToolTipRole) or ""] for i in range(box.count())]
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "QT_QPA_PLATFORM": "offscreen"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    listed = json.loads(res.stdout.strip().splitlines()[-1])
    for kind in ("segmentation", "render"):
        rows = {text: (enabled, tip) for text, enabled, tip in listed[kind]}
        assert rows["broken (unavailable)"][0] is False
        assert "lucid3d_missing_module" in rows["broken (unavailable)"][1]
        assert rows["notaplugin (unavailable)"][0] is False and "not a plugin" in rows["notaplugin (unavailable)"][1]


# no torch until a method is used --------------------------------------------------------------------
def _torch_after(code: str, offscreen: bool) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if offscreen:
        env["QT_QPA_PLATFORM"] = "offscreen"
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + "\nprint('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip().splitlines()[-1] == "True", res.stderr


def test_panel_code_imports_no_torch():
    """The panels themselves (with no plugin offered) import no torch: torch stays in workers. (Not
    shown: showing the Segmentation panel starts importing torch in a background thread, so the
    first Train does not wait for it.)"""
    torch_loaded, _ = _torch_after("""
        import sys
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from viewer.jobs.runner import JobRunner
        from viewer.model import Scene
        from viewer.ui.render_panel import RenderPanel
        from viewer.ui.segmentation import SegmentationPanel
        for cls in (SegmentationPanel, RenderPanel):
            panel = cls(Scene(), JobRunner(), infos=[])
            app.processEvents()
    """, offscreen=True)
    assert not torch_loaded


@pytest.mark.slow
def test_window_with_its_views_ready_imports_no_torch():
    """The whole window, the installed plugins listed in both panels, before any method is used."""
    torch_loaded, _ = _torch_after("""
        import sys
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from viewer.ui.app import make_window
        win = make_window()
        assert win.is_ready and win.segmentation_panel.chooser.box.count() and win.render_panel.chooser.box.count()
        app.processEvents()
        win.close()
    """, offscreen=False)
    assert not torch_loaded, "building the window imported torch (a plugin's module imports it at its top?)"


# the shared training bar -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["segmentation", "render"])
def test_shared_bar_shows_progress_time_left_curves_and_cancels(make_panel, qtbot, kind):
    from PySide6.QtCore import Qt

    from viewer.ui.training_bar import TrainingBar

    plugin = STANDIN[kind]()
    panel, _ = make_panel(kind, {plugin.name: plugin}, data=True)
    bar = panel.bar
    assert type(bar) is TrainingBar and not bar.cancel_btn.isEnabled()
    assert panel.train_btn.isEnabled(), panel.last_error
    qtbot.mouseClick(panel.train_btn, Qt.MouseButton.LeftButton)
    job = panel.job
    assert job is not None and bar.job is job and bar.cancel_btn.isEnabled() and not panel.train_btn.isEnabled()
    # > 1 s of steady steps: the bar moves and the status line gives an estimate of the time left
    qtbot.waitUntil(lambda: "s left" in bar.status.text() and "about" in bar.status.text(), timeout=30000)
    assert 0 < bar.progress.value() < 1000
    assert "elapsed" in bar.status.text() and "step" in bar.status.text()
    xs, ys = bar.curve("loss")
    assert len(xs) >= 3 and ys[0] == 1.0 and ys[-1] < ys[0]
    curves = [c for plot in bar.plots for c in plot.curves.values()]
    assert curves and all(len(c.getData()[0]) >= 1 for c in curves)  # drawn, not just noted
    if kind == "render":
        assert bar.curve("psnr")[0] and len(bar.plots) == 2
    with qtbot.waitSignal(job.cancelled, timeout=20000):
        qtbot.mouseClick(bar.cancel_btn, Qt.MouseButton.LeftButton)
    assert panel.job is None and bar.job is None
    assert "Cancelled" in bar.status.text() and not bar.cancel_btn.isEnabled() and panel.train_btn.isEnabled()


def _file_layers(kind: str, folder: Path) -> tuple[list, dict[str, Path]]:
    """Layers read from real files (so they have sources), and those files."""
    import nibabel as nib

    from viewer.io import load_path
    from viewer.model import layer_for

    if kind == "segmentation":
        lab = np.zeros((12, 12, 8), np.uint8)
        lab[3:9, 3:9, 2:6] = 1
        files = {"image": folder / "ct.nii.gz", "label": folder / "ct_seg.nii.gz"}
        nib.save(nib.Nifti1Image(np.arange(lab.size, dtype=np.int16).reshape(lab.shape), np.eye(4)), files["image"])
        nib.save(nib.Nifti1Image(lab, np.eye(4)), files["label"])
        return [layer_for(load_path(files["image"])), layer_for(load_path(files["label"], as_labels=True))], files
    from viewer.geometry.primitives import uv_sphere
    from viewer.io.meshes import save_mesh
    from viewer.io.photosets import save_transforms

    from .test_viewset_layer import sphere_views

    files = {"mesh": folder / "sphere.ply", "scene": folder / "photos" / "transforms.json"}
    save_mesh(uv_sphere(16, 8), files["mesh"])
    save_transforms(files["scene"], sphere_views(4, size=16))
    return [layer_for(load_path(files["mesh"])), layer_for(load_path(files["scene"]))], files


@pytest.mark.parametrize("kind", ["segmentation", "render"])
def test_contract_keywords_reach_the_plugin(make_panel, qtbot, tmp_path, kind):
    """Train passes ``checkpoint_dir`` (a folder that exists) and ``sources``: the input files'
    absolute paths and SHA-256, as the command line does."""
    import hashlib

    plugin = STANDIN[kind]()
    layers, files = _file_layers(kind, tmp_path)
    panel, _ = make_panel(kind, {plugin.name: plugin}, layers=layers)
    panel.form.set_values(steps=2, delay=0.0)
    panel.train()
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    (call,) = plugin.calls
    assert Path(call["checkpoint_dir"]).is_dir()
    sha = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}
    if kind == "segmentation":
        assert list(call["sources"]) == [{
            "case": layers[0].name, "image": str(files["image"].resolve()), "image_sha256": sha["image"],
            "label": str(files["label"].resolve()), "label_sha256": sha["label"]}]
    else:
        assert call["sources"] == {"mesh": str(files["mesh"].resolve()), "mesh_sha256": sha["mesh"],
                                   "scene": str(Path(layers[1].source).resolve())}
        assert Path(call["sources"]["scene"]) in (files["scene"].resolve(), files["scene"].parent.resolve())
    assert panel.bar.progress.value() == 1000 and plugin.name in panel.model_label.text()


class PointsRenderer(StepRenderer):
    name = "steps-points"
    geometry = "points"

    def fit(self, views, geometry, config, progress, *, checkpoint_dir=None, sources=None):
        self.calls.append({"geometry": geometry})
        return super().fit(views, geometry, config, progress, checkpoint_dir=checkpoint_dir, sources=sources)


class SurfaceRenderer(PointsRenderer):
    name = "steps-surface"
    geometry = "none"


@pytest.mark.parametrize("cls, box_text, gets", [
    (StepRenderer, "uv_sphere", "Mesh"), (PointsRenderer, "cloud", "PointCloud"),
    (SurfaceRenderer, "(learned from the photos)", "NoneType"),
], ids=["mesh", "points", "none"])
def test_the_geometry_a_method_renders_is_offered_and_reaches_fit(make_panel, qtbot, cls, box_text, gets):
    """The Geometry box offers the layers of the kind the chosen method declares (``geometry``),
    and Train hands fit that layer's data; a method that learns the surface needs none."""
    from viewer.model import PointCloud, layer_for

    from .test_viewset_layer import sphere_views

    cloud = layer_for(PointCloud(np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)))
    cloud.name = "cloud"
    plugin = cls()
    panel, _ = make_panel("render", {plugin.name: plugin}, data=True, layers=[cloud])
    assert box_text in panel.mesh_box.currentText()
    assert panel.mesh_box.isEnabled() == (cls.geometry != "none")
    panel.form.set_values(steps=2, delay=0.0)
    panel.train()
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    if cls is not StepRenderer:
        assert type(plugin.calls[0]["geometry"]).__name__ == gets


class DescriptorRenderer(PointsRenderer):
    """Learns two descriptors: one for the points with x < 0, another for the rest."""

    name = "steps-descriptors"

    def learned_points(self, model):
        cloud = self.calls[0]["geometry"]
        desc = np.zeros((cloud.n_points, 8), np.float32)
        desc[:, 0] = np.where(cloud.points[:, 0] < 0, -1.0, 1.0)
        return cloud, desc


def test_points_are_coloured_by_what_was_learned(make_panel, qtbot):
    from viewer.model import PointCloud, PointsLayer, layer_for

    pts = np.random.default_rng(1).normal(size=(60, 3)).astype(np.float32)
    cloud = layer_for(PointCloud(pts, name="scan"))
    plugin = DescriptorRenderer()
    panel, _ = make_panel("render", {plugin.name: plugin}, data=True, layers=[cloud])
    assert not panel.descriptors_btn.isVisible()  # no model yet
    panel.form.set_values(steps=2, delay=0.0)
    panel.train()
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    assert panel.descriptors_btn.isVisible()
    n = len(panel.scene)
    panel.descriptors_btn.click()
    qtbot.waitUntil(lambda: len(panel.scene) == n + 1, timeout=10000)
    layer = list(panel.scene)[-1]
    assert isinstance(layer, PointsLayer) and layer.name == "scan (learned)"
    np.testing.assert_array_equal(layer.data.points, pts)
    c = layer.data.colors.astype(int)
    left, right = c[pts[:, 0] < 0], c[pts[:, 0] >= 0]
    assert (left == left[0]).all() and (right == right[0]).all()  # one colour per descriptor
    assert np.abs(left[0] - right[0]).max() > 200  # far apart


class GrowingSurface(SurfaceRenderer):
    """Reports the surface it has so far twice: a small sphere, then a bigger one."""

    name = "steps-growing"

    def fit(self, views, geometry, config, progress, *, checkpoint_dir=None, sources=None):
        from viewer.geometry.primitives import uv_sphere
        from viewer.jobs.progress import MeshPreview

        for radius in (0.5, 2.0):
            mesh = uv_sphere(12, 6)
            mesh.points = mesh.points * radius
            progress.preview(MeshPreview("surface so far", mesh))
            time.sleep(0.2)
        return super().fit(views, geometry, config, progress, checkpoint_dir=checkpoint_dir, sources=sources)


def test_a_surface_reported_while_training_is_one_mesh_layer_kept_current(make_panel, qtbot):
    from viewer.model import MeshLayer

    plugin = GrowingSurface()
    panel, _ = make_panel("render", {plugin.name: plugin}, data=True)
    before = [l for l in panel.scene if isinstance(l, MeshLayer)]
    panel.form.set_values(steps=2, delay=0.0)
    panel.train()
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    surfaces = [l for l in panel.scene if isinstance(l, MeshLayer) and l not in before]
    assert len(surfaces) == 1 and surfaces[0].name == "surface so far"
    assert np.abs(surfaces[0].data.points).max() > 1.5  # the latest (bigger) one


class FieldRenderer(SurfaceRenderer):
    """Learns a signed distance: a sphere of radius 1 around the origin."""

    name = "steps-field"

    def learned_volume(self, model, resolution=128):
        from viewer.model import Volume

        n = 21
        affine = np.diag([0.2, 0.2, 0.2, 1.0])
        affine[:3, 3] = -2.0
        ijk = np.indices((n, n, n)).reshape(3, -1).T
        ras = ijk * 0.2 - 2.0
        return Volume((np.linalg.norm(ras, axis=1) - 1.0).reshape(n, n, n).astype(np.float32), affine,
                      name="signed distance")


def test_a_learned_field_opens_as_a_volume_centred_on_its_zero_level(make_panel, qtbot):
    from viewer.model import ImageLayer

    plugin = FieldRenderer()
    panel, _ = make_panel("render", {plugin.name: plugin}, data=True)
    panel.form.set_values(steps=2, delay=0.0)
    panel.train()
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    assert panel.volume_btn.isVisible() and not panel.descriptors_btn.isVisible()
    panel.volume_btn.click()
    qtbot.waitUntil(lambda: any(isinstance(l, ImageLayer) for l in panel.scene), timeout=10000)
    layer = next(l for l in panel.scene if isinstance(l, ImageLayer))
    assert layer.name == "signed distance" and layer.level == 0.0 and layer.window > 0
    assert layer.data.array.min() < 0 < layer.data.array.max()


def test_a_point_method_without_a_cloud_says_so(make_panel):
    plugin = PointsRenderer()
    panel, _ = make_panel("render", {plugin.name: plugin}, data=True)
    assert panel.mesh_box.currentText() == "(no point cloud loaded)"
    panel.train()
    assert panel.job is None and "renders a point cloud" in (panel.last_error or "")


@pytest.mark.parametrize("kind, preview, left, right, caption", [
    ("segmentation", _slice_preview, RED, GREEN, "validation case case 7: reference | prediction"),
    ("render", _image_preview, BLUE, YELLOW, "held-out view r_003.png: ground truth | learned, PSNR"),
], ids=["slice-preview", "image-preview"])
def test_typed_preview_is_drawn(make_panel, qtbot, kind, preview, left, right, caption):
    """A preview a job reports reaches the screen: reference/target on the left, prediction or
    learned image on the right, in their own colours."""
    panel, jobs = make_panel(kind, {})
    bar = panel.bar
    done = []
    bar.start(jobs, lambda progress: progress.preview(preview()), "preview", done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=20000)
    assert bar.preview.caption.text().startswith(caption)
    shown = _rgb(bar.preview.image)
    lx, rx = _where(shown, left), _where(shown, right)
    assert lx.size > 500 and rx.size > 500  # whole tiles, at the preview's 150 px scale
    assert lx.max() < rx.min()


@pytest.mark.parametrize("shape, pixel_mm, out_shape", [
    ((10, 10), (1.0, 1.0), (150, 150)),
    ((10, 10), (1.0, 2.0), (75, 150)),  # columns twice as wide in mm: drawn twice as wide
    ((20, 10), (0.5, 1.0), (150, 150)),
    ((10, 10), (0.0, float("nan")), (150, 150)),  # nonsense spacing: square pixels
], ids=["square", "wide-pixels", "anisotropic-grid", "bad-spacing"])
def test_slice_preview_keeps_millimetres(shape, pixel_mm, out_shape):
    from viewer.ui.previews import slice_preview_image

    pred = np.full(shape, 3)
    pred[0, 0] = 9  # a value without a colour: black
    img = slice_preview_image(SlicePreview("c", pred, None, pixel_mm, {3: (0.0, 0.0, 1.0)}))
    assert img.shape == (*out_shape, 3) and img.dtype == np.uint8
    assert tuple(img[-1, -1]) == BLUE and tuple(img[0, 0]) == (0, 0, 0)


def test_something_else_is_not_drawn(qtbot):
    from viewer.ui.previews import PreviewPane

    pane = PreviewPane("nothing yet")
    qtbot.addWidget(pane)
    for wrong in ({"labels": np.zeros((4, 4, 4))}, np.zeros((8, 8, 3)),
                  SlicePreview("c", np.zeros((4, 4, 4)), None, (1, 1), {}),
                  ImagePreview("v", np.zeros((0, 5, 3), np.uint8))):
        assert pane.show_preview(wrong) is False
    assert pane.rgb is None and pane.image.text() == "nothing yet"
