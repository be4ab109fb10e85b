"""The Segmentation panel: train a segmenter on image/label pairs, run it, keep its results.

Everything heavy runs as a job (``JobRunner``): loading a folder of pairs, training, prediction,
Dice, saving and loading checkpoints, writing masks. The UI thread only builds widgets, plots
points and adds layers. A prediction always lands in new layers (labels, and an uncertainty heat
map); no existing layer is ever written to.

Training pairs come from the scene (every image with a label layer on its grid) and from
folders of files named ``X.nii.gz`` + ``X_seg`` / ``X_label`` / ``X_labels`` / ``X_mask``
(loaded in a job, not into the scene). A training run writes its best checkpoint to a temporary
folder as it goes, so a cancelled run still leaves a usable model; "Save model…" copies that
folder where the user wants it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView,
    QLabel, QMessageBox, QProgressBar, QPushButton, QScrollArea, QTableWidget, QTableWidgetItem,
    QTabWidget, QVBoxLayout, QWidget,
)

from ..io import VOLUME_SUFFIXES, save_nifti
from ..model import ImageLayer, LabelLayer, LabelMap, Scene
from ..model.errors import LoadError
from ..plugins import Case, PluginError, discover, get_plugin, load_case, plugin_for_checkpoint
from .plugin_form import PluginForm
from .training_widgets import format_left, warm_imports

__all__ = ["SegmentationPanel", "pairs_in_folder", "copy_checkpoint", "same_grid", "format_left",
           "warm_up"]

LABEL_SUFFIXES = ("_seg", "_label", "_labels", "_mask")


# helpers without Qt ---------------------------------------------------------------------------
def same_grid(a, b, atol: float = 1e-3) -> bool:
    """Two volumes/label maps on one voxel grid: equal shape, affines equal within ``atol`` mm."""
    return tuple(a.shape) == tuple(b.shape) and np.allclose(a.affine, b.affine, atol=atol)


def _stem(path: Path) -> tuple[str, str]:
    name = path.name
    for suf in VOLUME_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    return path.stem, path.suffix


def pairs_in_folder(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, labels) files of a folder: ``X.nii.gz`` with ``X_seg`` / ``X_label(s)`` / ``X_mask``
    in any volume format, sorted by name. Files that are nobody's partner are left out."""
    files = {}
    for p in sorted(Path(folder).iterdir()):
        stem, suf = _stem(p)
        if p.is_file() and suf.lower() in VOLUME_SUFFIXES:
            files.setdefault(stem, p)
    pairs = []
    for stem, path in files.items():
        if any(stem.endswith(s) and stem[: -len(s)] in files for s in LABEL_SUFFIXES):
            continue  # a label file of another stem
        for s in LABEL_SUFFIXES:
            if stem + s in files:
                pairs.append((path, files[stem + s]))
                break
    return pairs


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint folder to ``dst`` atomically (a temporary sibling renamed into place).

    An existing checkpoint at ``dst`` is replaced; any other non-empty folder is refused.
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if dst == src or src in dst.parents:
        raise LoadError(dst, "choose a folder outside the checkpoint being saved")
    if dst.exists() and not dst.is_dir():
        raise LoadError(dst, "exists and is not a folder")
    occupied = dst.is_dir() and any(dst.iterdir())
    if occupied and not (dst / "config.json").is_file():
        raise LoadError(dst, "a folder with other files in it: choose a new or empty folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = dst.parent / f".{dst.name}.part-{tag}", dst.parent / f".{dst.name}.old-{tag}"
    try:
        shutil.copytree(src, tmp)
        if occupied:
            os.replace(dst, old)
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dst


def _dice(pred: np.ndarray, ref: np.ndarray, values: list[int]) -> dict[int, float]:
    try:
        from ..analysis.metrics import dice_per_label
    except ImportError:  # the metrics module is optional: plain counting gives the same numbers
        out = {}
        for v in values:
            a, b = pred == v, ref == v
            s = int(a.sum()) + int(b.sum())
            out[v] = 1.0 if s == 0 else 2.0 * int(np.count_nonzero(a & b)) / s
        return out
    return dice_per_label(pred, ref, values)


def _canonical_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along world R, A, S of the voxel axis that runs most along each."""
    m = np.asarray(affine, float)[:3, :3]
    return np.array([np.linalg.norm(m[:, int(np.argmax(np.abs(m[w])))]) for w in range(3)])


_WARM = {"done": False}
#: what a segmenter imports on its first call (torch's optimizers pull in torch.distributed)
WARM_MODULES = ("torch", "monai.losses", "monai.transforms", "monai.inferers", "monai.networks.nets",
                "plugins._seg.train", "plugins._seg.predict")


def warm_up() -> None:
    """Import torch, MONAI and the segmenters' code (:func:`warm_imports`: in a worker thread,
    the collector paused, then everything frozen out of it). Idempotent and thread-safe."""
    warm_imports(WARM_MODULES)
    _WARM["done"] = True


def _preview_reference(cases: list) -> dict:
    """For the training preview (in a worker): class colours, the network grid's spacing, and
    per case the canonical axial slice through most of its labels (as class indices).

    The network's preview arrays are class indices in RAS-canonical voxel order at the
    training spacing (``plugins._seg``): class c is the c-th label value of the cases, sorted.
    """
    from plugins._seg.data import label_table
    from plugins._seg.preprocess import to_canonical

    rows, to_class = label_table(cases)
    lut = np.zeros(max(to_class, default=0) + 1, np.uint8)
    for value, c in to_class.items():
        lut[value] = c
    out: dict[str, Any] = {
        "colors": np.array([(0.0, 0.0, 0.0)] + [tuple(r["color"]) for r in rows], float),
        "spacing": np.median([_canonical_spacing(c.image.affine) for c in cases], axis=0), "cases": {}}
    for c in cases:
        lab, aff, _ = to_canonical(np.asarray(c.labels.array), c.labels.affine)
        per_k = np.count_nonzero(lab, axis=(0, 1))
        k = int(np.argmax(per_k)) if per_k.any() else lab.shape[2] // 2
        sl = np.clip(np.asarray(lab[:, :, k]).astype(np.int64), 0, len(lut) - 1)
        out["cases"][c.name] = {"kfrac": (k + 0.5) / lab.shape[2], "slice": lut[sl],
                                "spacing": np.linalg.norm(aff[:3, :2], axis=0)}
    return out


def _slices_pixmap(images: list, colors: np.ndarray, box: int = 150, gap: int = 6) -> QPixmap:
    """Class-index slices (I, J) in RAS-canonical order, side by side on one scale (px per mm)
    so that equal millimetres look equal: patient's right on the left, anterior up."""
    from PySide6.QtGui import QPainter

    sizes = [(a.shape[0] * float(sp[0]), a.shape[1] * float(sp[1])) for a, sp in images]
    scale = box / max(max(w, h) for w, h in sizes)
    pixmaps = []
    for (a, _), (w_mm, h_mm) in zip(images, sizes):
        sl = np.ascontiguousarray(np.asarray(a).T[::-1, ::-1])
        rgb = np.ascontiguousarray((colors[np.clip(sl, 0, len(colors) - 1)] * 255).astype(np.uint8))
        h, w = sl.shape
        img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        pixmaps.append(QPixmap.fromImage(img).scaled(
            max(1, int(w_mm * scale)), max(1, int(h_mm * scale)),
            Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.FastTransformation))
    out = QPixmap(sum(p.width() for p in pixmaps) + gap * (len(pixmaps) - 1), max(p.height() for p in pixmaps))
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    x = 0
    for p in pixmaps:
        painter.drawPixmap(x, 0, p)
        x += p.width() + gap
    painter.end()
    return out


