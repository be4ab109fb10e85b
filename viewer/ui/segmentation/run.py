"""The Segmentation panel's Run tab: segment a scene image with the panel's model, score it against
a reference label layer, show the uncertainty map, write masks.

A prediction always lands in new layers (labels, and an uncertainty heat map); no existing layer
is ever written to.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QFormLayout, QHeaderView, QLabel, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from ...io import save_nifti
from ...model import ImageLayer, LabelLayer, LabelMap
from ...model.errors import LoadError
from .files import same_grid, volume_stem
from .pairs import label_candidates, scene_images

__all__ = ["RunTab", "label_stats"]


def _swatch(rgb) -> QIcon:
    pm = QPixmap(12, 12)
    pm.fill(QColor.fromRgbF(*rgb))
    return QIcon(pm)


def _config_fields(host, model) -> set[str]:
    """The setting names of the method that made ``model`` (none if it is gone)."""
    try:
        config = host.chooser.plugin_named(model.plugin).Config
        return {f.name for f in dataclasses.fields(config)}
    except Exception:  # PluginError, or a third-party Config that is not a dataclass
        return set()


def label_stats(labels: LabelMap, reference: LabelMap | None) -> dict[int, dict]:
    """Per label value: name, colour, volume (mL), and with a reference on the same grid its
    volume and the Dice of the two (in a worker: Dice runs on torch)."""
    values = [lab.value for lab in labels.table]
    ml = labels.volumes_ml()
    stats = {v: {"name": labels.table[v].name, "color": labels.table[v].color, "ml": ml.get(v, 0.0)} for v in values}
    if reference is not None and same_grid(reference, labels):
        from ...analysis.metrics import dice_per_label

        ref_ml = reference.volumes_ml()
        dice = dice_per_label(np.asarray(labels.array), np.asarray(reference.array), values)
        for v in values:
            stats[v].update(ref_ml=ref_ml.get(v, 0.0), dice=dice[v])
    return stats


class RunTab(QWidget):
    """Image, reference, TTA, Run, the per-label results and "Save mask…". ``host`` is the
    :class:`~viewer.ui.segmentation.panel.SegmentationPanel` (its model, bar and messages)."""

    def __init__(self, host, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host, self.scene, self.jobs = host, host.scene, host.jobs
        self.prediction: LabelLayer | None = None
        self.uncertainty: ImageLayer | None = None
        self.results: dict[int, dict] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 6, 4, 4)
        form = QFormLayout()
        self.image_box = QComboBox()
        self.image_box.setToolTip("The scan to segment")
        self.image_box.currentIndexChanged.connect(lambda *_: self.fill_references())
        form.addRow("Image", self.image_box)
        self.reference_box = QComboBox()
        self.reference_box.setToolTip("A label layer on the image's grid to score the prediction against (Dice)")
        form.addRow("Reference", self.reference_box)
        self.tta_box = QCheckBox("Flip TTA and uncertainty map")
        self.tta_box.setToolTip("Average the prediction over flips (4× slower); its entropy is the uncertainty")
        self.tta_box.setChecked(True)
        form.addRow("", self.tta_box)
        self.crf_box = QCheckBox("Clean up with a 3D fully connected CRF")
        self.crf_box.setToolTip("Mean-field CRF over the network's probabilities: removes speckle, smooths "
                                "borders along image edges (about 2x the inference time; can erase tiny structures)")
        self.crf_box.setVisible(False)  # only for a model whose method has the setting
        self._crf_for = None  # the model the box was last set from
        form.addRow("", self.crf_box)
        lay.addLayout(form)
        self.run_btn = QPushButton("Run")
        self.run_btn.setObjectName("run_button")
        self.run_btn.setToolTip("Segment the image with the model; the result is a new label layer")
        self.run_btn.clicked.connect(self.run)
        lay.addWidget(self.run_btn)
        self.result_label = QLabel("Per-label volumes (and Dice against the reference) appear here after a run.")
        self.result_label.setWordWrap(True)
        self.result_label.setStyleSheet("color: palette(mid);")
        lay.addWidget(self.result_label)
        lay.addWidget(self._build_table())
        self.unc_box = QCheckBox("Show uncertainty map")
        self.unc_box.setToolTip("Entropy of the flip-averaged softmax as a heat overlay (bright = unsure)")
        self.unc_box.setEnabled(False)
        self.unc_box.toggled.connect(self._toggle_uncertainty)
        lay.addWidget(self.unc_box)
        self.save_mask_btn = QPushButton("Save mask…")
        self.save_mask_btn.setToolTip("Write the prediction (or the selected label layer) as NIfTI on its image's grid")
        self.save_mask_btn.clicked.connect(self._save_mask_dialog)
        lay.addWidget(self.save_mask_btn)
        lay.addStretch(1)
        self.scene.layer_removed.connect(self._layer_removed)

    def _build_table(self) -> QTableWidget:
        self.result_table = QTableWidget(0, 4)
        self.result_table.setHorizontalHeaderLabels(["Label", "Volume (mL)", "Reference (mL)", "Dice"])
        hh = self.result_table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.result_table.verticalHeader().setVisible(False)
        self.result_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.result_table.setMinimumHeight(90)
        self.result_table.setMaximumHeight(190)
        return self.result_table

    # the scene -> the boxes --------------------------------------------------------------------
    def fill_images(self) -> None:
        current = self.image_box.currentData()
        self.image_box.blockSignals(True)
        self.image_box.clear()
        for img in scene_images(self.scene):
            self.image_box.addItem(img.name, img)
        idx = self.image_box.findData(current) if current is not None else -1
        self.image_box.setCurrentIndex(idx if idx >= 0 else 0)
        self.image_box.blockSignals(False)
        self.fill_references()

    def fill_references(self) -> None:
        current = self.reference_box.currentData()
        image = self.image_box.currentData()
        self.reference_box.clear()
        self.reference_box.addItem("(none)", None)
        if image is not None:
            for lab in label_candidates(self.scene, image):
                self.reference_box.addItem(lab.name, lab)
        idx = self.reference_box.findData(current) if current is not None else -1
        if idx < 0 and self.reference_box.count() > 1 and not self.reference_box.itemData(1).data.meta.get("prediction"):
            idx = 1  # a manual label layer on the grid is the natural reference
        self.reference_box.setCurrentIndex(max(idx, 0))
        self.update_buttons(self.host.job is not None)

    def update_buttons(self, busy: bool) -> None:
        self.run_btn.setEnabled(not busy and self.host.model is not None and self.image_box.currentData() is not None)
        model = self.host.model
        if model is not self._crf_for:  # a new model: the box shows its own setting
            self._crf_for = model
            has = model is not None and "crf" in _config_fields(self.host, model)
            self.crf_box.setVisible(has)
            self.crf_box.setChecked(bool(has and dict(getattr(model, "config", {}) or {}).get("crf", False)))
        self.save_mask_btn.setEnabled(bool(self.scene.of_kind(LabelLayer)))

    def _layer_removed(self, index: int, layer) -> None:
        if layer is self.uncertainty:
            self.uncertainty = None
            self.unc_box.setEnabled(False)
        if layer is self.prediction:
            self.prediction = None

    # prediction ---------------------------------------------------------------------------------
    def run(self) -> None:
        image, host = self.image_box.currentData(), self.host
        if host.model is None or image is None or host.job is not None:
            return
        model, ref, tta = host.model, self.reference_box.currentData(), self.tta_box.isChecked()
        # passed only when the method has the setting (the contract: callers pass settings they have)
        extra = {"settings": {"crf": self.crf_box.isChecked()}} if not self.crf_box.isHidden() else {}
        try:
            plugin = host.chooser.plugin_named(model.plugin)
        except Exception as exc:  # PluginError: the plugin that made the model is gone
            host.error(str(exc))
            return

        def work(progress):
            progress.update(1, 1000, "")  # the clock's start marker (see ProgressClock)
            from .panel import warm_up

            warm_up()
            problem = plugin.check_volume(model, image.data)
            if problem:
                raise LoadError(image.source or image.name, problem)
            labels, unc = plugin.predict(model, image.data, progress, tta=tta, **extra)
            stats = label_stats(labels, ref.data if ref is not None else None)
            rng = None if unc is None else (float(np.nanmin(unc.array)), float(np.nanmax(unc.array)))
            return labels, unc, stats, rng

        host.bar.start(self.jobs, work, f"Segmenting {image.name}", lambda r: self._predicted(image, ref, r),
                       failed=host.error, cancelled=lambda: host.bar.status.setText("Cancelled."), training=False)

    def _predicted(self, image: ImageLayer, ref, result: Any) -> None:
        labels, unc, stats, rng = result
        plugin_name = getattr(self.host.model, "plugin", None) or "prediction"
        name = f"{image.name} · {plugin_name}"
        labels.name = name
        labels.meta.update(prediction=True, source_image=image.source)
        unc_layer = None
        if unc is not None and image in list(self.scene):
            unc.meta["uncertainty"] = unc.meta.get("uncertainty", True)
            lo, hi = rng
            unc_layer = ImageLayer(unc, name=f"{image.name} · uncertainty", colormap="heat", opacity=0.8,
                                   window=max(hi - lo, 1e-6), level=(hi + lo) / 2.0)
            self.scene.add(unc_layer)
        layer = LabelLayer(labels, name=name)
        self.scene.add(layer)  # a new layer, always: nothing the user drew is ever replaced
        self.prediction, self.uncertainty = layer, unc_layer
        if unc_layer is not None:
            unc_layer.events.visible.connect(self._uncertainty_visible)
        self.unc_box.blockSignals(True)
        self.unc_box.setChecked(unc_layer is not None)
        self.unc_box.setEnabled(unc_layer is not None)
        self.unc_box.blockSignals(False)
        self.results = stats
        self._fill_results(stats, ref)
        self.result_label.setStyleSheet("")
        self.result_label.setText(f"Result: layer “{layer.name}”" + (f", Dice against “{ref.name}”" if ref else ""))
        self.host.bar.finish(f"Segmented {image.name}.")

    def _fill_results(self, stats: dict, ref) -> None:
        self.result_table.setRowCount(len(stats))
        self.result_table.setColumnHidden(2, ref is None)
        self.result_table.setColumnHidden(3, ref is None)
        for r, (v, s) in enumerate(sorted(stats.items())):
            item = QTableWidgetItem(f"{v}: {s['name']}")
            item.setIcon(_swatch(s["color"]))
            self.result_table.setItem(r, 0, item)
            for c, key, fmt in ((1, "ml", "{:.2f}"), (2, "ref_ml", "{:.2f}"), (3, "dice", "{:.3f}")):
                cell = QTableWidgetItem(fmt.format(s[key]) if key in s else "")
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.result_table.setItem(r, c, cell)

    def _toggle_uncertainty(self, on: bool) -> None:
        if self.uncertainty is not None:
            self.uncertainty.visible = on

    def _uncertainty_visible(self, on: bool) -> None:
        self.unc_box.blockSignals(True)
        self.unc_box.setChecked(bool(on))
        self.unc_box.blockSignals(False)

    # masks -----------------------------------------------------------------------------------------
    def mask_layer(self) -> LabelLayer | None:
        """What "Save mask…" writes: the selected label layer, else the latest prediction."""
        sel = self.scene.selected
        return sel if isinstance(sel, LabelLayer) else self.prediction

    def _save_mask_dialog(self) -> None:
        layer = self.mask_layer()
        if layer is None:
            self.host.error("No mask to save: run a model, or select a label layer.")
            return
        src = layer.data.meta.get("source_image") or layer.source
        folder = Path(src).parent if src and Path(src).exists() else Path.home()
        stem = volume_stem(Path(src))[0] if src and Path(src).exists() else layer.name.split(" · ")[0]
        # never X_seg by default: beside a scan that is usually the manual segmentation
        tag = layer.data.meta.get("plugin") or ("prediction" if layer.data.meta.get("prediction") else "labels")
        default = str(folder / f"{stem}_{tag}.nii.gz")
        path, _ = QFileDialog.getSaveFileName(self, f"Save mask “{layer.name}”", default, "NIfTI (*.nii.gz *.nii)")
        if path:
            if not path.endswith((".nii", ".nii.gz")):
                path += ".nii.gz"
            self.save_mask(path, layer)

    def save_mask(self, path: str, layer: LabelLayer | None = None) -> None:
        """Write ``layer`` (default :meth:`mask_layer`) as NIfTI, in a job; inputs are protected."""
        layer = layer or self.mask_layer()
        if layer is None:
            self.host.error("No mask to save: run a model, or select a label layer.")
            return
        data: LabelMap = layer.data
        protect = [l.source for l in self.scene if l.source and not str(l.source).startswith("demo:")]
        protect += self.host.pairs.protected_files()

        def done(p) -> None:
            self.host.bar.status.setText(f"Saved {Path(p).name}.")

        self.jobs.submit(lambda _p: save_nifti(data, path, protect=protect), f"Saving {Path(path).name}",
                         on_done=done, on_error=self.host.error)
