"""The Neural Rendering panel: fit a renderer plugin to posed photos and a mesh, look at it.

Everything heavy runs in workers: training and checkpoints as jobs of the window's
:class:`~viewer.jobs.runner.JobRunner`; the learned view and the comparison through
:class:`~viewer.ui.photo_view.LatestOnly` (its own worker; the newest request wins). The UI
thread builds widgets, draws curves and shows images.

The panel calls a renderer only through the plugin contract (:mod:`viewer.plugins`):
``fit(views, mesh, config, progress, checkpoint_dir=, sources=)``, ``render(model, camera,
background)`` (H, W, 3) in 0..1, ``save(model, folder)``, ``load(folder)``; what training reports
(curves, :class:`~viewer.jobs.progress.ImagePreview`) is drawn by the shared
:class:`~viewer.ui.training_bar.TrainingBar`.
"""

from __future__ import annotations

import atexit
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
    QPushButton, QTabWidget, QVBoxLayout, QWidget,
)

from ..model import MeshLayer, PointsLayer, Scene, ViewSetLayer
from ..model.errors import LoadError
from ..plugins import PluginInfo, RendererBase
from .photo_view import CompareView, LatestOnly, LearnedView, compare_images
from .training_bar import TrainingBar
from .training_panel import TrainingPanel
from .training_widgets import warm_torch

__all__ = ["RenderPanel", "held_out_frames", "baseline_text", "heldout_key"]


def held_out_frames(views) -> list:
    """The frames to score a renderer on: "test", else "val", else (none held out) "train"."""
    for split in ("test", "val", "train"):
        frames = views.split(split)
        if frames:
            return frames
    return []


def heldout_key(metrics: dict) -> tuple[str, ...] | None:
    """What makes two fits' held-out PSNRs comparable: the names of the views they were scored on."""
    views = metrics.get("heldout_views")
    if not isinstance(views, list) or not views:
        return None
    return tuple(str(v.get("name")) for v in views if isinstance(v, dict))


def baseline_text(name: str, metrics: dict, known: dict[tuple[str, tuple], float]) -> str:
    """", texture baseline 36.56 dB (+1.41 dB)" when the plain texture was scored on the same held-out
    views as this learned renderer, so a user sees what the network adds; "" otherwise."""
    key, p = heldout_key(metrics), metrics.get("heldout_psnr")
    if name == "texture" or key is None or not isinstance(p, (int, float)) or not np.isfinite(p):
        return ""
    base = known.get(("texture", key))
    if base is None:
        return ""
    return f", texture baseline {base:.2f} dB ({p - base:+.2f} dB)"


def _existing(source: str | None) -> str | None:
    """A layer's source as an absolute path when it is a file or folder on disk (not ``demo:``)."""
    if not source or str(source).startswith("demo:") or not Path(source).exists():
        return None
    return str(Path(source).resolve())


#: per renderer ``geometry``: the layers that can serve, and what the geometry box says without one
GEOMETRY_LAYERS = {"mesh": (MeshLayer, "(no mesh loaded)"), "points": (PointsLayer, "(no point cloud loaded)")}


def _fit_sources(geo_file: str | None, scene_file: str | None, kind: str = "mesh") -> dict[str, str] | None:
    """The fit's provenance (in a worker: hashing reads the file): mesh or points, its sha256,
    scene; None when neither came from a file (generated in the session)."""
    from ..plugins.checkpoint import sha256_file

    sources: dict[str, str] = {}
    if geo_file is not None and Path(geo_file).is_file():
        sources.update({kind: geo_file, f"{kind}_sha256": sha256_file(geo_file)})
    if scene_file is not None:
        sources["scene"] = scene_file
    return sources or None


def _offers(plugin: Any, part: str) -> bool:
    """Whether ``plugin`` has its own ``part`` (an optional part of the renderer contract), not
    RendererBase's default that returns None."""
    return getattr(type(plugin), part, None) not in (None, getattr(RendererBase, part))


