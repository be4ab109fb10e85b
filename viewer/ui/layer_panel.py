"""The layer panel (napari-like): the layer list and the controls of the selected layer."""

from __future__ import annotations

import weakref

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox, QColorDialog, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QHeaderView,
    QListWidget, QListWidgetItem, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
    QWidget, QAbstractItemView, QLabel, QSlider,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from ..model import (COLORMAPS, RENDER_MODES, BoxesLayer, ImageLayer, LabelLayer, Layer, MeshLayer,
                     PointsLayer, Scene, ViewSetLayer)
from ..resources import volume_presets, window_level_presets

FRUSTUM_STEPS = 100  # slider positions per decade of frustum size

__all__ = ["LayerPanel"]

_KIND_ICON = {"image": "▦", "labels": "◩", "mesh": "◭", "points": "⁘", "viewset": "◫", "boxes": "⬚"}


def _swatch(rgb) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor.fromRgbF(*rgb))
    return QIcon(pm)


class LayerPanel(QWidget):
    """Lists the scene's layers (top layer first) and edits the selected one."""

    def __init__(self, scene: Scene, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene = scene
        self._updating = False
        self._bound: Layer | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)

        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setMinimumHeight(110)
        self.list.itemChanged.connect(self._item_changed)
        self.list.currentRowChanged.connect(self._row_changed)
        lay.addWidget(self.list, 1)

        buttons = QHBoxLayout()
        self.up_btn = QPushButton("▲")
        self.down_btn = QPushButton("▼")
        self.remove_btn = QPushButton("Remove")
        self.up_btn.setToolTip("Move the layer up (drawn later, on top)")
        self.down_btn.setToolTip("Move the layer down")
        self.remove_btn.setToolTip("Remove the layer (Delete)")
        self.up_btn.clicked.connect(lambda: self._move(+1))
        self.down_btn.clicked.connect(lambda: self._move(-1))
        self.remove_btn.clicked.connect(self.remove_selected)
        for b in (self.up_btn, self.down_btn, self.remove_btn):
            buttons.addWidget(b)
        lay.addLayout(buttons)

        # controls of the selected layer ----------------------------------------------------
        self.form_host = QWidget()
        form = QFormLayout(self.form_host)
        form.setContentsMargins(0, 4, 0, 0)
        self.opacity = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0.0, 1.0)
        self.opacity.setDecimals(2)
        self.opacity.valueChanged.connect(lambda v: self._set("opacity", v))
        form.addRow("Opacity", self.opacity)

        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.currentTextChanged.connect(lambda t: self._set("colormap", t))
        form.addRow("Colour map", self.colormap)
        self.preset = QComboBox()
        self.preset.addItem("Window preset…")
        for name, (w, l) in window_level_presets().items():
            self.preset.addItem(f"{name.replace('_', ' ')}  (W {w:.0f} / L {l:.0f})", name)
        self.preset.activated.connect(self._apply_preset)
        form.addRow("CT preset", self.preset)
        self.window = QDoubleSpinBox()
        self.level = QDoubleSpinBox()
        for sb in (self.window, self.level):
            sb.setRange(-1e7, 1e7)
            sb.setDecimals(1)
            sb.setKeyboardTracking(False)
        self.window.setMinimum(0.001)
        self.window.valueChanged.connect(lambda v: self._set("window", v))
        self.level.valueChanged.connect(lambda v: self._set("level", v))
        wl = QHBoxLayout()
        wl.addWidget(QLabel("W"))
        wl.addWidget(self.window)
        wl.addWidget(QLabel("L"))
        wl.addWidget(self.level)
        form.addRow("Window", wl)
        self.render_mode = QComboBox()
        for mode in RENDER_MODES:
            self.render_mode.addItem("off" if mode == "off" else volume_presets()[mode]["label"], mode)
        self.render_mode.currentIndexChanged.connect(
            lambda i: self._set("render_mode", self.render_mode.itemData(i)))
        form.addRow("3D rendering", self.render_mode)

        self.outline = QCheckBox("Outline only")
        self.outline.toggled.connect(lambda b: self._set("outline", b))
        self.show_3d = QCheckBox("Surfaces in 3D")
        self.show_3d.toggled.connect(lambda b: self._set("show_3d", b))
        row = QHBoxLayout()
        row.addWidget(self.outline)
        row.addWidget(self.show_3d)
        form.addRow("Labels", row)
        self.labels = QTableWidget(0, 4)
        self.labels.setHorizontalHeaderLabels(["", "Label", "Opacity", "Volume (mL)"])
        self.labels.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.labels.verticalHeader().setVisible(False)
        self.labels.setMinimumHeight(120)
        self.labels.itemChanged.connect(self._label_item_changed)
        self.labels.cellDoubleClicked.connect(self._label_color)
        form.addRow(self.labels)

        self.color_btn = QPushButton("Colour…")
        self.color_btn.clicked.connect(self._pick_color)
        self.show_texture = QCheckBox("Texture")
        self.show_texture.toggled.connect(lambda b: self._set("show_texture", b))
        row2 = QHBoxLayout()
        row2.addWidget(self.color_btn)
        row2.addWidget(self.show_texture)
        self._surface_label = QLabel("Surface")
        form.addRow(self._surface_label, row2)
        self.point_size = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.point_size.setRange(1.0, 20.0)
        self.point_size.valueChanged.connect(lambda v: self._set("point_size", v))
        form.addRow("Point size", self.point_size)
        # view sets: frustum size (world units) and photos on the frusta
        self.frustum_scale = QDoubleSpinBox()
        self.frustum_scale.setRange(0.0, 1e18)  # world units: scenes come in mm, m or km
        self.frustum_scale.setKeyboardTracking(False)
        self.frustum_scale.setToolTip("Depth of each camera's drawn image plane, in world units")
        self.frustum_scale.valueChanged.connect(lambda v: self._set("frustum_scale", v))
        self.show_thumbnails = QCheckBox("Photos")
        self.show_thumbnails.setToolTip("Each photo (shrunk) on its camera's frustum")
        self.show_thumbnails.toggled.connect(lambda b: self._set("show_thumbnails", b))
        # a slider too, on a log scale from a tenth to ten times the size the layer opened with:
        # dragging finds a size that reads well in any unit; the box holds the exact value
        self.frustum_slider = QSlider(Qt.Orientation.Horizontal)
        self.frustum_slider.setRange(-FRUSTUM_STEPS, FRUSTUM_STEPS)
        self.frustum_slider.setToolTip("Frustum size: from a tenth to ten times the default")
        self.frustum_slider.valueChanged.connect(self._frustum_slid)
        self._frustum_defaults: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> opening size
        row3 = QHBoxLayout()
        row3.addWidget(self.frustum_slider, 2)
        row3.addWidget(self.frustum_scale, 1)
        row3.addWidget(self.show_thumbnails)
        form.addRow("Frustum size", row3)
        # 4D images: the time frame shown (read in a worker by the window's FrameLoader)
        self.frame = QLabeledSlider(Qt.Orientation.Horizontal)
        self.frame.setToolTip("Time frame of a 4D image (frames are read from the file as you move)")
        self.frame.valueChanged.connect(lambda v: self._set("frame", int(v)))
        form.addRow("Frame", self.frame)
        # detection boxes: the lowest score drawn, and the scores as text
        self.min_score = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setDecimals(2)
        self.min_score.setToolTip("Boxes scoring below this are hidden")
        self.min_score.valueChanged.connect(lambda v: self._set("min_score", v))
        form.addRow("Min score", self.min_score)
        self.show_scores = QCheckBox("Scores as text")
        self.show_scores.toggled.connect(lambda b: self._set("show_scores", b))
        form.addRow("Boxes", self.show_scores)
        self.form = form
        lay.addWidget(self.form_host, 2)
        # as wide as an image's controls from the start: the rows that appeared with the first
        # image widened the dock, which resized the four GL views, and a resized QOpenGLWidget
        # draws at once, all four in one turn (a 0.3 s stall when the first scan opened)
        for w in (self.labels, self.point_size, self.frame, self.min_score, self.show_scores):
            self._show_row(w, False)
        for row in (5, 7, 9):
            self.form.setRowVisible(row, False)
        self.form_host.setMinimumWidth(self.form_host.sizeHint().width())

        scene.layer_inserted.connect(lambda *_: self.refresh())
        scene.layer_removed.connect(lambda *_: self.refresh())
        scene.layers_moved.connect(self.refresh)
        scene.selection.connect(lambda *_: self.refresh())
        self.refresh()

    # list ---------------------------------------------------------------------------------
    def _layers_top_first(self) -> list[Layer]:
        return list(reversed(list(self.scene)))

    def refresh(self) -> None:
        self._updating = True
        self.list.clear()
        sel_row = -1
        for row, layer in enumerate(self._layers_top_first()):
            item = QListWidgetItem(f"{_KIND_ICON.get(layer.kind, '')}  {layer.name}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
            item.setToolTip(f"{layer.kind}: {layer.source or 'generated'}")
            self.list.addItem(item)
            if layer is self.scene.selected:
                sel_row = row
        self.list.setCurrentRow(sel_row)
        self._updating = False
        self._bind(self.scene.selected)

    def _row_changed(self, row: int) -> None:
        if self._updating or row < 0:
            return
        layers = self._layers_top_first()
        if row < len(layers):
            self.scene.selected = layers[row]

    def _item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        layer = self._layers_top_first()[self.list.row(item)]
        layer.visible = item.checkState() == Qt.CheckState.Checked

    def _move(self, delta: int) -> None:
        layer = self.scene.selected
        if layer is not None:
            self.scene.move(layer, self.scene.index(layer) + delta)

    confirm_remove = None  # the window's "unsaved edits?" question: layer -> go on?

    def remove_selected(self) -> None:
        layer = self.scene.selected
        if layer is not None and (self.confirm_remove is None or self.confirm_remove(layer)):
            self.scene.remove(layer)

    # controls -------------------------------------------------------------------------------
    def _bind(self, layer: Layer | None) -> None:
        if self._bound is not None:
            try:
                self._bound.events.disconnect(self._sync)
                self._bound.events.table.disconnect(self._fill_labels)
            except Exception:
                pass
        self._bound = layer
        self.form_host.setEnabled(layer is not None)
        if layer is not None:
            layer.events.connect(self._sync)
            if isinstance(layer, LabelLayer):
                layer.events.table.connect(self._fill_labels)
        self._sync()
        if isinstance(layer, LabelLayer):
            self._fill_labels()

    def _show_row(self, widget: QWidget, on: bool) -> None:
        self.form.setRowVisible(widget, on)

    def _sync(self, *_: object) -> None:
        layer = self._bound
        self._updating = True
        try:
            is_img, is_lab = isinstance(layer, ImageLayer), isinstance(layer, LabelLayer)
            is_mesh, is_pts = isinstance(layer, MeshLayer), isinstance(layer, PointsLayer)
            for w in (self.colormap, self.preset, self.render_mode):
                self._show_row(w, is_img)
            self.form.setRowVisible(3, is_img)  # the W/L row
            self._show_row(self.labels, is_lab)
            self.form.setRowVisible(5, is_lab)
            is_vs = isinstance(layer, ViewSetLayer)
            self.form.setRowVisible(7, is_mesh or is_pts or is_vs)
            self.form.setRowVisible(9, is_vs)
            self._show_row(self.point_size, is_pts)
            self._show_row(self.frame, is_img and layer.n_frames > 1)
            self.show_texture.setVisible(is_mesh)
            is_box = isinstance(layer, BoxesLayer)
            self._show_row(self.min_score, is_box)
            self._show_row(self.show_scores, is_box)
            if layer is None:
                return
            self.opacity.setValue(layer.opacity)
            if is_img:
                self.colormap.setCurrentText(layer.colormap)
                self.window.setValue(layer.window)
                self.level.setValue(layer.level)
                self.render_mode.setCurrentIndex(RENDER_MODES.index(layer.render_mode))
                if layer.n_frames > 1:
                    self.frame.setRange(0, layer.n_frames - 1)
                    self.frame.setValue(layer.frame)
            if is_lab:
                self.outline.setChecked(layer.outline)
                self.show_3d.setChecked(layer.show_3d)
            if is_mesh:
                self.show_texture.setChecked(layer.show_texture)
                self.show_texture.setEnabled(layer.data.texture is not None)
            if is_pts:
                self.point_size.setValue(layer.point_size)
            if is_box:
                self.min_score.setValue(layer.min_score)
                self.show_scores.setChecked(layer.show_scores)
            self._surface_label.setText("Frusta" if is_vs else "Surface")
            if is_vs:
                digits = int(np.floor(np.log10(layer.frustum_scale)))
                self.frustum_scale.setDecimals(int(np.clip(3 - digits, 0, 9)))
                self.frustum_scale.setSingleStep(0.5 * 10.0 ** digits)
                self.frustum_scale.setValue(layer.frustum_scale)
                ratio = layer.frustum_scale / self._frustum_default(layer)
                self.frustum_slider.setValue(int(round(np.clip(np.log10(ratio), -1, 1) * FRUSTUM_STEPS)))
                self.show_thumbnails.setChecked(layer.show_thumbnails)
            item = self.list.currentItem()
            if item is not None:
                item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
        finally:
            self._updating = False

    def _frustum_default(self, layer) -> float:
        """The size the view set opened with (computed once per layer: it looks at every camera)."""
        if layer not in self._frustum_defaults:
            from ..model.layer import default_frustum_scale

            self._frustum_defaults[layer] = default_frustum_scale(layer.data)
        return self._frustum_defaults[layer]

    def _frustum_slid(self, pos: int) -> None:
        if self._updating or self._bound is None or not hasattr(type(self._bound), "frustum_scale"):
            return
        self._set("frustum_scale", self._frustum_default(self._bound) * 10.0 ** (pos / FRUSTUM_STEPS))
        self._updating = True
        try:
            self.frustum_scale.setValue(self._bound.frustum_scale)
        finally:
            self._updating = False

    def _set(self, name: str, value) -> None:
        if self._updating or self._bound is None or not hasattr(type(self._bound), name):
            return
        try:
            setattr(self._bound, name, value)
        except ValueError:
            self._sync()

    def _apply_preset(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name and isinstance(self._bound, ImageLayer):
            w, l = window_level_presets()[name]
            self._bound.window, self._bound.level = w, l
        self.preset.setCurrentIndex(0)

    def _pick_color(self) -> None:
        layer = self._bound
        if not isinstance(layer, (MeshLayer, PointsLayer, ViewSetLayer)):
            return
        c = QColorDialog.getColor(QColor.fromRgbF(*layer.color), self, "Layer colour")
        if c.isValid():
            layer.color = (c.redF(), c.greenF(), c.blueF())

    # label table ----------------------------------------------------------------------------
    def _fill_labels(self, *_: object) -> None:
        layer = self._bound
        if not isinstance(layer, LabelLayer):
            return
        self._updating = True
        try:
            volumes = layer.data.volumes_ml()
            rows = list(layer.data.table)
            self.labels.setRowCount(len(rows))
            for r, lab in enumerate(rows):
                sw = QTableWidgetItem()
                sw.setIcon(_swatch(lab.color))
                sw.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                sw.setCheckState(Qt.CheckState.Checked if lab.visible else Qt.CheckState.Unchecked)
                sw.setData(Qt.ItemDataRole.UserRole, lab.value)
                sw.setToolTip("visible; double-click to change the colour")
                self.labels.setItem(r, 0, sw)
                name = QTableWidgetItem(f"{lab.value}: {lab.name}")
                name.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.labels.setItem(r, 1, name)
                op = QTableWidgetItem(f"{lab.opacity:.2f}")
                self.labels.setItem(r, 2, op)
                ml = QTableWidgetItem(f"{volumes.get(lab.value, 0.0):.2f}")
                ml.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                ml.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.labels.setItem(r, 3, ml)
            self.labels.resizeColumnToContents(0)
        finally:
            self._updating = False

    def _label_item_changed(self, item: QTableWidgetItem) -> None:
        layer = self._bound
        if self._updating or not isinstance(layer, LabelLayer):
            return
        value = self.labels.item(item.row(), 0).data(Qt.ItemDataRole.UserRole)
        if item.column() == 0:
            layer.data.table.set(value, visible=item.checkState() == Qt.CheckState.Checked)
        elif item.column() == 2:
            try:
                layer.data.table.set(value, opacity=float(item.text()))
            except ValueError:
                self._fill_labels()

    def _label_color(self, row: int, column: int) -> None:
        layer = self._bound
        if column != 0 or not isinstance(layer, LabelLayer):
            return
        value = self.labels.item(row, 0).data(Qt.ItemDataRole.UserRole)
        c = QColorDialog.getColor(QColor.fromRgbF(*layer.data.table[value].color), self, "Label colour")
        if c.isValid():
            layer.data.table.set(value, color=(c.redF(), c.greenF(), c.blueF()))
