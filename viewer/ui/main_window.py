"""The main window: four linked views, the layer panel, the Segmentation and Neural Rendering
docks, the photo of the selected camera, menus, status bar, scene files and screenshots. Opening
files (dialogs, background loads, recent files, drag and drop) is :mod:`viewer.ui.opening`."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget, QFileDialog, QGridLayout, QLabel, QMainWindow, QMessageBox, QProgressBar,
    QPushButton, QSizePolicy, QWidget,
)

from ..io import load_path
from ..io.scene_file import load_source, read_scene, restore_layers, restore_measurements, save_scene
from ..jobs.runner import JobRunner
from .frames import FrameLoader
from ..model import ImageLayer, LabelLayer, Scene, ViewSetLayer, layer_for
from ..model.errors import LoadError
from .layer_panel import LayerPanel
from .opening import FileOpening

__all__ = ["MainWindow"]


class _Prefetch(QObject):
    """Imports the heavy modules (VTK, pyvista, the training panels) in a thread, so the window
    is drawn and answers while they load; ``done`` arrives in the UI thread."""

    done = Signal()

    MODULES = ("vtk", "pyvista", "pyvistaqt", "viewer.ui.views", "viewer.ui.segmentation",
               "viewer.ui.render_panel", "viewer.ui.lesions")

    def start(self) -> None:
        threading.Thread(target=self._run, name="lucid3d-prefetch", daemon=True).start()

    def _run(self) -> None:
        for name in self.MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # the UI thread imports it again and reports the real error
                break
        self.done.emit()


class MainWindow(FileOpening, QMainWindow):
    """The application window.

    ``staged=True`` (what ``main.py`` uses) draws a light window at once: menus, the layer
    panel, the status bar and a placeholder where the views go; VTK, pyvista and the training
    panels are imported in a thread and built when they arrive (``views_ready``). Files opened
    meanwhile load as usual and appear when the views exist. ``staged=False`` builds everything
    before returning (tests, scripts).
    """

    views_ready = Signal()

    def __init__(self, scene: Scene | None = None, staged: bool = False) -> None:
        super().__init__()
        self.setWindowTitle("Lucid3D")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.scene = scene or Scene()
        self.jobs = JobRunner()
        self.frame_loader = FrameLoader(self.scene, self.jobs)  # 4D images: the frame asked for
        self.settings = QSettings("Lucid3D", "Lucid3D")
        self.views: dict = {}
        self.is_ready = False
        self._after_ready: list = []

        self.layer_panel = LayerPanel(self.scene)
        dock = QDockWidget("Layers", self)
        dock.setObjectName("layers")
        dock.setWidget(self.layer_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setMinimumWidth(330)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.segmentation_dock = self._dock("Segmentation", "segmentation", Qt.DockWidgetArea.RightDockWidgetArea, 360)
        self.render_dock = self._dock("Neural Rendering", "neural_rendering", Qt.DockWidgetArea.RightDockWidgetArea, 360)
        self.photo_dock = self._dock("Camera photo", "camera_photo", Qt.DockWidgetArea.LeftDockWidgetArea, 0)
        self.edit_dock = self._dock("Label editor", "label_editor", Qt.DockWidgetArea.RightDockWidgetArea, 320)
        self.compare_dock = self._dock("Compare labels", "compare_labels", Qt.DockWidgetArea.RightDockWidgetArea, 320)
        self.lesions_dock = self._dock("Lesions", "lesions", Qt.DockWidgetArea.RightDockWidgetArea, 360)

        self.position_label = QLabel("")
        self.position_label.setMinimumWidth(420)
        self.job_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        # stops loads and scans only: trainings have their own Cancel in their panels
        self.cancel_btn.clicked.connect(lambda: self.jobs.cancel_lane("io"))
        sb = self.statusBar()
        sb.addWidget(self.position_label, 1)
        sb.addPermanentWidget(self.job_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_btn)
        self.jobs.job_started.connect(self._job_started)
        self.jobs.job_ended.connect(self._job_ended)
        self._build_menus()
        self.scene.cursor_changed.connect(lambda *_: self._show_cursor_value())
        if staged:
            waiting = QLabel("Preparing the views…")
            waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
            waiting.setStyleSheet("background: black; color: #9aa4ad; font-size: 15px;")
            # the views' place keeps its share of the window while they are being built
            waiting.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            waiting.setMinimumSize(640, 480)
            self.setCentralWidget(waiting)
            self._prefetch = _Prefetch()
            self._prefetch.done.connect(self._build_heavy)
            QTimer.singleShot(0, self._prefetch.start)
        else:
            self._build_heavy()

    def _dock(self, title: str, name: str, area, min_width: int) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        placeholder = QLabel("Loading…")
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        dock.setWidget(placeholder)
        if min_width:
            dock.setMinimumWidth(min_width)
        self.addDockWidget(area, dock)
        dock.hide()  # the View menu opens it (Ctrl+G segmentation, Ctrl+R rendering)
        return dock

    def when_ready(self, fn) -> None:
        """Call ``fn()`` once the views exist (now, when they already do)."""
        if self.is_ready:
            fn()
        else:
            self._after_ready.append(fn)

    def _build_heavy(self) -> None:
        """The four VTK views and the training panels (the part of start-up that takes seconds)."""
        from .segmentation import SegmentationPanel
        from .views import ViewPanel

        grid_host = QWidget()
        self.grid = QGridLayout(grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        for kind, (r, c) in (("axial", (0, 0)), ("3d", (0, 1)), ("coronal", (1, 0)), ("sagittal", (1, 1))):
            panel = ViewPanel(self.scene, kind, run_async=self.jobs.run_async)
            panel.hovered.connect(self._on_hover)
            self.grid.addWidget(panel, r, c)
            self.views[kind] = panel
        self.setCentralWidget(grid_host)
        self.segmentation_panel = SegmentationPanel(self.scene, self.jobs)
        self.segmentation_dock.setWidget(self.segmentation_panel)
        self._build_editor()
        self._build_rendering_docks()
        from .lesions import LesionsPanel

        self.lesions_panel = LesionsPanel(self.scene, self.jobs, view3d=self.views["3d"].view)
        self.lesions_dock.setWidget(self.lesions_panel)
        self.is_ready = True
        pending, self._after_ready = self._after_ready, []
        for fn in pending:
            fn()
        self.views_ready.emit()

    def _build_editor(self) -> None:
        """The label editor dock; its brush becomes the slice views' left button while on."""
        from .edit_panel import EditPanel, find_autosaves

        self.edit_panel = EditPanel(self.scene, self.jobs)
        self.edit_dock.setWidget(self.edit_panel)
        from .compare_panel import ComparePanel

        self.compare_panel = ComparePanel(self.scene, self.jobs)
        self.compare_dock.setWidget(self.compare_panel)
        self.edit_panel.tool_changed.connect(self._set_edit_tool)
        self.edit_dock.visibilityChanged.connect(
            lambda shown: None if shown else self.edit_panel.set_tool("navigate"))
        self.layer_panel.confirm_remove = lambda layer: self._confirm_discard([layer], "Remove")
        leftovers = find_autosaves()
        if leftovers:
            QTimer.singleShot(0, lambda: self._offer_autosaves(leftovers))

    def _set_edit_tool(self, session) -> None:
        for kind, panel in self.views.items():
            if kind != "3d":
                panel.view.tool = session
                if session is None:
                    panel.view.show_brush(None)

    def _confirm_discard(self, layers, action: str) -> bool:
        """Ask before unsaved label edits are lost; True to go on."""
        panel = getattr(self, "edit_panel", None)
        unsaved = [l for l in layers if panel is not None and l in panel.unsaved()]
        if not unsaved:
            return True
        names = ", ".join(l.name for l in unsaved)
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved label edits",
                          f"{names} has edits that are not saved. {action} anyway and lose them?",
                          QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("unsaved_dialog")
        return box.exec() == QMessageBox.StandardButton.Discard

    def _offer_autosaves(self, leftovers) -> None:
        from .edit_panel import _remove_autosave

        names = ", ".join(str(meta.get("name", mask.name)) for mask, meta in leftovers)
        box = QMessageBox(QMessageBox.Icon.Question, "Recover label edits",
                          f"Lucid3D found label edits that were never saved ({names}), probably from a session "
                          "that ended unexpectedly. Open them?",
                          QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Discard, self)
        box.setObjectName("recover_dialog")
        box.setModal(False)

        def answered(button) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Open:
                self._recover(leftovers)
            else:
                for mask, _ in leftovers:
                    _remove_autosave(mask)

        box.buttonClicked.connect(answered)
        box.show()
        self.recover_box = box

    def _recover(self, leftovers) -> None:
        """Open each autosaved mask (with its source image, when that file is still there) as a
        label layer named '... (recovered)'; the autosave stays until the recovered layer is saved."""
        from ..model import LabelTable

        for mask, meta in leftovers:
            def work(_p, mask=mask, meta=meta):
                labels = load_path(mask, as_labels=True)
                if isinstance(meta.get("labels"), list):
                    try:
                        labels.table = LabelTable.from_list(meta["labels"])
                    except ValueError:
                        pass
                labels.name = f"{meta.get('name', 'labels')} (recovered)"
                labels.source = None
                return labels

            self.jobs.submit(work, f"Recovering {meta.get('name', mask.name)}",
                             on_done=lambda lab: self.scene.add(layer_for(lab)), on_error=self._error)

    def _build_rendering_docks(self) -> None:
        """The Neural Rendering panel (View menu, Ctrl+R), the selected camera's photo, and
        frustum picking in the 3D view."""
        from ..render.frusta import attach_frame_picking
        from .photo_view import PhotoView
        from .render_panel import RenderPanel

        view3d = self.views["3d"]
        self.render_panel = RenderPanel(self.scene, self.jobs, view3d=view3d.view, host=view3d.plotter.interactor)
        self.render_dock.setWidget(self.render_panel)
        self.photo_view = PhotoView()
        self.photo_dock.setWidget(self.photo_view)
        self._frame_slots: dict[int, object] = {}
        self.scene.layer_inserted.connect(self._viewset_added)
        self.scene.layer_removed.connect(self._viewset_removed)
        for i, layer in enumerate(self.scene):  # photo sets opened before the views existed
            self._viewset_added(i, layer)
        attach_frame_picking(view3d.view, view3d.plotter.iren.interactor, self._frame_picked)

    def _viewset_added(self, index: int, layer) -> None:
        if isinstance(layer, ViewSetLayer):
            slot = lambda i, l=layer: self._show_frame(l, i)  # noqa: E731
            layer.events.selected_frame.connect(slot)
            self._frame_slots[id(layer)] = slot
            if layer.selected_frame >= 0:
                self._show_frame(layer, layer.selected_frame)

    def _viewset_removed(self, index: int, layer) -> None:
        slot = self._frame_slots.pop(id(layer), None)
        if slot is not None:
            layer.events.selected_frame.disconnect(slot)
            if self.photo_view.frame is not None and self.photo_view.frame in layer.data.frames:
                self.photo_view.show_frame(None)

    def _frame_picked(self, layer: ViewSetLayer, index: int) -> None:
        """A click on a frustum: select its frame (the 3D view then looks through it)."""
        layer.selected_frame = index
        self.scene.selected = layer

    def _show_frame(self, layer: ViewSetLayer, index: int) -> None:
        if 0 <= index < len(layer.data.frames):
            self.photo_view.show_frame(layer.data.frames[index], layer.data.background)
            self.photo_dock.show()
        elif self.photo_view.frame is not None and self.photo_view.frame in layer.data.frames:
            self.photo_view.show_frame(None)

    # menus ---------------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.setStatusTip(tip)
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "Open volumes, meshes, point clouds or a scene")
        self._action(m, "Open &DICOM folder…", self.open_folder_dialog, "Ctrl+Shift+O")
        self._action(m, "Open &photo set…", self.open_photos_dialog, "Ctrl+Shift+P",
                     "Posed photos: a transforms.json (NeRF/Blender) folder or a COLMAP model")
        self._action(m, "Open as &labels…", lambda: self.open_dialog(as_labels=True), "Ctrl+L",
                     "Open an integer volume as a label overlay")
        self.recent_menu = m.addMenu("Open &recent")
        self._fill_recent()
        m.addSeparator()
        self._action(m, "Open &scene…", self.open_scene_dialog, "Ctrl+Shift+L")
        self._action(m, "Sa&ve scene…", self.save_scene_dialog, QKeySequence.StandardKey.Save)
        self._action(m, "Save screens&hot…", self.save_screenshot_dialog, "Ctrl+Shift+S")
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        v = self.menuBar().addMenu("&View")
        self._action(v, "&Reset views", self.reset_views, "R")
        self._action(v, "&Four views", lambda: self.maximize(None), "F5")
        for i, kind in enumerate(("axial", "coronal", "sagittal", "3d")):
            self._action(v, f"Only {kind if kind != '3d' else '3D'}", lambda k=kind: self.maximize(k), f"F{i + 1}")
        v.addSeparator()
        self._action(v, "Remove selected layer", self.layer_panel.remove_selected, QKeySequence.StandardKey.Delete)
        self._action(v, "Toggle selected layer", self._toggle_selected, "V")
        for dock, text, key, tip in (
                (self.segmentation_dock, "&Segmentation panel", "Ctrl+G",
                 "Train a segmenter on the loaded volumes, run it, save its masks"),
                (self.render_dock, "&Neural rendering panel", "Ctrl+R",
                 "Fit a neural renderer to posed photos and a mesh; learned view; comparison"),
                (self.edit_dock, "&Label editor", "Ctrl+E", "Paint, erase and clean up label maps; measure"),
                (self.compare_dock, "&Compare labels", None,
                 "Dice, HD95 and volume difference per label; false positives and negatives overlaid"),
                (self.lesions_dock, "Lesions: classify and &detect", None,
                 "Train a 3D classifier or detector on a cases.json; saliency overlays, boxes that jump")):
            act = dock.toggleViewAction()
            act.setText(text)
            if key:
                act.setShortcut(QKeySequence(key))
            act.setStatusTip(tip)
            v.addAction(act)
        e = self.menuBar().addMenu("&Edit")
        self._action(e, "&Undo label edit", lambda: self.is_ready and self.edit_panel.undo(), QKeySequence.StandardKey.Undo)
        self._action(e, "&Redo label edit", lambda: self.is_ready and self.edit_panel.redo(), "Ctrl+Shift+Z")
        self._action(e, "&Brush: paint", lambda: self._edit_tool("paint"), "B")
        self._action(e, "Brush: &erase", lambda: self._edit_tool("erase"), "E")
        self._action(e, "&Navigate (crosshair)", lambda: self._edit_tool("navigate"), "Esc")
        self._action(e, "&Measure a distance", lambda: self._edit_tool("ruler"), "M")
        photo = self.photo_dock.toggleViewAction()
        photo.setText("Camera &photo")
        v.addAction(photo)

        h = self.menuBar().addMenu("&Help")
        self._action(h, "Mouse and keys", self._show_help, "Shift+F1")

    def _edit_tool(self, name: str) -> None:
        if not self.is_ready:
            return
        if name != "navigate":
            self.edit_dock.show()
        self.edit_panel.set_tool(name)

    def _show_help(self) -> None:
        QMessageBox.information(self, "Mouse and keys", (
            "Slice views: left click/drag moves the crosshair; right drag: window (left-right) and "
            "level (up-down); middle drag pans; wheel or Up/Down/Page keys move through slices; "
            "Ctrl+wheel zooms; R resets.\n3D view: left drag rotates, middle pans, right drag or "
            "wheel zooms.\nF1-F4 show one view, F5 all four. Drop files or folders on the window to "
            "open them."))

    def _toggle_selected(self) -> None:
        if self.scene.selected is not None:
            self.scene.selected.visible = not self.scene.selected.visible

    def maximize(self, kind: str | None) -> None:
        for k, panel in self.views.items():
            panel.setVisible(kind is None or k == kind)

    def reset_views(self) -> None:
        for panel in self.views.values():
            panel.reset()

    def _error(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot open", message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error_dialog")
        box.setModal(False)
        box.show()
        self.last_error = message

    # scenes and screenshots ------------------------------------------------------------------
    def cameras(self) -> dict[str, dict]:
        return {k: p.view.camera_state() for k, p in self.views.items()}

    def save_scene_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save scene", self._last_dir(), "Lucid3D scene (*.lucid3d.json)")
        if path:
            if not path.endswith(".json"):
                path += ".lucid3d.json"
            self.save_scene(path)

    def save_scene(self, path: str) -> None:
        try:
            save_scene(self.scene, path, self.cameras())
            self.statusBar().showMessage(f"saved scene {path}", 5000)
        except LoadError as exc:
            self._error(str(exc))

    def open_scene_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open scene", self._last_dir(), "Lucid3D scene (*.json)")
        if path:
            self.open_scene(path)

    def open_scene(self, path: str) -> None:
        """Replace the scene's layers with a scene file's, restoring display, cursor and cameras."""
        if not self._confirm_discard(list(self.scene), "Open a scene"):
            return
        # everything is read, checked and built in the worker; the scene on screen is replaced
        # only when all of it succeeded, so a bad file leaves it as it was and a dialog says why
        def work(progress):
            from ..samples.registry import demo_source

            data = read_scene(path)
            layers = restore_layers(data, lambda entry: load_source(entry, demo=demo_source), path=path)
            return data, layers, restore_measurements(data, layers)

        def done(result):
            data, layers, measurements = result
            self.scene.clear()
            self.scene.clear_measurements()
            for m in measurements:
                self.scene.add_measurement(m)
            for layer in layers:
                self.scene.add(layer)
            sel = data.get("selected")
            if sel is not None and 0 <= sel < len(layers):
                self.scene.selected = layers[sel]
            self.scene.cursor = data.get("cursor", self.scene.cursor)
            # cameras after the views have reacted to the new layers
            QTimer.singleShot(0, lambda: self.when_ready(lambda: self._restore_cameras(data.get("cameras", {}))))
            self._add_recent(path)

        self.jobs.submit(work, f"Opening scene {Path(path).name}", on_done=done, on_error=self._error)

    def _restore_cameras(self, cams: dict) -> None:
        for kind, state in cams.items():
            if kind in self.views:
                try:
                    self.views[kind].view.set_camera_state(state)
                except (KeyError, TypeError, ValueError):
                    pass

    def grab_views(self) -> np.ndarray:
        """The visible views as one RGB image, laid out as on screen."""
        shots = {k: np.asarray(p.screenshot())[..., :3] for k, p in self.views.items() if p.isVisible()}
        if len(shots) == 1:
            return next(iter(shots.values()))
        h = max(s.shape[0] for s in shots.values())
        w = max(s.shape[1] for s in shots.values())
        canvas = np.zeros((2 * h + 2, 2 * w + 2, 3), np.uint8)
        for kind, (r, c) in (("axial", (0, 0)), ("3d", (0, 1)), ("coronal", (1, 0)), ("sagittal", (1, 1))):
            s = shots.get(kind)
            if s is not None:
                canvas[r * (h + 2): r * (h + 2) + s.shape[0], c * (w + 2): c * (w + 2) + s.shape[1]] = s
        return canvas

    def save_screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", self._last_dir(), "PNG image (*.png)")
        if path:
            if not path.lower().endswith(".png"):
                path += ".png"
            self.save_screenshot(path)

    def save_screenshot(self, path: str) -> None:
        from PIL import Image

        from ..io import atomic_path

        try:
            sources = [l.source for l in self.scene if l.source and not l.source.startswith("demo:")]
            with atomic_path(path, protect=sources) as tmp:
                Image.fromarray(self.grab_views()).save(tmp, format="PNG")
            self.statusBar().showMessage(f"saved {path}", 5000)
        except (LoadError, OSError) as exc:
            self._error(str(exc))

    # status bar --------------------------------------------------------------------------------
    def _on_hover(self, ras) -> None:
        if ras is None:
            self._show_cursor_value()
            return
        self._show_position(np.asarray(ras), "mouse")

    def _show_cursor_value(self) -> None:
        self._show_position(self.scene.cursor, "cursor")

    def _show_position(self, ras: np.ndarray, what: str) -> None:
        text = f"{what}:  R {ras[0]:.1f}  A {ras[1]:.1f}  S {ras[2]:.1f} mm"
        ref = self.scene.reference_image()
        if isinstance(ref, ImageLayer):
            ijk = np.rint(ref.data.world_to_index(ras)).astype(int)
            val = ref.data.value_at(ras)
            if val is not None:
                unit = " HU" if ref.data.modality == "CT" else ""
                text += f"   voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})   {ref.name}: {val:g}{unit}"
        for lab in self.scene.of_kind(LabelLayer):
            idx = np.rint(np.linalg.inv(lab.data.affine)[:3] @ np.append(ras, 1)).astype(int)
            if np.all(idx >= 0) and np.all(idx < np.array(lab.data.shape)):
                v = int(lab.data.array[tuple(idx)])
                if v and v in lab.data.table:
                    text += f"   {lab.data.table[v].name}"
        self.position_label.setText(text)

    # jobs ------------------------------------------------------------------------------------
    def _job_started(self, job) -> None:
        if job.lane == "io":  # trainings and view work report in their own panels
            job.progress.connect(self._job_progress)
        self._refresh_jobs()

    def _job_ended(self, job) -> None:
        self._refresh_jobs()

    def _job_progress(self, step: float, total: float, message: str) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * step / total))
        if message:
            self.job_label.setText(message)

    def _refresh_jobs(self) -> None:
        busy = self.jobs.busy("io")
        self.progress.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        if busy:
            # not Qt's busy mode: it animates (and repaints the window) ~16 times a second
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            self.job_label.setText(self.jobs.running("io")[-1].label)
        else:
            self.job_label.setText("")

    def closeEvent(self, event) -> None:
        if self.is_ready and self.edit_panel.unsaved():
            if not self._confirm_discard(self.edit_panel.unsaved(), "Close"):
                event.ignore()
                return
        if self.is_ready:
            self.edit_panel.discard_autosaves()  # the user chose: nothing to recover next time
            self.render_panel.shutdown()
        self.jobs.shutdown()
        for panel in self.views.values():
            panel.close_view()
        super().closeEvent(event)