class RenderPanel(TrainingPanel):
    """Train / load / save / view neural renderers. Lives in the window's right dock.

    ``infos``: the plugins to offer (PluginInfos or ``{name: plugin}``); default: every
    installed one (:func:`viewer.plugins.plugin_infos`).
    """

    title = "Neural rendering"

    def __init__(self, scene: Scene, jobs, view3d=None, host: QWidget | None = None,
                 parent: QWidget | None = None, infos: Iterable[PluginInfo] | dict | None = None) -> None:
        bar = TrainingBar([("loss", lambda k: "loss" in k), ("PSNR (dB)", lambda k: "psnr" in k.lower())],
                          "A held-out view appears here while training runs.",
                          "Stop training; the plugin keeps what it learned so far if it can", name="render")
        super().__init__(scene, jobs, "renderer", bar, infos, parent)
        self.model_plugin: Any = None
        self.heldout_seen: dict[tuple[str, tuple], float] = {}  # (plugin, held-out views) -> PSNR
        self._bound: ViewSetLayer | None = None
        self._updating = False
        self.learned = LearnedView(view3d, host, parent=self) if view3d is not None and host is not None else None
        if self.learned is not None:
            self.learned.failed.connect(self._learned_failed)
        self.surface_layer: MeshLayer | None = None  # the surface a training reported last
        bar.surface.connect(self._show_surface)
        self.compare_jobs = LatestOnly("compare", self)
        self.compare_view: CompareView | None = None
        self.compare_frames: list = []
        self.compare_index = 0
        self._build()
        self._wire()

    # layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        head = QFormLayout()
        self.viewset_box = QComboBox()
        self.viewset_box.setToolTip("Posed photos (File > Open photo set…): the training data")
        self.viewset_box.currentIndexChanged.connect(lambda *_: self._viewset_changed())
        head.addRow("Photos", self.viewset_box)
        self.mesh_box = QComboBox()  # the geometry the chosen method renders: a mesh or a point cloud
        head.addRow("Geometry", self.mesh_box)
        self._geometry_shown: str | None = None
        self.chooser.changed.connect(self._method_changed)
        head.addRow("Method", self.chooser.box)
        head.addRow(self.chooser.description)
        self.model_label = QLabel("none: train one or load a checkpoint")
        self.model_label.setObjectName("model_label")
        self.model_label.setWordWrap(True)
        head.addRow("Model", self.model_label)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load checkpoint…")
        self.save_btn = QPushButton("Save checkpoint…")
        self.load_btn.clicked.connect(self._load_dialog)
        self.save_btn.clicked.connect(self._save_dialog)
        row.addWidget(self.load_btn)
        row.addWidget(self.save_btn)
        head.addRow(row)
        row = QHBoxLayout()
        self.learned_box = QCheckBox("Learned view")
        self.learned_box.setObjectName("learned_view")
        self.learned_box.setToolTip("Show the model's image for the 3D view's camera over the 3D view")
        self.learned_box.toggled.connect(self.set_learned_view)
        self.compare_btn = QPushButton("Compare held-out…")
        self.compare_btn.setToolTip("Ground truth | learned | error of the test frames, with PSNR")
        self.compare_btn.clicked.connect(self.open_compare)
        row.addWidget(self.learned_box)
        row.addWidget(self.compare_btn)
        head.addRow(row)
        self.descriptors_btn = QPushButton("Points by what was learned")
        self.descriptors_btn.setToolTip("A copy of the model's point cloud coloured by its learned descriptors "
                                        "(first three principal components as red, green, blue)")
        self.descriptors_btn.clicked.connect(self.show_descriptors)
        self.descriptors_btn.setVisible(False)  # only for a model with descriptors per point
        head.addRow(self.descriptors_btn)
        self.volume_btn = QPushButton("Open the learned field as a volume")
        self.volume_btn.setToolTip("The field the model learned over the scene (IDR: the signed distance, "
                                   "zero on the surface) as an image layer: slices show the surface")
        self.volume_btn.clicked.connect(self.show_learned_volume)
        self.volume_btn.setVisible(False)  # only for a method that learns one
        head.addRow(self.volume_btn)
        lay.addLayout(head)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_train(), "Train")
        self.tabs.addTab(self.chooser.settings, "Settings")
        self.frame_list = QListWidget()
        self.frame_list.setObjectName("frame_list")
        self.frame_list.currentRowChanged.connect(self._frame_row_changed)
        self.tabs.addTab(self.frame_list, "Frames")
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.bar)  # the running training, whichever tab is shown

    def _build_train(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 6, 4, 4)
        self.train_btn = QPushButton("Train")
        self.train_btn.setObjectName("train_button")
        self.train_btn.setToolTip("Fit the method to the training photos with the Settings tab's values")
        self.train_btn.clicked.connect(self.train)
        lay.addWidget(self.train_btn)
        lay.addWidget(self.bar.charts, 2)
        lay.addWidget(self.bar.preview)
        return w

    # scene ---------------------------------------------------------------------------------------
    @staticmethod
    def _fill(box: QComboBox, layers: list, none_text: str) -> None:
        """List ``layers`` (item data: their ids), keeping the current one if it is still there,
        else choosing the newest."""
        current = box.currentData()
        box.blockSignals(True)
        box.clear()
        for layer in layers:
            box.addItem(layer.name, id(layer))
        if not layers:
            box.addItem(none_text, 0)
        idx = box.findData(current) if current else -1
        box.setCurrentIndex(idx if idx >= 0 else box.count() - 1)
        box.blockSignals(False)

    def _layer(self, box: QComboBox):
        key = box.currentData()
        return next((l for l in self.scene if id(l) == key), None) if key else None

    def _scene_changed(self) -> None:
        self._fill(self.viewset_box, self.scene.of_kind(ViewSetLayer), "(no photo set loaded)")
        self._fill_geometry()
        self._viewset_changed()

    def geometry_kind(self) -> str:
        """What the chosen method renders: "mesh", "points" or "none" (it learns the surface)."""
        return getattr(self.plugin(), "geometry", "mesh")

    def _fill_geometry(self) -> None:
        kind = self.geometry_kind()
        if kind not in GEOMETRY_LAYERS:  # the method learns its geometry from the photos
            self.mesh_box.blockSignals(True)
            self.mesh_box.clear()
            self.mesh_box.addItem("(learned from the photos)", 0)
            self.mesh_box.blockSignals(False)
            self.mesh_box.setEnabled(False)
            self.mesh_box.setToolTip("This method learns the surface itself: no mesh or point cloud needed")
        else:
            cls, none_text = GEOMETRY_LAYERS[kind]
            if self._geometry_shown != kind:
                self.mesh_box.clear()  # a mesh chosen for DNR is no choice for a point method
            self._fill(self.mesh_box, self.scene.of_kind(cls), none_text)
            self.mesh_box.setEnabled(True)
            self.mesh_box.setToolTip("The mesh the renderer draws its texture on (same world frame as the photos)"
                                     if kind == "mesh" else "The point cloud the renderer splats (same world frame "
                                     "as the photos)")
        self._geometry_shown = kind

    def _method_changed(self) -> None:
        if self.geometry_kind() != self._geometry_shown:
            self._fill_geometry()

    def viewset(self) -> ViewSetLayer | None:
        return self._layer(self.viewset_box)

    def mesh(self) -> MeshLayer | PointsLayer | None:
        """The geometry layer chosen for the method (a mesh or a point cloud layer), or None."""
        return self._layer(self.mesh_box) if self.geometry_kind() in GEOMETRY_LAYERS else None

    def _viewset_changed(self) -> None:
        layer = self.viewset()
        if layer is not self._bound:
            if self._bound is not None:
                self._bound.events.selected_frame.disconnect(self._sync_frame)
            self._bound = layer
            if layer is not None:
                layer.events.selected_frame.connect(self._sync_frame)
            self._updating = True
            self.frame_list.clear()
            for f in (layer.data.frames if layer is not None else []):
                item = QListWidgetItem(f"{f.name or f.camera.name}   ({f.split})")
                item.setToolTip(f"{f.camera.width}×{f.camera.height}, fx {f.camera.fx:.1f}")
                self.frame_list.addItem(item)
            self._updating = False
            self._sync_frame()
            if self.compare_view is not None and self.compare_view.isVisible() and layer is None:
                self.compare_view.hide()
        self._update()

    def _sync_frame(self, *_: object) -> None:
        self._updating = True
        self.frame_list.setCurrentRow(self._bound.selected_frame if self._bound is not None else -1)
        self._updating = False

    def _frame_row_changed(self, row: int) -> None:
        if not self._updating and self._bound is not None and row >= 0:
            self._bound.selected_frame = row
            self.scene.selected = self._bound

    def _update(self) -> None:
        busy = self.job is not None
        has_model = self.model is not None
        self.train_btn.setEnabled(not busy and self.plugin() is not None)
        self.load_btn.setEnabled(not busy)
        self.save_btn.setEnabled(not busy and has_model)
        self.learned_box.setEnabled(has_model and self.learned is not None)
        self.compare_btn.setEnabled(has_model and self.viewset() is not None)
        for btn, part in ((self.descriptors_btn, "learned_points"), (self.volume_btn, "learned_volume")):
            btn.setVisible(has_model and _offers(self.model_plugin, part))
            btn.setEnabled(not busy)
        self.chooser.box.setEnabled(not busy)

    # training -------------------------------------------------------------------------------------
    def train(self) -> None:
        plugin, vs, mesh = self.plugin(), self.viewset(), self.mesh()
        if self.job is not None or plugin is None:
            return
        if vs is None:
            self.error("No photos: open a photo set first (File > Open photo set…: a transforms.json "
                        "folder, a Blender-style folder or a COLMAP model).")
            return
        if not vs.data.split("train"):
            self.error(f"{vs.name} has no training frames.")
            return
        kind = self.geometry_kind()
        if mesh is None and kind in GEOMETRY_LAYERS:
            what = "mesh" if kind == "mesh" else "point cloud"
            self.error(f"No geometry: {plugin.name} renders a {what}; open the {what} the photos show (File > Open…).")
            return
        try:
            config = self.chooser.config()
        except (TypeError, ValueError) as exc:
            self.error(f"Cannot train: {exc}")
            return
        views, geometry = vs.data, (mesh.data if mesh is not None else None)
        mesh_file, scene_file = (_existing(mesh.source) if mesh is not None else None), _existing(vs.source)
        ckpt = tempfile.mkdtemp(prefix=f"lucid3d-{plugin.name}-")
        atexit.register(shutil.rmtree, ckpt, True)

        def work(progress):
            progress.update(1, 1000, "preparing")  # the clock's start marker (see ProgressClock)
            sources = _fit_sources(mesh_file, scene_file, kind)
            warm_torch()
            return plugin.fit(views, geometry, config, progress, checkpoint_dir=ckpt, sources=sources)

        self.bar.start(self.jobs, work, f"Training {plugin.name}", lambda m: self._trained(plugin, m),
                       failed=self.error, cancelled=lambda: self.bar.status.setText("Cancelled."))
        self.bar.preview.set_hint("A held-out view appears here when the method shows one.")
        self.tabs.setCurrentIndex(0)

    def _trained(self, plugin, model) -> None:
        self._set_model(plugin, model, "trained here")
        self.bar.finish(f"Done: {self.model_label.text()}")

    def _set_model(self, plugin, model, where: str) -> None:
        self.model, self.model_plugin = model, plugin
        metrics = getattr(model, "metrics", None) or {}
        extra = []
        for key, fmt in (("heldout_psnr", "held-out PSNR {:.2f} dB"), ("steps", "{:.0f} steps"),
                         ("seconds", "{:.0f} s"), ("stopped_by", "stopped by {}")):
            v = metrics.get(key)
            if isinstance(v, str) or (isinstance(v, (int, float)) and np.isfinite(v)):
                extra.append(fmt.format(v))
        key, p = heldout_key(metrics), metrics.get("heldout_psnr")
        if key is not None and isinstance(p, (int, float)) and np.isfinite(p):
            self.heldout_seen[(plugin.name, key)] = float(p)
        base = baseline_text(plugin.name, metrics, self.heldout_seen)
        self.model_label.setText(f"{plugin.name}, {where}" + (f" ({', '.join(extra)}{base})" if extra else ""))
        self._update()
        if self.learned is not None and self.learned_box.isChecked():
            self.set_learned_view(True)
        if self.compare_view is not None and self.compare_view.isVisible():
            self.compare_step(0)

    def _show_surface(self, preview) -> None:
        """A training's surface so far as a mesh layer, in place of the one it reported before."""
        from ..model import layer_for

        old = self.surface_layer
        layer = layer_for(preview.mesh, name=preview.name)
        if old is not None and old in self.scene:
            layer.color, layer.opacity, layer.visible = old.color, old.opacity, old.visible  # the user's choices
            self.scene.remove(old)
        self.surface_layer = self.scene.add(layer)

    def show_learned_volume(self) -> None:
        """Add the field the model learned (IDR's signed distance) as an image layer, computed in a
        worker, windowed so that the zero level set is the middle grey."""
        plugin, model = self.model_plugin, self.model
        if plugin is None or model is None:
            return

        def done(volume) -> None:
            if volume is None:
                self.error(f"{plugin.name} learned no field to show as a volume.")
                return
            from ..model import layer_for

            spread = float(np.percentile(np.abs(volume.array), 95)) or 1.0
            self.scene.add(layer_for(volume, colormap="jet", window=2 * spread, level=0.0))

        self.jobs.submit(lambda _p: plugin.learned_volume(model), "computing the learned field", on_done=done,
                         on_error=self.error)

    def show_descriptors(self) -> None:
        """Add the model's points, coloured by the first three principal components of what each
        point learned, as a new points layer (computed in a worker: millions of points)."""
        plugin, model = self.model_plugin, self.model
        if plugin is None or model is None:
            return

        def work(progress):
            from ..analysis.descriptors import descriptor_colors
            from ..model import PointCloud

            got = plugin.learned_points(model)
            if got is None:
                return None
            cloud, desc = got
            colors = descriptor_colors(np.asarray(desc))
            if len(colors) != cloud.n_points:
                raise ValueError(f"{len(colors)} descriptors for {cloud.n_points} points")
            return PointCloud(np.asarray(cloud.points), colors=colors, name=f"{cloud.name or 'points'} (learned)")

        def done(cloud) -> None:
            if cloud is None:
                self.error(f"{plugin.name} has no descriptors per point to show.")
                return
            from ..model import layer_for

            self.scene.add(layer_for(cloud))

        self.jobs.submit(work, "colouring points by descriptors", on_done=done, on_error=self.error)

    # checkpoints ----------------------------------------------------------------------------------
    def _load_dialog(self) -> None:
        folder = self._ask_folder("Load renderer checkpoint (folder)")
        if folder:
            self.load_checkpoint(folder)

    def load_checkpoint(self, folder: str) -> None:
        """Load a checkpoint folder in a job with the plugin that wrote it."""
        def done(plugin, model) -> None:
            self.chooser.choose(plugin.name)
            self._set_model(plugin, model, f"loaded from {Path(folder).name}")
            self.bar.status.setText(f"Loaded checkpoint {folder}.")

        self._load(folder, warm_torch, done)

    def _save_dialog(self) -> None:
        if self.model is None:
            return
        default = str(Path.home() / f"{self.model_plugin.name}-checkpoint")
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint as a folder", default, "Checkpoint folder (*)")
        if path:
            self.save_checkpoint(path)

    def save_checkpoint(self, folder: str) -> None:
        """Write the model's checkpoint folder (the plugin writes it atomically) in a job."""
        if self.model is None:
            self.error("No model to save: train one or load a checkpoint first.")
            return
        target = Path(folder)
        if target.exists() and (not target.is_dir() or (any(target.iterdir())
                                                        and not (target / "config.json").is_file())):
            self.error(str(LoadError(target, "not an empty folder or a checkpoint: choose a new folder")))
            return
        plugin, model = self.model_plugin, self.model
        self.jobs.submit(lambda _p: plugin.save(model, target), "Saving checkpoint",
                         on_done=lambda p: self.bar.status.setText(f"Saved checkpoint to {p}."), on_error=self.error)

    # learned view and comparison ------------------------------------------------------------------
    def _render_fn(self, background=None):
        """``(camera, preview=False) -> image`` of the current model, over ``background`` (default:
        its training scene's). ``preview``: a frame drawn while the camera moves, passed on to a
        renderer whose ``render`` takes it (docs/PLUGINS.md: it may draw cheaper)."""
        plugin, model = self.model_plugin, self.model
        takes_preview = "preview" in inspect.signature(plugin.render).parameters

        def render(camera, preview: bool = False):
            if preview and takes_preview:
                return plugin.render(model, camera, background, preview=True)
            return plugin.render(model, camera, background)

        return render

    def set_learned_view(self, on: bool) -> None:
        """Show (or stop showing) the model's image for the 3D camera over the 3D view."""
        if self.learned_box.isChecked() != on:
            self.learned_box.setChecked(on)  # comes back here through toggled
            return
        if self.learned is None:
            return
        if on and self.model is not None:
            self.learned.start(self._render_fn())
        else:
            self.learned.stop()

    def _learned_failed(self, message: str) -> None:
        self.learned_box.setChecked(False)
        self.error(f"Learned view: {message}")

    def open_compare(self) -> None:
        vs = self.viewset()
        if self.model is None or vs is None:
            self.error("Train a model or load a checkpoint, and open its photo set, to compare.")
            return
        self.compare_frames = held_out_frames(vs.data)
        if not self.compare_frames:
            self.error(f"{vs.name} has no frames.")
            return
        self._compare_background = vs.data.background
        if self.compare_view is None:
            self.compare_view = CompareView(self)
            self.compare_view.step.connect(self.compare_step)
        self.compare_index = 0
        self.compare_view.show()
        self.compare_view.raise_()
        self.compare_step(0)

    def compare_step(self, delta: int) -> None:
        """Show held-out frame ``index + delta`` (wrapping): rendered in a worker."""
        if not self.compare_frames or self.model is None or self.compare_view is None:
            return
        n = len(self.compare_frames)
        self.compare_index = (self.compare_index + delta) % n
        frame = self.compare_frames[self.compare_index]
        bg = self._compare_background
        fn = self._render_fn(bg)
        caption = f"{frame.name or frame.camera.name} ({frame.split}, {self.compare_index + 1}/{n})"
        self.compare_view.show_busy(f"{caption}: rendering…")

        def work():
            return compare_images(frame.rgb(bg), fn(frame.camera))

        self.compare_jobs.submit(work, lambda r: self.compare_view.show_result(r, caption),
                                 lambda m: (self.compare_view.show_busy(f"{caption}: failed"), self.error(m)))

    def shutdown(self) -> None:
        """Stop the learned view and the comparison's worker (window closing)."""
        if self.learned is not None:
            self.learned.stop()
            self.learned.scheduler.shutdown()
        self.compare_jobs.shutdown()
