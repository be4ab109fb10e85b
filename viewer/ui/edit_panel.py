"""The label editor dock: paint/erase with a brush in the slice views, threshold-in-brush, the
clean-up tools, undo/redo, saving, and the autosave that survives a crash.

The editing itself is ``viewer.edit`` (Qt-free); this panel holds the controls and sets the
session as the slice views' ``tool`` while Paint or Erase is on.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
import time
import uuid
from pathlib import Path

import numpy as np
from PySide6.QtCore import QStandardPaths, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
    QLabel, QListWidget, QMessageBox, QPushButton, QVBoxLayout, QWidget,
)
from superqt import QLabeledDoubleSlider

from ..edit import EditSession, RegionTool, RulerTool
from ..io import save_nifti
from ..io.labelfiles import sidecar_path, write_itksnap_labels
from ..model import ImageLayer, LabelLayer, Scene

__all__ = ["EditPanel", "autosave_dir"]

AUTOSAVE_SECONDS = 60


def autosave_dir() -> Path:
    """Where unsaved edits are kept until saved (never beside the user's files)."""
    env = os.environ.get("LUCID3D_AUTOSAVE_DIR")
    base = Path(env) if env else Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) / "autosave"
    return base


class EditPanel(QWidget):
    """Controls for editing the selected label layer."""

    tool_changed = Signal(object)  # the session now acting as the slice views' tool, or None
    message = Signal(str)

    def __init__(self, scene: Scene, jobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene, self.jobs = scene, jobs
        self.sessions: dict[int, EditSession] = {}
        self.session: EditSession | None = None
        self._autosaved: dict[int, Path] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        form = QFormLayout()
        self.layer_box = QComboBox()
        self.layer_box.currentIndexChanged.connect(self._layer_chosen)
        form.addRow("Label layer", self.layer_box)
        row = QHBoxLayout()
        self.label_box = QComboBox()
        self.label_box.currentIndexChanged.connect(self._label_chosen)
        self.new_label_btn = QPushButton("New")
        self.new_label_btn.setToolTip("Add a label (the next free value) and paint with it")
        self.new_label_btn.clicked.connect(self._new_label)
        row.addWidget(self.label_box, 1)
        row.addWidget(self.new_label_btn)
        form.addRow("Label", row)
        lay.addLayout(form)

        tools = QHBoxLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_btns = {}
        for name, tip in (("Navigate", "Left button moves the crosshair (Esc)"),
                          ("Paint", "Left button paints the label (B)"), ("Erase", "Left button erases the label (E)"),
                          ("Ruler", "Drag a distance in mm (M)"),
                          ("Region", "Drag from a centre: mean, SD, min, max of the image in the sphere")):
            b = QPushButton(name)
            b.setCheckable(True)
            b.setToolTip(tip)
            self.tool_group.addButton(b)
            tools.addWidget(b)
            self.tool_btns[name.lower()] = b
        self.tool_btns["navigate"].setChecked(True)
        self.tool_group.buttonClicked.connect(lambda _b: self._tool_chosen())
        lay.addLayout(tools)

        brush = QGroupBox("Brush")
        bf = QFormLayout(brush)
        self.size = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.size.setRange(0.5, 50.0)
        self.size.setValue(3.0)
        self.size.valueChanged.connect(self._brush_changed)
        bf.addRow("Radius (mm)", self.size)
        self.shape = QComboBox()
        self.shape.addItems(["disk", "sphere"])
        self.shape.currentTextChanged.connect(self._brush_changed)
        bf.addRow("Shape", self.shape)
        self.over = QComboBox()
        self.over.addItems(["all", "background"])
        self.over.setToolTip("background: paint only where no label is yet")
        self.over.currentTextChanged.connect(self._brush_changed)
        bf.addRow("Paint over", self.over)
        trow = QHBoxLayout()
        self.thr_on = QCheckBox("Only image values in")
        self.thr_lo, self.thr_hi = QDoubleSpinBox(), QDoubleSpinBox()
        for sb, v in ((self.thr_lo, 200.0), (self.thr_hi, 3000.0)):
            sb.setRange(-1e6, 1e6)
            sb.setDecimals(1)
            sb.setValue(v)
            sb.valueChanged.connect(self._brush_changed)
        self.thr_on.toggled.connect(self._brush_changed)
        trow.addWidget(self.thr_on)
        trow.addWidget(self.thr_lo)
        trow.addWidget(self.thr_hi)
        bf.addRow(trow)
        lay.addWidget(brush)

        clean = QGroupBox("Tools (selected label)")
        cf = QFormLayout(clean)
        self.axis_box = QComboBox()
        self.axis_box.addItems(["axial", "coronal", "sagittal"])
        self.axis_box.setToolTip("the slices that fill-holes and interpolation work in")
        cf.addRow("In slices", self.axis_box)
        r1 = QHBoxLayout()
        self.fill_btn = QPushButton("Fill holes")
        self.interp_btn = QPushButton("Interpolate")
        self.interp_btn.setToolTip("Fill the slices between slices painted a few apart")
        self.largest_btn = QPushButton("Keep largest")
        for b in (self.fill_btn, self.interp_btn, self.largest_btn):
            r1.addWidget(b)
        cf.addRow(r1)
        r2 = QHBoxLayout()
        self.island_mm3 = QDoubleSpinBox()
        self.island_mm3.setRange(0.0, 1e6)
        self.island_mm3.setValue(50.0)
        self.island_mm3.setSuffix(" mm³")
        self.islands_btn = QPushButton("Remove islands under")
        r2.addWidget(self.islands_btn)
        r2.addWidget(self.island_mm3)
        cf.addRow(r2)
        self.fill_btn.clicked.connect(lambda: self._tool_run("fill"))
        self.interp_btn.clicked.connect(lambda: self._tool_run("interpolate"))
        self.largest_btn.clicked.connect(lambda: self._tool_run("largest"))
        self.islands_btn.clicked.connect(lambda: self._tool_run("islands"))
        lay.addWidget(clean)

        r3 = QHBoxLayout()
        self.undo_btn = QPushButton("Undo")
        self.redo_btn = QPushButton("Redo")
        self.save_btn = QPushButton("Save mask…")
        self.undo_btn.clicked.connect(self.undo)
        self.redo_btn.clicked.connect(self.redo)
        self.save_btn.clicked.connect(self.save_dialog)
        for b in (self.undo_btn, self.redo_btn, self.save_btn):
            r3.addWidget(b)
        lay.addLayout(r3)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        meas = QGroupBox("Measurements")
        ml = QVBoxLayout(meas)
        self.measure_list = QListWidget()
        self.measure_list.setMinimumHeight(80)
        ml.addWidget(self.measure_list)
        self.delete_measure_btn = QPushButton("Delete measurement")
        self.delete_measure_btn.clicked.connect(self._delete_measurement)
        ml.addWidget(self.delete_measure_btn)
        lay.addWidget(meas)
        lay.addStretch(1)
        self.ruler_tool, self.region_tool = RulerTool(scene), RegionTool(scene)
        scene.measurements_changed.connect(self._fill_measurements)

        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(AUTOSAVE_SECONDS * 1000)
        self._autosave_timer.timeout.connect(self.autosave)
        self._autosave_timer.start()
        scene.layer_inserted.connect(lambda *_: self._fill_layers())
        scene.layer_removed.connect(self._removed)
        scene.selection.connect(lambda *_: self._follow_selection())
        self._fill_layers()

    # layers and labels ------------------------------------------------------------------------------
    def _label_layers(self) -> list[LabelLayer]:
        return [l for l in self.scene if isinstance(l, LabelLayer)]

    def _fill_layers(self) -> None:
        current = self.session.layer if self.session else None
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        for l in self._label_layers():
            self.layer_box.addItem(l.name, id(l))
        self.layer_box.blockSignals(False)
        layers = self._label_layers()
        if current in layers:
            self.layer_box.setCurrentIndex(layers.index(current))
        self._layer_chosen()

    def _follow_selection(self) -> None:
        sel = self.scene.selected
        layers = self._label_layers()
        if isinstance(sel, LabelLayer) and sel in layers:
            self.layer_box.setCurrentIndex(layers.index(sel))

    def _removed(self, index, layer) -> None:
        self.sessions.pop(id(layer), None)
        path = self._autosaved.pop(id(layer), None)
        if path is not None:
            _remove_autosave(path)
        self._fill_layers()

    def session_for(self, layer: LabelLayer) -> EditSession:
        s = self.sessions.get(id(layer))
        if s is None:
            image = next((l for l in self.scene if isinstance(l, ImageLayer) and l.data.shape == layer.data.shape), None)
            s = EditSession(layer, image)
            s.history.changed.connect(lambda *_: self._update())
            layer.events.table.connect(lambda *_: self._fill_labels())
            self.sessions[id(layer)] = s
        return s

    def _layer_chosen(self, *_: object) -> None:
        layers = self._label_layers()
        i = self.layer_box.currentIndex()
        self.session = self.session_for(layers[i]) if 0 <= i < len(layers) else None
        self._fill_labels()
        self._brush_changed()
        self._tool_chosen()

    def _fill_labels(self) -> None:
        self.label_box.blockSignals(True)
        self.label_box.clear()
        if self.session is not None:
            for lab in self.session.layer.data.table:
                self.label_box.addItem(f"{lab.value}: {lab.name}", lab.value)
            i = self.label_box.findData(self.session.value)
            self.label_box.setCurrentIndex(max(i, 0))
        self.label_box.blockSignals(False)
        self._update()

    def _label_chosen(self, *_: object) -> None:
        if self.session is not None and self.label_box.currentData() is not None:
            self.session.value = int(self.label_box.currentData())

    def _new_label(self) -> None:
        if self.session is not None:
            self.session.add_label()
            self._fill_labels()

    # tool and brush ------------------------------------------------------------------------------
    def set_tool(self, name: str) -> None:
        """"navigate", "paint" or "erase" (keyboard: Esc, B, E)."""
        self.tool_btns[name].setChecked(True)
        self._tool_chosen()

    def _tool_chosen(self) -> None:
        name = next(k for k, b in self.tool_btns.items() if b.isChecked())
        if name in ("ruler", "region"):
            self.tool_changed.emit(self.ruler_tool if name == "ruler" else self.region_tool)
            return
        if self.session is None or name == "navigate":
            self.tool_changed.emit(None)
            return
        self.session.brush.mode = name
        self.tool_changed.emit(self.session)

    def _brush_changed(self, *_: object) -> None:
        if self.session is None:
            return
        b = self.session.brush
        b.radius_mm = float(self.size.value())
        b.shape = self.shape.currentText()
        b.over = self.over.currentText()
        lo, hi = sorted((self.thr_lo.value(), self.thr_hi.value()))
        b.threshold = (lo, hi) if self.thr_on.isChecked() else None
        if self.thr_on.isChecked() and self.session.image is None:
            self.status.setText("Threshold painting needs an image on the labels' grid; none is loaded.")

    def _tool_run(self, what: str) -> None:
        """Run a clean-up tool: the whole-volume computation in a worker, the edit (one undo
        step) on the UI thread when it arrives."""
        s = self.session
        if s is None:
            return
        axis = s.axis_of_view({"axial": (0, 0, 1), "coronal": (0, 1, 0), "sagittal": (1, 0, 0)}[self.axis_box.currentText()])
        compute, apply = s.tool(what, axis=axis, min_mm3=self.island_mm3.value())
        self.status.setText(f"{what}…")
        self.jobs.submit(lambda _p: compute(), f"Label tool: {what}", lane="view",
                         on_done=lambda r: self.status.setText(f"{what}: {apply(r)} voxels changed"),
                         on_error=lambda m: self.status.setText(f"{what} failed: {m}"))

    # measurements --------------------------------------------------------------------------------
    def _fill_measurements(self) -> None:
        self.measure_list.clear()
        for m in self.scene.measurements:
            self.measure_list.addItem(m.summary())

    def _delete_measurement(self) -> None:
        i = self.measure_list.currentRow()
        if 0 <= i < len(self.scene.measurements):
            self.scene.remove_measurement(self.scene.measurements[i])

    # undo, save, autosave ---------------------------------------------------------------------------
    def undo(self) -> None:
        if self.session is not None and not self.session.undo():
            self.status.setText("Nothing to undo")

    def redo(self) -> None:
        if self.session is not None and not self.session.redo():
            self.status.setText("Nothing to redo")

    def _update(self) -> None:
        s = self.session
        on = s is not None
        for w in (self.label_box, self.new_label_btn, self.fill_btn, self.interp_btn, self.largest_btn,
                  self.islands_btn, self.save_btn):
            w.setEnabled(on)
        self.undo_btn.setEnabled(bool(on and s.history.done))
        self.redo_btn.setEnabled(bool(on and s.history.undone))
        if on:
            h = s.history
            state = "unsaved edits" if h.dirty else "no unsaved edits"
            self.status.setText(f"{len(h.done)} edits ({state}); undo memory {h.nbytes / 1024:.0f} kB")

    def unsaved(self) -> list[LabelLayer]:
        """Label layers with edits not saved to a file."""
        return [s.layer for s in self.sessions.values() if s.dirty and s.layer in self.scene]

    def save_dialog(self) -> None:
        if self.session is None:
            return
        layer = self.session.layer
        start = layer.source if layer.source and not layer.source.startswith("demo:") else str(Path.home() / f"{layer.name}.nii.gz")
        path, _ = QFileDialog.getSaveFileName(self, "Save mask", start, "NIfTI (*.nii.gz *.nii)")
        if path:
            self.save(layer, path)

    def save(self, layer: LabelLayer, path: str) -> None:
        """Write the mask (NIfTI on its grid) and its label names (ITK-SNAP file beside it), in a
        worker; the edits count as saved once both are written."""
        session = self.session_for(layer)
        marker = len(session.history.done)
        protect = [l.source for l in self.scene if l.source and not l.source.startswith("demo:") and l is not layer]
        data = replace(layer.data, array=np.array(layer.data.array))  # a snapshot: painting may go on

        def work(_p):
            save_nifti(data, path, protect=protect)
            write_itksnap_labels(data.table, sidecar_path(path), protect=protect)
            return path

        def done(_path):
            if len(session.history.done) == marker:
                session.history.mark_saved()
            layer.data.source = str(Path(path).resolve())  # scenes now point at the saved mask
            old = self._autosaved.pop(id(layer), None)
            if old is not None:
                _remove_autosave(old)
            self.status.setText(f"saved {path}")
            self._update()

        self.jobs.submit(work, f"Saving {Path(path).name}", on_done=done,
                         on_error=lambda m: QMessageBox.warning(self, "Save mask", m))

    def autosave(self) -> None:
        """Write each layer with unsaved edits to the autosave folder (in a worker)."""
        for s in list(self.sessions.values()):
            if not s.dirty or s.layer not in self.scene:
                continue
            layer = s.layer
            target = self._autosaved.get(id(layer)) or autosave_dir() / f"{uuid.uuid4().hex}.nii.gz"
            self._autosaved[id(layer)] = target
            meta = {"name": layer.name, "source": layer.source, "time": time.time(),
                    "labels": layer.data.table.to_list()}
            data = replace(layer.data, array=np.array(layer.data.array))

            def work(_p, data=data, target=target, meta=meta):
                target.parent.mkdir(parents=True, exist_ok=True)
                save_nifti(data, target)
                tmp = target.with_suffix(".json.part")
                tmp.write_text(json.dumps(meta))
                os.replace(tmp, target.with_name(target.name[: -len(".nii.gz")] + ".json"))
                return target

            self.jobs.submit(work, "Autosaving label edits", lane="io")

    def discard_autosaves(self) -> None:
        for path in self._autosaved.values():
            _remove_autosave(path)
        self._autosaved.clear()


def _remove_autosave(path: Path) -> None:
    for p in (path, path.with_name(path.name[: -len(".nii.gz")] + ".json")):
        try:
            p.unlink()
        except OSError:
            pass


def find_autosaves() -> list[tuple[Path, dict]]:
    """Autosaved edits left by a session that did not end cleanly: (mask path, its metadata)."""
    out = []
    folder = autosave_dir()
    if not folder.is_dir():
        return out
    for meta_path in sorted(folder.glob("*.json")):
        mask = meta_path.with_name(meta_path.stem + ".nii.gz")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if mask.is_file() and isinstance(meta, dict):
            out.append((mask, meta))
    return out
