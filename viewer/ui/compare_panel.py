"""Compare two label layers: per-label Dice, HD95 and volume difference, and a confusion overlay
(false positives and false negatives in their own colours) for a reference against a prediction."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QFormLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from ..analysis.metrics import CONFUSION_TABLE, check_same_grid, confusion_map, label_stats
from ..model import LabelLayer, LabelMap, Scene, layer_for
from ..model.labels import Label, LabelTable

__all__ = ["ComparePanel"]

COLUMNS = ("label", "Dice", "HD95 (mm)", "prediction (mL)", "reference (mL)", "difference (mL)")


class ComparePanel(QWidget):
    """Pick a reference and a prediction among the label layers; compare in a worker."""

    def __init__(self, scene: Scene, jobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene, self.jobs = scene, jobs
        self.result: dict | None = None
        self.overlay: LabelLayer | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.ref_box, self.pred_box = QComboBox(), QComboBox()
        form.addRow("Reference", self.ref_box)
        form.addRow("Prediction", self.pred_box)
        self.overlay_box = QCheckBox("Add the confusion overlay (false positives red, false negatives blue)")
        self.overlay_box.setChecked(True)
        form.addRow(self.overlay_box)
        lay.addLayout(form)
        self.compare_btn = QPushButton("Compare")
        self.compare_btn.clicked.connect(self.compare)
        lay.addWidget(self.compare_btn)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.table, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        scene.layer_inserted.connect(lambda *_: self._fill())
        scene.layer_removed.connect(lambda *_: self._fill())
        self._fill()

    def _layers(self) -> list[LabelLayer]:
        return [l for l in self.scene if isinstance(l, LabelLayer) and l is not self.overlay]

    def _fill(self) -> None:
        layers = self._layers()
        for box, pick in ((self.ref_box, 0), (self.pred_box, 1)):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems([l.name for l in layers])
            i = box.findText(current)
            box.setCurrentIndex(i if i >= 0 else min(pick, len(layers) - 1))
            box.blockSignals(False)
        self.compare_btn.setEnabled(len(layers) >= 2)

    def choose(self, reference: LabelLayer, prediction: LabelLayer) -> None:
        layers = self._layers()
        self.ref_box.setCurrentIndex(layers.index(reference))
        self.pred_box.setCurrentIndex(layers.index(prediction))

    def compare(self) -> None:
        layers = self._layers()
        ri, pi = self.ref_box.currentIndex(), self.pred_box.currentIndex()
        if not (0 <= ri < len(layers) and 0 <= pi < len(layers)) or ri == pi:
            self.status.setText("Choose two different label layers.")
            return
        ref, pred = layers[ri], layers[pi]
        try:
            check_same_grid(pred.data, ref.data)
        except ValueError as exc:
            self.status.setText(f"Cannot compare: {exc}")
            return
        want_overlay = self.overlay_box.isChecked()

        def work(_p):
            stats = label_stats(pred.data, ref.data)
            ref_counts = ref.data.voxel_counts()
            ml = abs(float(np.linalg.det(np.asarray(ref.data.affine)[:3, :3]))) / 1000.0
            for v, row in stats.items():
                row["reference_ml"] = ref_counts.get(int(v), 0) * ml
            conf = confusion_map(pred.data.array, ref.data.array) if want_overlay else None
            return stats, conf

        self.status.setText("Comparing…")
        self.jobs.submit(work, f"Comparing {pred.name} with {ref.name}",
                         on_done=lambda r: self._show(ref, pred, *r),
                         on_error=lambda m: self.status.setText(f"Failed: {m}"))

    def _show(self, ref: LabelLayer, pred: LabelLayer, stats: dict, conf: np.ndarray | None) -> None:
        self.result = stats
        self.table.setRowCount(len(stats))
        for row, (v, s) in enumerate(stats.items()):
            hd = s.get("hd95_mm")
            cells = (f"{v}: {s['name']}", _num(s.get("dice"), 3), _num(hd, 2), _num(s["volume_ml"], 3),
                     _num(s["reference_ml"], 3), _num(s["volume_ml"] - s["reference_ml"], 3, signed=True))
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        dices = [s["dice"] for s in stats.values() if s.get("dice") is not None and math.isfinite(s["dice"])]
        self.status.setText(f"{pred.name} against {ref.name}: mean Dice {np.mean(dices):.3f} over {len(dices)} labels"
                            if dices else "No labels to compare.")
        if conf is not None:
            if self.overlay is not None and self.overlay in self.scene:
                self.scene.remove(self.overlay)
            table = LabelTable([Label(v, n, c, True, 0.3 if v == 1 else 1.0) for v, n, c in CONFUSION_TABLE])
            lm = LabelMap(conf, np.asarray(pred.data.affine), table, name=f"{pred.name} vs {ref.name}")
            self.overlay = layer_for(lm)
            self.scene.add(self.overlay)


def _num(x, digits: int, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