def _swatch(rgb) -> QIcon:
    pm = QPixmap(12, 12)
    pm.fill(QColor.fromRgbF(*rgb))
    return QIcon(pm)


# the panel ------------------------------------------------------------------------------------
class SegmentationPanel(QWidget):
    """Train / run / save segmenters on the scene's volumes. Lives in the window's right dock."""

    def __init__(self, scene: Scene, jobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene, self.jobs = scene, jobs
        self.plugins = {n: p for n, p in discover().items() if getattr(p, "kind", "") == "segmenter"}
        self.model: Any = None  # the trained or loaded model in memory
        self.model_dir: str | None = None  # its checkpoint folder
        self.job = None  # the panel's training or prediction job
        self.job_kind = ""
        self.train_dir: str | None = None  # checkpoint folder of the running training
        self.folder_pairs: list[dict] = []  # {"case": Case, "image": path, "label": path}
        self._unticked: set = set()  # scene image layers left out of training
        self._label_choice: dict = {}  # scene image layer -> chosen label layer
        self.prediction: LabelLayer | None = None
        self.uncertainty: ImageLayer | None = None
        self.results: dict[str, dict] = {}
        self.last_error: str | None = None
        self._curves: dict[str, tuple[list[float], list[float]]] = {"loss": ([], []), "val_dice": ([], [])}
        self._preview_info: dict = {}
        self._clock: tuple[float, float] | None = None  # (time, fraction) at the first real step
        self._frac: tuple[float, float] = (0.0, 0.0)  # (time, fraction) of the latest report
        self._message = ""
        self._show_pending = False
        self._curves_dirty = False
        self._pending_preview: Any = None
        self._started = time.monotonic()
        self._trained_dir: str | None = None  # checkpoint folder of the latest finished training
        self._rows: list[dict] = []
        self._updating = False
        self._warming = False
        self._build()
        scene.layer_inserted.connect(lambda *_: self._scene_changed())
        scene.layer_removed.connect(self._layer_removed)
        self._scene_changed()
        self._plugin_changed()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not _WARM["done"] and not self._warming:
            # torch's imports in the background, before anyone presses Train; a plain thread,
            # not a job: nothing to show, cancel or report
            self._warming = True
            threading.Thread(target=warm_up, name="lucid3d-warm-up", daemon=True).start()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name): the dock's width when first shown
        return QSize(390, 760)

    # layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        head = QFormLayout()
        self.plugin_box = QComboBox()
        for name, plugin in sorted(self.plugins.items()):
            self.plugin_box.addItem(name, name)
            self.plugin_box.setItemData(self.plugin_box.count() - 1, plugin.description, Qt.ItemDataRole.ToolTipRole)
        self.plugin_box.currentIndexChanged.connect(self._plugin_changed)
        head.addRow("Segmenter", self.plugin_box)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: palette(mid);")
        head.addRow(self.description)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.model_label.setObjectName("model_label")
        head.addRow("Model", self.model_label)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load model…")
        self.load_btn.setToolTip("Use a checkpoint folder saved earlier (model.safetensors + config.json)")
        self.save_model_btn = QPushButton("Save model…")
        self.save_model_btn.setToolTip("Copy the model's checkpoint folder to a folder of your choice")
        self.load_btn.clicked.connect(self._load_dialog)
        self.save_model_btn.clicked.connect(self._save_model_dialog)
        row.addWidget(self.load_btn)
        row.addWidget(self.save_model_btn)
        head.addRow(row)
        lay.addLayout(head)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_train(), "Train")
        self.settings_scroll = QScrollArea()
        self.settings_scroll.setWidgetResizable(True)
        self.tabs.addTab(self.settings_scroll, "Settings")
        self.tabs.addTab(self._build_run(), "Run")
        lay.addWidget(self.tabs, 1)

        # the running job, whichever tab is shown
        bar = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the running job; a cancelled training keeps its best model so far")
        self.cancel_btn.clicked.connect(self.cancel)
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.cancel_btn)
        lay.addLayout(bar)
        self.status = QLabel("")
        self.status.setObjectName("seg_status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

    def _build_train(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 6, 4, 4)
        lay.addWidget(QLabel("Training pairs (image and labels on one grid)"))
        self.pairs = QTableWidget(0, 2)
        self.pairs.setHorizontalHeaderLabels(["Image", "Labels"])
        self.pairs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.pairs.verticalHeader().setVisible(False)
        self.pairs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.pairs.setMinimumHeight(80)
        self.pairs.setMaximumHeight(120)
        self.pairs.itemChanged.connect(self._pair_ticked)
        lay.addWidget(self.pairs)
        row = QHBoxLayout()
        self.folder_btn = QPushButton("Add pairs from folder…")
        self.folder_btn.setToolTip("Files X.nii.gz with X_seg / X_label(s) / X_mask beside them")
        self.folder_btn.clicked.connect(self._folder_dialog)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setToolTip("Drop the selected folder pairs (untick scene pairs to leave them out)")
        self.remove_btn.clicked.connect(self._remove_pairs)
        row.addWidget(self.folder_btn, 1)
        row.addWidget(self.remove_btn)
        lay.addLayout(row)
        self.train_btn = QPushButton("Train")
        self.train_btn.setObjectName("train_button")
        self.train_btn.setToolTip("Train on the ticked pairs with the settings of the Settings tab")
        self.train_btn.clicked.connect(self.train)
        lay.addWidget(self.train_btn)

        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(150)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss, Dice")
        self.plot.addLegend(offset=(-8, 8))
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.getPlotItem().setMenuEnabled(False)
        self.loss_curve = self.plot.plot([], [], pen=pg.mkPen((255, 160, 60), width=2), symbol="s",
                                         symbolSize=4, symbolBrush=(255, 160, 60), name="loss")
        self.dice_curve = self.plot.plot([], [], pen=pg.mkPen((80, 200, 255), width=2), symbol="o",
                                         symbolSize=5, symbolBrush=(80, 200, 255), name="val Dice")
        lay.addWidget(self.plot, 1)
        self.preview = QLabel("The validation prediction appears here while training runs.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setWordWrap(True)
        self.preview.setFixedHeight(160)
        self.preview.setStyleSheet("color: palette(mid);")
        lay.addWidget(self.preview)
        self.preview_caption = QLabel("")
        self.preview_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_caption.setStyleSheet("color: palette(mid);")
        self.preview_caption.setWordWrap(True)
        lay.addWidget(self.preview_caption)
        return w

    def _build_run(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 6, 4, 4)
        form = QFormLayout()
        self.image_box = QComboBox()
        self.image_box.setToolTip("The scan to segment")
        self.image_box.currentIndexChanged.connect(lambda *_: self._fill_references())
        form.addRow("Image", self.image_box)
        self.reference_box = QComboBox()
        self.reference_box.setToolTip("A label layer on the image's grid to score the prediction against (Dice)")
        form.addRow("Reference", self.reference_box)
        self.tta_box = QCheckBox("Flip TTA and uncertainty map")
        self.tta_box.setToolTip("Average the prediction over flips (4× slower); its entropy is the uncertainty")
        self.tta_box.setChecked(True)
        form.addRow("", self.tta_box)
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
        self.result_table = QTableWidget(0, 4)
        self.result_table.setHorizontalHeaderLabels(["Label", "Volume (mL)", "Reference (mL)", "Dice"])
        hh = self.result_table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.result_table.verticalHeader().setVisible(False)
        self.result_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.result_table.setMinimumHeight(90)
        self.result_table.setMaximumHeight(190)
        lay.addWidget(self.result_table)
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
        return w

    # plugins and settings ---------------------------------------------------------------------
    def plugin(self):
        name = self.plugin_box.currentData()
        return self.plugins.get(name) if name else None

    def _plugin_changed(self, *_: object) -> None:
        plugin = self.plugin()
        if plugin is None:
            self.description.setText("No segmenter plugin found in plugins/.")
            self.form = None
            self.settings_scroll.setWidget(QLabel("No settings."))
        else:
            self.description.setText(plugin.description)
            self.form = PluginForm(plugin.Config)
            host = QWidget()
            v = QVBoxLayout(host)
            v.addWidget(self.form)
            reset = QPushButton("Reset to defaults")
            reset.clicked.connect(lambda: self.form.set_config(plugin.Config()))
            v.addWidget(reset, 0, Qt.AlignmentFlag.AlignRight)
            v.addStretch(1)
            self.settings_scroll.setWidget(host)
        self._update()

    # scene -> combos and pairs -------------------------------------------------------------------
    def _images(self) -> list[ImageLayer]:
        return [l for l in self.scene.of_kind(ImageLayer) if not l.data.meta.get("uncertainty")]

    def _scene_changed(self) -> None:
        self._fill_pairs()
        self._fill_images()
        self._update()

    def _layer_removed(self, index: int, layer) -> None:
        self._unticked.discard(layer)
        self._label_choice.pop(layer, None)
        for key, val in list(self._label_choice.items()):
            if val is layer:
                del self._label_choice[key]
        if layer is self.uncertainty:
            self.uncertainty = None
            self.unc_box.setEnabled(False)
        if layer is self.prediction:
            self.prediction = None
        self._scene_changed()

    def _candidates(self, image: ImageLayer) -> list[LabelLayer]:
        """Label layers on ``image``'s grid, the likeliest partner first: manual before predicted,
        then named after the image ("CT" -> "CT labels"), then the nearest one above it."""
        layers = list(self.scene)
        at = layers.index(image) if image in layers else 0
        labs = [l for l in self.scene.of_kind(LabelLayer) if same_grid(image.data, l.data)]

        def rank(l: LabelLayer):
            i = layers.index(l)
            return (bool(l.data.meta.get("prediction")), not l.name.startswith(image.name),
                    i < at, abs(i - at))

        return sorted(labs, key=rank)

    def _fill_pairs(self) -> None:
        self._updating = True
        self.pairs.setRowCount(0)
        self._rows = []
        for img in self._images():
            cands = self._candidates(img)
            if cands:
                self._rows.append({"kind": "scene", "image": img, "labels": cands})
        for fp in self.folder_pairs:
            self._rows.append({"kind": "folder", **fp})
        self.pairs.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            if row["kind"] == "scene":
                img = row["image"]
                item = QTableWidgetItem(img.name)
                item.setToolTip(f"scene layer: {img.source or 'generated'}")
                item.setCheckState(Qt.CheckState.Unchecked if img in self._unticked else Qt.CheckState.Checked)
                self.pairs.setItem(r, 0, item)
                # only the user's own choice is remembered: an automatic one made before the
                # image's own labels arrived must give way to them
                chosen = self._label_choice.get(img)
                if chosen not in row["labels"]:
                    chosen = row["labels"][0]
                if len(row["labels"]) == 1:
                    lab = QTableWidgetItem(chosen.name)
                    lab.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    self.pairs.setItem(r, 1, lab)
                else:
                    box = QComboBox()
                    for l in row["labels"]:
                        box.addItem(l.name, l)
                    box.setCurrentIndex(row["labels"].index(chosen))
                    box.currentIndexChanged.connect(
                        lambda i, b=box, im=img: self._label_choice.__setitem__(im, b.itemData(i)))
                    self.pairs.setCellWidget(r, 1, box)
            else:
                item = QTableWidgetItem(Path(row["image"]).name)
                item.setToolTip(row["image"])
                item.setCheckState(Qt.CheckState.Checked if row.get("on", True) else Qt.CheckState.Unchecked)
                self.pairs.setItem(r, 0, item)
                lab = QTableWidgetItem(Path(row["label"]).name)
                lab.setToolTip(row["label"])
                lab.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.pairs.setItem(r, 1, lab)
        self._updating = False

    def _pair_ticked(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 0:
            return
        row = self._rows[item.row()]
        on = item.checkState() == Qt.CheckState.Checked
        if row["kind"] == "scene":
            (self._unticked.discard if on else self._unticked.add)(row["image"])
        else:
            row["on"] = on
            for fp in self.folder_pairs:
                if fp["image"] == row["image"]:
                    fp["on"] = on
        self._update()

    def _remove_pairs(self) -> None:
        rows = sorted({i.row() for i in self.pairs.selectedIndexes()})
        for r in rows:
            row = self._rows[r]
            if row["kind"] == "scene":
                self._unticked.add(row["image"])
            else:
                self.folder_pairs = [fp for fp in self.folder_pairs if fp["image"] != row["image"]]
        self._fill_pairs()
        self._update()

    def training_pairs(self) -> list[dict]:
        """The ticked pairs: {"case": Case, "image": path or None, "label": path or None}."""
        out = []
        for row in self._rows:
            if row["kind"] == "scene" and row["image"] not in self._unticked:
                lab = self._label_choice.get(row["image"])
                img, lab = row["image"], lab if lab in row["labels"] else row["labels"][0]
                src = [s if s and Path(s).exists() else None for s in (img.source, lab.source)]
                out.append({"case": Case(img.data, lab.data, name=img.name), "image": src[0], "label": src[1]})
            elif row["kind"] == "folder" and row.get("on", True):
                out.append({"case": row["case"], "image": row["image"], "label": row["label"]})
        return out

    def _fill_images(self) -> None:
        current = self.image_box.currentData()
        self.image_box.blockSignals(True)
        self.image_box.clear()
        for img in self._images():
            self.image_box.addItem(img.name, img)
        idx = self.image_box.findData(current) if current is not None else -1
        self.image_box.setCurrentIndex(idx if idx >= 0 else 0)
        self.image_box.blockSignals(False)
        self._fill_references()

    def _fill_references(self) -> None:
        current = self.reference_box.currentData()
        image = self.image_box.currentData()
        self.reference_box.clear()
        self.reference_box.addItem("(none)", None)
        if image is not None:
            for lab in self._candidates(image):
                self.reference_box.addItem(lab.name, lab)
        idx = self.reference_box.findData(current) if current is not None else -1
        if idx < 0 and self.reference_box.count() > 1 and not self.reference_box.itemData(1).data.meta.get("prediction"):
            idx = 1  # a manual label layer on the grid is the natural reference
        self.reference_box.setCurrentIndex(max(idx, 0))
        self._update()

    # buttons ----------------------------------------------------------------------------------------
    def _update(self) -> None:
        if not hasattr(self, "run_btn"):
            return
        busy = self.job is not None
        has_pairs = any(r["kind"] == "scene" and r["image"] not in self._unticked or
                        r["kind"] == "folder" and r.get("on", True) for r in self._rows)
        self.train_btn.setEnabled(not busy and self.plugin() is not None and has_pairs)
        self.run_btn.setEnabled(not busy and self.model is not None and self.image_box.currentData() is not None)
        self.cancel_btn.setEnabled(busy)
        self.load_btn.setEnabled(not busy)
        self.folder_btn.setEnabled(not busy)
        self.save_model_btn.setEnabled(not busy and self.model_dir is not None)
        self.save_mask_btn.setEnabled(bool(self.scene.of_kind(LabelLayer)))
        if self.model is None:
            self.model_label.setText("none yet: train one, or load a checkpoint")
        else:
            m = self.model.metrics or {}
            dice = m.get("best_val_dice")
            where = "trained here" if self.model_dir == self._trained_dir else Path(self.model_dir or "").name
            text = f"{self.model.plugin}, {where}"
            if isinstance(dice, (int, float)) and np.isfinite(dice):
                text += f"; best validation Dice {dice:.3f}"
                if m.get("validated_on_training_data"):
                    text += " (on training data: its training patches, no case held out)"
            self.model_label.setText(text)

    def _error(self, message: str) -> None:
        self.last_error = message
        box = QMessageBox(QMessageBox.Icon.Warning, "Segmentation", message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error_dialog")
        box.setModal(False)
        box.show()

    # jobs -------------------------------------------------------------------------------------------
    def _start(self, kind: str, fn, label: str, done, extra=()) -> Any:
        """Run ``fn`` as the panel's job in the training lane: created, wired, then started
        (the runner applies the heavy-job policy while it runs)."""
        def work(progress):
            # a known total and a non-zero value from the start: Fusion keeps animating a bar
            # that was busy until its value moves, and every frame repaints the whole window
            progress.update(1, 1000, "")
            return fn(progress)

        self.job_kind = kind
        self._clock = None
        self._pending_preview = None
        self._frac = (time.monotonic(), 0.001)  # the job's start marker (see work below)
        self._message = label + "…"
        self._started = time.monotonic()
        self._set_bar(0.0)  # no busy animation: each frame of it would repaint the window
        self.status.setText(label + "…")
        job = self.jobs.create(work, label, lane="train", heavy=True)
        job.finished.connect(done)
        job.failed.connect(self._failed)
        job.progress.connect(self._on_progress)
        job.cancelled.connect(self._cancelled)
        for name, slot in extra:  # e.g. ("metrics", self._on_metrics)
            getattr(job, name).connect(slot)
        self.job = job
        self.jobs.start(job)
        self._update()
        return job

    def _end(self) -> None:
        self.job = None
        self.job_kind = ""
        self._update()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")

    def _failed(self, message: str) -> None:
        self._end()
        self.status.setText(f"Failed: {message}")
        self._error(message)

    def _cancelled(self) -> None:
        kind = self.job_kind
        self._end()
        self.status.setText("Cancelled before any weights were kept." if kind == "train" else "Cancelled.")

    def _on_progress(self, step: float, total: float, message: str) -> None:
        """Note the job's progress; the panel shows it at most 4 times a second (each repaint of
        the window costs a composition of the GL views, tens of ms on a software renderer)."""
        now = time.monotonic()
        if total > 0:
            frac = min(max(step / total, 0.0), 1.0)
            if self._clock is None and frac > self._frac[1]:
                # the clock starts when the first step ends: that one is slow (warm-up)
                self._clock = (now, frac)
            self._frac = (now, frac)
        if message:
            self._message = message
        self._schedule()

    def _schedule(self) -> None:
        if not self._show_pending:
            self._show_pending = True
            QTimer.singleShot(250, self._flush_ui)

    def _flush_ui(self) -> None:
        """Show what the job reported since the last call, in one repaint."""
        self._show_pending = False
        if self._curves_dirty:
            self._draw_curves()
        if self._pending_preview is not None:
            self._draw_preview(self._pending_preview)
        if self.job is None:
            return
        t, frac = self._frac
        left = ""
        if self._clock is not None:
            t0, f0 = self._clock
            rate = (frac - f0) / max(t - t0, 1e-6)
            left = format_left((1.0 - frac) / rate) if rate > 0 and t - t0 > 1.0 else "estimating time left"
            if frac >= 0.999:
                left = "finishing"  # e.g. the last validation and checkpoint after the time budget
        self._set_bar(frac)
        self.status.setText(" · ".join(x for x in (self._message, self._elapsed(), left) if x))

    def _set_bar(self, frac: float) -> None:
        # QProgressBar.setValue repaints at once; with updates off it only schedules a repaint,
        # which Qt then merges with the status text's into one
        self.progress.setUpdatesEnabled(False)
        self.progress.setValue(int(round(1000 * frac)))
        self.progress.setUpdatesEnabled(True)

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self._started)
        return f"{s // 60}:{s % 60:02d} elapsed"

    # training ---------------------------------------------------------------------------------------
    def train(self) -> None:
        plugin = self.plugin()
        if plugin is None or self.job is not None:
            return
        try:
            config = self.form.config()
            pairs = self.training_pairs()
        except (TypeError, ValueError) as exc:
            self._error(f"Cannot train: {exc}")
            return
        if not pairs:
            self._error("No training pairs: load an image and a label volume on its grid, or add a folder of pairs.")
            return
        ckpt = tempfile.mkdtemp(prefix=f"lucid3d-{plugin.name}-")
        atexit.register(shutil.rmtree, ckpt, True)
        self.train_dir = ckpt
        cases = [p["case"] for p in pairs]
        for key in self._curves:
            self._curves[key] = ([], [])
        self.loss_curve.setData([], [])
        self.dice_curve.setData([], [])
        self.preview.clear()
        if len(cases) == 1:
            # nothing is held out: the Dice curve is measured on the training patches, and there is
            # no unseen case to preview (say so rather than leave an empty frame)
            self.preview.setText("One training case: no case is held out, so the Dice curve is measured on "
                                 "its training patches (training data, not unseen data) and there is no "
                                 "validation preview. Add a second pair to validate on unseen data.")
        else:
            self.preview.setText("The validation prediction appears here after the first validation.")
        self.preview_caption.setText("")
        self._preview_info = {}
        info = self._preview_info

        def work(progress):
            progress.update(0, 0, "preparing the training cases")
            warm_up()
            sources = []
            from plugins._seg.checkpoint import sha256_file

            for p in pairs:
                if p["image"] and p["label"]:
                    sources.append({"case": p["case"].name, "image": str(Path(p["image"]).resolve()),
                                    "image_sha256": sha256_file(p["image"]),
                                    "label": str(Path(p["label"]).resolve()), "label_sha256": sha256_file(p["label"])})
            try:
                info.update(_preview_reference(cases))
            except Exception:  # the preview is a nicety; training goes on without it
                pass
            return plugin.train(cases, config, progress, checkpoint_dir=ckpt, sources=sources)

        self._start("train", work, f"Training {plugin.name}", self._trained,
                    extra=(("metrics", self._on_metrics), ("preview", self._on_preview)))
        self.tabs.setCurrentIndex(0)

    def _on_metrics(self, step: float, values: dict) -> None:
        for key in ("loss", "val_dice"):
            if key in values and np.isfinite(values[key]):
                xs, ys = self._curves[key]
                xs.append(float(step))
                ys.append(float(values[key]))
        self._curves_dirty = True
        self._schedule()

    def _draw_curves(self) -> None:
        self._curves_dirty = False
        self.loss_curve.setData(*self._curves["loss"])
        self.dice_curve.setData(*self._curves["val_dice"])
        self.plot.setYRange(0, max([1.0] + self._curves["loss"][1]), padding=0.02)
        self.plot.setXRange(0, max([1.0] + self._curves["loss"][0] + self._curves["val_dice"][0]), padding=0.02)

    def _on_preview(self, obj: Any) -> None:
        self._pending_preview = obj
        self._schedule()

    def _draw_preview(self, obj: Any) -> None:
        """The validation case's reference and the current prediction, side by side: the axial
        slice through most of the reference's labels, each drawn at its physical size."""
        self._pending_preview = None
        labels = np.asarray(obj.get("labels")) if isinstance(obj, dict) else None
        if labels is None or labels.ndim != 3:
            return
        name = str(obj.get("case", ""))
        info = self._preview_info
        ref = info.get("cases", {}).get(name)
        k = int(ref["kfrac"] * labels.shape[2]) if ref else labels.shape[2] // 2
        k = min(max(k, 0), labels.shape[2] - 1)
        colors = info.get("colors")
        top = int(labels.max())
        if colors is None or len(colors) <= top:
            from ..model import default_color

            colors = np.array([(0.0, 0.0, 0.0)] + [default_color(v) for v in range(1, top + 1)])
        spacing = info.get("spacing", np.ones(3))
        images = [(labels[:, :, k], spacing[:2])]
        if ref:
            images.insert(0, (ref["slice"], ref["spacing"]))
        self.preview.setPixmap(_slices_pixmap(images, colors, box=150))
        what = "reference | prediction" if ref else "prediction"
        self.preview_caption.setText(f"validation case {name}, axial slice {k + 1}/{labels.shape[2]}: {what}")

    def _trained(self, model) -> None:
        self._flush_ui()  # the last curve points and preview
        self._end()
        old = self.model_dir if self.model_dir == self._trained_dir else None
        self.model, self.model_dir = model, self.train_dir
        self._trained_dir = self.train_dir
        if old and old != self.model_dir:
            shutil.rmtree(old, ignore_errors=True)
        self.tta_box.setChecked(bool(model.config.get("tta", True)))
        m = model.metrics or {}
        how = {"cancelled": "Cancelled: kept the best model so far",
               "time budget": "Stopped at the time budget", "epochs": "Done"}.get(m.get("stopped_by"), "Done")
        dice = m.get("best_val_dice")
        dice_text = f"best validation Dice {dice:.3f} (epoch {m.get('best_epoch')})" \
            if isinstance(dice, (int, float)) and np.isfinite(dice) else "not validated"
        self.status.setText(f"{how}: {dice_text}, {m.get('steps', 0)} steps in {m.get('seconds', 0):.0f} s.")
        self.progress.setValue(1000)
        self._update()

    # folders of pairs -------------------------------------------------------------------------------
    def _folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of image/label pairs", str(Path.home()))
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        """Load the pairs of ``folder`` in a job and list them for training (not in the scene)."""
        def work(progress):
            pairs = pairs_in_folder(folder)
            if not pairs:
                raise LoadError(folder, "no image/label pairs (X.nii.gz with X_seg, X_label(s) or X_mask)")
            loaded, skipped = [], []
            for i, (img_path, lab_path) in enumerate(pairs):
                progress.update(i, len(pairs), f"loading {img_path.name}")
                try:
                    case = load_case(img_path, lab_path, name=_stem(img_path)[0])
                    loaded.append({"case": case, "image": str(img_path), "label": str(lab_path), "on": True})
                except LoadError as exc:
                    skipped.append(str(exc))
            return loaded, skipped

        def done(result) -> None:
            loaded, skipped = result
            known = {fp["image"] for fp in self.folder_pairs}
            self.folder_pairs += [fp for fp in loaded if fp["image"] not in known]
            self._fill_pairs()
            self._update()
            if skipped:
                self._error(f"{len(skipped)} pair(s) left out:\n" + "\n".join(skipped))
            self.status.setText(f"Added {len(loaded)} pair(s) from {Path(folder).name}.")

        self.jobs.submit(work, f"Loading pairs from {Path(folder).name}", on_done=done, on_error=self._error)

    # checkpoints ------------------------------------------------------------------------------------
    def _load_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Load model (checkpoint folder)", str(Path.home()))
        if folder:
            self.load_model(folder)

    def load_model(self, folder: str) -> None:
        """Load a checkpoint folder in a job with the plugin that wrote it."""
        def work(progress):
            progress.update(0, 0, f"loading {Path(folder).name}")
            warm_up()
            plugin = plugin_for_checkpoint(folder, "segmenter")
            return plugin.name, plugin.load(folder, device="cpu")

        def done(result) -> None:
            name, model = result
            if self.model_dir and self.model_dir == self._trained_dir and self.model_dir != self.train_dir:
                shutil.rmtree(self.model_dir, ignore_errors=True)
            self.model, self.model_dir = model, str(folder)
            idx = self.plugin_box.findData(name)
            if idx >= 0:
                self.plugin_box.setCurrentIndex(idx)
            self.tta_box.setChecked(bool(model.config.get("tta", True)))
            self.status.setText(f"Loaded model {Path(folder).name}.")
            self._update()

        self.jobs.submit(work, f"Loading model {Path(folder).name}", on_done=done, on_error=self._error)

    def _save_model_dialog(self) -> None:
        if not self.model_dir:
            return
        default = str(Path.home() / f"{self.model.plugin if self.model else 'model'}-model")
        path, _ = QFileDialog.getSaveFileName(self, "Save model as a folder", default, "Checkpoint folder (*)")
        if path:
            self.save_model(path)

    def save_model(self, folder: str) -> None:
        """Copy the model's checkpoint folder to ``folder`` (atomically, in a job)."""
        src = self.model_dir
        if not src:
            self._error("No model to save: train one first.")
            return

        def done(path) -> None:
            self.status.setText(f"Saved model to {path}.")

        self.jobs.submit(lambda _p: copy_checkpoint(src, folder), "Saving model", on_done=done, on_error=self._error)

    # prediction -------------------------------------------------------------------------------------
    def run(self) -> None:
        image = self.image_box.currentData()
        if self.model is None or image is None or self.job is not None:
            return
        model, ref, tta = self.model, self.reference_box.currentData(), self.tta_box.isChecked()
        try:
            plugin = get_plugin(model.plugin, "segmenter")
        except PluginError as exc:
            self._error(str(exc))
            return

        def work(progress):
            warm_up()
            labels, unc = plugin.predict(model, image.data, progress, tta=tta)
            values = [lab.value for lab in labels.table]
            ml = labels.volumes_ml()
            stats = {v: {"name": labels.table[v].name, "color": labels.table[v].color, "ml": ml.get(v, 0.0)}
                     for v in values}
            if ref is not None and same_grid(ref.data, labels):
                ref_ml = ref.data.volumes_ml()
                dice = _dice(np.asarray(labels.array), np.asarray(ref.data.array), values)
                for v in values:
                    stats[v].update(ref_ml=ref_ml.get(v, 0.0), dice=dice[v])
            rng = None
            if unc is not None:
                rng = (float(np.nanmin(unc.array)), float(np.nanmax(unc.array)))
            return labels, unc, stats, rng

        self._start("run", work, f"Segmenting {image.name}", lambda r: self._predicted(image, ref, r))

    def _predicted(self, image: ImageLayer, ref, result) -> None:
        self._end()
        labels, unc, stats, rng = result
        name = f"{image.name} · {self.model.plugin if self.model else 'prediction'}"
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
        self.status.setText(f"Segmented {image.name}.")
        self.progress.setValue(1000)
        self._update()

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

    # masks ------------------------------------------------------------------------------------------
    def mask_layer(self) -> LabelLayer | None:
        """What "Save mask…" writes: the selected label layer, else the latest prediction."""
        sel = self.scene.selected
        return sel if isinstance(sel, LabelLayer) else self.prediction

    def _save_mask_dialog(self) -> None:
        layer = self.mask_layer()
        if layer is None:
            self._error("No mask to save: run a model, or select a label layer.")
            return
        src = layer.data.meta.get("source_image") or layer.source
        folder = Path(src).parent if src and Path(src).exists() else Path.home()
        stem = _stem(Path(src))[0] if src and Path(src).exists() else layer.name.split(" · ")[0]
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
            self._error("No mask to save: run a model, or select a label layer.")
            return
        data: LabelMap = layer.data
        protect = [l.source for l in self.scene if l.source and not str(l.source).startswith("demo:")]
        protect += [fp[k] for fp in self.folder_pairs for k in ("image", "label")]

        def done(p) -> None:
            self.status.setText(f"Saved {Path(p).name}.")

        self.jobs.submit(lambda _p: save_nifti(data, path, protect=protect), f"Saving {Path(path).name}",
                         on_done=done, on_error=self._error)
