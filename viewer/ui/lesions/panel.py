"""The Lesions panel: 3D classification and detection. The training cases (a ``cases.json``) on
top, shared by a Classification and a Detection tab, each a :class:`~viewer.ui.lesions.task.LesionTask`
over the plugins of its kind (found by discovery)."""

from __future__ import annotations

import threading
from typing import Iterable

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QGroupBox, QTabWidget, QVBoxLayout, QWidget

from ...model import Scene
from ...plugins import PluginInfo
from .cases import CasesPicker
from .classify import ClassifierTask
from .detect import DetectorTask
from .task import warm_up

__all__ = ["LesionsPanel"]

_WARM = {"started": False}


class LesionsPanel(QWidget):
    """``cases`` (the manifest), ``classifier`` and ``detector`` (the two tasks). ``view3d``: the 3D
    view a box jumped to is shown in (None: slices only). ``infos``: the plugins to offer (default:
    every installed one)."""

    def __init__(self, scene: Scene, jobs, view3d=None, parent: QWidget | None = None,
                 infos: Iterable[PluginInfo] | dict | None = None) -> None:
        super().__init__(parent)
        self.scene, self.jobs = scene, jobs
        self.cases = CasesPicker(jobs)
        self.classifier = ClassifierTask(scene, jobs, self.cases, view3d, infos=infos)
        self.detector = DetectorTask(scene, jobs, self.cases, view3d, infos=infos)
        self.cases.error.connect(lambda message: self.current().error(message))
        self.cases.changed.connect(self._busy)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        group = QGroupBox("Training cases")
        QVBoxLayout(group).addWidget(self.cases)
        lay.addWidget(group)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.classifier, "Classification")
        self.tabs.addTab(self.detector, "Detection")
        lay.addWidget(self.tabs, 1)
        for task in (self.classifier, self.detector):
            task.bar.busy_changed.connect(lambda _busy: self._busy())

    def current(self):
        return self.tabs.currentWidget()

    def _busy(self) -> None:
        # a manifest is not swapped under a running training
        self.cases.set_enabled(self.classifier.job is None and self.detector.job is None)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not _WARM["started"]:
            # torch's imports in the background, before anyone presses Train
            _WARM["started"] = True
            threading.Thread(target=warm_up, name="lucid3d-warm-up-lesions", daemon=True).start()

    def cancel(self) -> None:
        for task in (self.classifier, self.detector):
            task.cancel()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(400, 780)
