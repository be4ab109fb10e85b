"""The Detection tab: a detector plugin trained on the cases' boxes, run on a scene image: its boxes
become a new boxes layer (drawn in every view, coloured by score) and a table of score, centre and
size; clicking a row moves the linked cursor (all slices) to the box's centre and turns the 3D
camera to it. The table follows the selected boxes layer, so ground-truth boxes jump too."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDoubleSpinBox, QFormLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

from ...model import Boxes, BoxesLayer, ImageLayer, score_color
from .task import LesionTask

__all__ = ["DetectorTask"]


def _swatch(score: float) -> QIcon:
    pm = QPixmap(12, 12)
    pm.fill(QColor.fromRgbF(*score_color(score)))
    return QIcon(pm)


def _fmt(v) -> str:
    return ", ".join(f"{x:.1f}" for x in v)


class DetectorTask(LesionTask):
    """Train / run / save detectors; the Run tab lists the boxes and jumps to each."""

    kind = "detector"
    verb = "Detecting in"

    def _build_run(self, lay: QVBoxLayout, form: QFormLayout) -> None:
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setSingleStep(0.05)
        self.min_score.setValue(0.5)
        self.min_score.setToolTip("Boxes scoring below this are not reported")
        form.addRow("Min score", self.min_score)
        self.run_btn = QPushButton("Detect")
        self.run_btn.setObjectName("detect_button")
        self.run_btn.setToolTip("Find boxes in the image with the model; they become a new layer")
        self.run_btn.clicked.connect(self.run)
        lay.addWidget(self.run_btn)
        self.result_label = QLabel("The boxes found appear here after a run; click one to go to it.")
        self.result_label.setObjectName("detect_result")
        self.result_label.setWordWrap(True)
        lay.addWidget(self.result_label)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("boxes_table")
        self.table.setHorizontalHeaderLabels(["Score", "Centre R, A, S (mm)", "Size (mm)"])
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.cellClicked.connect(lambda row, _col: self.jump(row))
        lay.addWidget(self.table, 1)
        self.boxes: BoxesLayer | None = None  # the layer the table lists
        self._rows: list[int] = []  # table row -> box index
        self.scene.selection.connect(self._selected)
        self.scene.layer_removed.connect(self._removed)
        self._selected(self.scene.selected)  # a panel built over a scene with boxes selected lists them

    def _training_cases(self) -> list:
        """Every case with its boxes (``[]`` for none): a detector learns from nothing else."""
        for i, r in enumerate(self.cases.rows):
            if r.boxes is None:
                raise ValueError(f"case {i + 1} ({r.name}) has no 'boxes'; a detector learns from boxes "
                                 "(give [] for a case without any)")
        return super()._training_cases()

    def _run_options(self) -> dict:
        return {"min_score": float(self.min_score.value())}

    def _run_work(self, plugin, model, volume, options: dict) -> Any:
        return plugin.detect(model, volume, options["min_score"])

    def _show(self, image: ImageLayer, found: Any) -> None:
        boxes = Boxes.from_list([{"box": list(d["box"]), "score": float(d["score"]), "label": str(d.get("label", ""))}
                                 for d in found], name=f"{image.name} · {self.model.plugin}")
        boxes.meta.update(prediction=True, source_image=image.source)
        if not len(boxes):
            self.list_boxes(None)
            self.result_label.setText(f"No box in {image.name} scores {self.min_score.value():.2f} or more.")
            self.bar.finish(f"Nothing found in {image.name}.")
            return
        layer = BoxesLayer(boxes)
        self.scene.add(layer)  # selects it: the table lists it (_selected)
        self.list_boxes(layer)
        self.result_label.setText(f"{len(boxes)} box{'es' if len(boxes) > 1 else ''} in {image.name} "
                                  f"(layer “{layer.name}”); click one to go to it.")
        self.bar.finish(f"Found {len(boxes)} in {image.name}.")

    # the table --------------------------------------------------------------------------------------
    def list_boxes(self, layer: BoxesLayer | None) -> None:
        """List ``layer``'s boxes, best score first (None: empty the table)."""
        if self.boxes is not None and self.boxes is not layer:
            self.boxes.events.data.disconnect(self._refill)
        if layer is not None and layer is not self.boxes:
            layer.events.data.connect(self._refill)
        self.boxes = layer
        self._refill()

    def _refill(self, *_: object) -> None:
        layer = self.boxes
        data = layer.data if layer is not None else Boxes()
        self._rows = [int(i) for i in np.argsort(-data.scores, kind="stable")]
        self.table.setRowCount(len(self._rows))
        for r, i in enumerate(self._rows):
            score = QTableWidgetItem(f"{data.scores[i]:.2f}" + (f"  {data.labels[i]}" if data.labels[i] else ""))
            score.setIcon(_swatch(data.scores[i]))
            self.table.setItem(r, 0, score)
            self.table.setItem(r, 1, QTableWidgetItem(_fmt(data.centers[i])))
            self.table.setItem(r, 2, QTableWidgetItem(" × ".join(f"{s:.1f}" for s in data.sizes[i])))

    def jump(self, row: int) -> None:
        """Go to the box of table row ``row``: the cursor (every slice view) to its centre, the 3D
        camera turned to it, the box drawn thicker."""
        if self.boxes is None or not 0 <= row < len(self._rows):
            return
        i = self._rows[row]
        data = self.boxes.data
        self.boxes.selected_box = i
        self.scene.cursor = data.centers[i]
        if self.view3d is not None:
            from ...render.box_visuals import look_at

            look_at(self.view3d, data.centers[i], float(np.max(data.sizes[i])))
        self.table.selectRow(row)

    def _selected(self, layer) -> None:
        if isinstance(layer, BoxesLayer) and layer is not self.boxes:
            self.list_boxes(layer)

    def _removed(self, index: int, layer) -> None:
        if layer is self.boxes:
            self.list_boxes(None)
