"""Small dialogs: the DICOM series picker."""

from __future__ import annotations

from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView,
                               QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

__all__ = ["SeriesPicker", "pick_series"]


class SeriesPicker(QDialog):
    """Lists the series of a DICOM folder (description, modality, size); returns one UID."""

    def __init__(self, series: list, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a DICOM series")
        self.series = series
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"This folder holds {len(series)} series. Which one should open?"))
        self.table = QTableWidget(len(series), 4)
        self.table.setHorizontalHeaderLabels(["Description", "Modality", "Size", "Files"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        order = sorted(range(len(series)), key=lambda i: -_voxels(series[i]))
        for row, i in enumerate(order):
            s = series[i]
            shape = getattr(s, "shape", None)
            cells = [getattr(s, "description", "") or "(no description)", getattr(s, "modality", ""),
                     " × ".join(str(x) for x in shape) if shape else "", str(getattr(s, "n_files", ""))]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(256, s.uid)
                self.table.setItem(row, c, item)
        self.table.selectRow(0)
        self.table.doubleClicked.connect(self.accept)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(640, 300)

    def selected_uid(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).data(256) if rows else None


def _voxels(s) -> int:
    shape = getattr(s, "shape", None) or (0,)
    n = 1
    for x in shape:
        n *= int(x)
    return n


def pick_series(parent: QWidget, series: list) -> str | None:
    dlg = SeriesPicker(series, parent)
    return dlg.selected_uid() if dlg.exec() == QDialog.DialogCode.Accepted else None
