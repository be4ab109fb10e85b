"""The Segmentation panel's training pairs: every scene image with a label layer on its grid, and
pairs loaded from folders (in a job, listed for training, not opened as layers).

A scene pair can be unticked (left out) and, when several label layers share its grid, given
another label layer; a folder pair can be unticked or removed.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from ...model import ImageLayer, LabelLayer, Scene
from ...model.errors import LoadError
from ...plugins import Case, load_case
from .files import pairs_in_folder, same_grid, volume_stem

__all__ = ["PairList", "scene_images", "label_candidates"]


def scene_images(scene: Scene) -> list[ImageLayer]:
    """The scene's image layers a model may train on or segment (not uncertainty maps)."""
    return [l for l in scene.of_kind(ImageLayer) if not l.data.meta.get("uncertainty")]


def label_candidates(scene: Scene, image: ImageLayer) -> list[LabelLayer]:
    """Label layers on ``image``'s grid, the likeliest partner first: manual before predicted,
    then named after the image ("CT" -> "CT labels"), then the nearest one above it."""
    layers = list(scene)
    at = layers.index(image) if image in layers else 0
    labs = [l for l in scene.of_kind(LabelLayer) if same_grid(image.data, l.data)]

    def rank(l: LabelLayer):
        i = layers.index(l)
        return (bool(l.data.meta.get("prediction")), not l.name.startswith(image.name), i < at, abs(i - at))

    return sorted(labs, key=rank)


class PairList(QWidget):
    """The pairs table with "Add pairs from folder…" and "Remove". ``changed`` after any change
    of what would be trained on; ``message`` and ``error`` for the panel to show."""

    changed = Signal()
    message = Signal(str)
    error = Signal(str)

    def __init__(self, scene: Scene, jobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene, self.jobs = scene, jobs
        self.folder_pairs: list[dict] = []  # {"case": Case, "image": path, "label": path, "on": bool}
        self._unticked: set = set()  # scene image layers left out of training
        self._label_choice: dict = {}  # scene image layer -> the label layer the user chose
        self._rows: list[dict] = []
        self._updating = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Training pairs (image and labels on one grid)"))
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Image", "Labels"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setMinimumHeight(80)
        self.table.setMaximumHeight(120)
        self.table.itemChanged.connect(self._ticked)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        self.folder_btn = QPushButton("Add pairs from folder…")
        self.folder_btn.setToolTip("Files X.nii.gz with X_seg / X_label(s) / X_mask beside them")
        self.folder_btn.clicked.connect(self._folder_dialog)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setToolTip("Drop the selected folder pairs (untick scene pairs to leave them out)")
        self.remove_btn.clicked.connect(self._remove_selected)
        row.addWidget(self.folder_btn, 1)
        row.addWidget(self.remove_btn)
        lay.addLayout(row)
        scene.layer_removed.connect(self._layer_removed)

    # what is ticked ------------------------------------------------------------------------------
    def has_pairs(self) -> bool:
        return any(r["kind"] == "scene" and r["image"] not in self._unticked
                   or r["kind"] == "folder" and r.get("on", True) for r in self._rows)

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

    def protected_files(self) -> list[str]:
        """The folder pairs' files (never written over by a saved mask)."""
        return [fp[k] for fp in self.folder_pairs for k in ("image", "label")]

    # the table -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the scene's pairs (after a layer came or went) and the folder pairs."""
        self._updating = True
        self.table.setRowCount(0)
        self._rows = []
        for img in scene_images(self.scene):
            cands = label_candidates(self.scene, img)
            if cands:
                self._rows.append({"kind": "scene", "image": img, "labels": cands})
        self._rows += [{"kind": "folder", **fp} for fp in self.folder_pairs]
        self.table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            if row["kind"] == "scene":
                self._scene_row(r, row)
            else:
                self._folder_row(r, row)
        self._updating = False
        self.changed.emit()

    def _scene_row(self, r: int, row: dict) -> None:
        img = row["image"]
        item = QTableWidgetItem(img.name)
        item.setToolTip(f"scene layer: {img.source or 'generated'}")
        item.setCheckState(Qt.CheckState.Unchecked if img in self._unticked else Qt.CheckState.Checked)
        self.table.setItem(r, 0, item)
        # only the user's own choice is remembered: an automatic one made before the image's
        # own labels arrived must give way to them
        chosen = self._label_choice.get(img)
        if chosen not in row["labels"]:
            chosen = row["labels"][0]
        if len(row["labels"]) == 1:
            lab = QTableWidgetItem(chosen.name)
            lab.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            self.table.setItem(r, 1, lab)
            return
        box = QComboBox()
        for l in row["labels"]:
            box.addItem(l.name, l)
        box.setCurrentIndex(row["labels"].index(chosen))
        box.currentIndexChanged.connect(lambda i, b=box, im=img: self._label_choice.__setitem__(im, b.itemData(i)))
        self.table.setCellWidget(r, 1, box)

    def _folder_row(self, r: int, row: dict) -> None:
        item = QTableWidgetItem(Path(row["image"]).name)
        item.setToolTip(row["image"])
        item.setCheckState(Qt.CheckState.Checked if row.get("on", True) else Qt.CheckState.Unchecked)
        self.table.setItem(r, 0, item)
        lab = QTableWidgetItem(Path(row["label"]).name)
        lab.setToolTip(row["label"])
        lab.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self.table.setItem(r, 1, lab)

    def _ticked(self, item: QTableWidgetItem) -> None:
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
        self.changed.emit()

    def _remove_selected(self) -> None:
        for r in sorted({i.row() for i in self.table.selectedIndexes()}):
            row = self._rows[r]
            if row["kind"] == "scene":
                self._unticked.add(row["image"])
            else:
                self.folder_pairs = [fp for fp in self.folder_pairs if fp["image"] != row["image"]]
        self.refresh()

    def _layer_removed(self, index: int, layer) -> None:
        self._unticked.discard(layer)
        self._label_choice.pop(layer, None)
        for key, val in list(self._label_choice.items()):
            if val is layer:
                del self._label_choice[key]

    # folders -------------------------------------------------------------------------------------
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
                    case = load_case(img_path, lab_path, name=volume_stem(img_path)[0])
                    loaded.append({"case": case, "image": str(img_path), "label": str(lab_path), "on": True})
                except LoadError as exc:
                    skipped.append(str(exc))
            return loaded, skipped

        def done(result) -> None:
            loaded, skipped = result
            known = {fp["image"] for fp in self.folder_pairs}
            self.folder_pairs += [fp for fp in loaded if fp["image"] not in known]
            self.refresh()
            if skipped:
                self.error.emit(f"{len(skipped)} pair(s) left out:\n" + "\n".join(skipped))
            self.message.emit(f"Added {len(loaded)} pair(s) from {Path(folder).name}.")

        self.jobs.submit(work, f"Loading pairs from {Path(folder).name}", on_done=done, on_error=self.error.emit)
