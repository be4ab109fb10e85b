"""The Classification tab: a classifier plugin trained on the cases, run on a scene image: the
label and every class's probability, and its saliency map (Grad-CAM or the method's own heat map,
on the image's exact grid) as a heat overlay: a new image layer, never a change to the input."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QFormLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

from ...model import ImageLayer
from ...model.errors import LoadError
from .task import LesionTask

__all__ = ["ClassifierTask", "saliency_layer"]

SALIENCY_OPACITY = 0.6


def saliency_layer(saliency, image: ImageLayer) -> ImageLayer:
    """The saliency map as a heat overlay over ``image``: low values see-through (the ``heat``
    colour map), the window spanning the map's range."""
    if tuple(saliency.shape) != tuple(image.data.shape) or not np.allclose(saliency.affine, image.data.affine,
                                                                          atol=1e-4):
        raise LoadError(image.source or image.name, "the classifier's saliency map is not on the image's grid")
    arr = np.asarray(saliency.array, np.float32)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    saliency.meta["saliency"] = True
    saliency.meta.setdefault("source_image", image.source)
    return ImageLayer(saliency, name=f"{image.name} · saliency", colormap="heat", opacity=SALIENCY_OPACITY,
                      window=max(hi - lo, 1e-6), level=(hi + lo) / 2.0)


class ClassifierTask(LesionTask):
    """Train / run / save classifiers; the Run tab shows the label, the probabilities and the map."""

    kind = "classifier"
    verb = "Classifying"

    def _build_run(self, lay: QVBoxLayout, form: QFormLayout) -> None:
        self.saliency_box = QCheckBox("Saliency map as a heat overlay")
        self.saliency_box.setToolTip("Where the decision comes from, over the image (a new layer)")
        self.saliency_box.setChecked(True)
        form.addRow("", self.saliency_box)
        self.run_btn = QPushButton("Classify")
        self.run_btn.setObjectName("classify_button")
        self.run_btn.setToolTip("Classify the image with the model")
        self.run_btn.clicked.connect(self.run)
        lay.addWidget(self.run_btn)
        self.result_label = QLabel("The label and the probabilities appear here after a run.")
        self.result_label.setObjectName("classify_result")
        self.result_label.setWordWrap(True)
        lay.addWidget(self.result_label)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Class", "Probability"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(160)
        lay.addWidget(self.table)
        lay.addStretch(1)
        self.result: dict | None = None
        self.saliency: ImageLayer | None = None

    def _run_options(self) -> dict:
        return {"saliency": self.saliency_box.isChecked()}

    def _run_work(self, plugin, model, volume, options: dict) -> Any:
        result = plugin.classify(model, volume)
        sal = plugin.saliency(model, volume) if options["saliency"] else None
        return result, sal

    def _show(self, image: ImageLayer, result: Any) -> None:
        found, sal = result
        self.result = found
        probs = dict(sorted(found["probabilities"].items(), key=lambda kv: -kv[1]))
        self.result_label.setText(f"{image.name}: <b>{found['label']}</b> (p = {probs.get(found['label'], 0):.2f})")
        self.table.setRowCount(len(probs))
        for r, (name, p) in enumerate(probs.items()):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            cell = QTableWidgetItem(f"{p:.3f}")
            cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, 1, cell)
        if sal is not None and image in list(self.scene):
            try:
                layer = saliency_layer(sal, image)
            except LoadError as exc:
                self.error(str(exc))
            else:
                self.scene.add(layer)
                self.saliency = layer
        elif sal is None and self.saliency_box.isChecked():
            self.result_label.setText(self.result_label.text() + f" · {self.model.plugin} makes no saliency map")
        self.bar.finish(f"Classified {image.name}: {found['label']}.")
