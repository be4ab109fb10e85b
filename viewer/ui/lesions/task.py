"""One task of the Lesions panel (classification or detection): a :class:`TrainingPanel` of its
plugin kind with the method chooser, the model (trained here or loaded), the Train / Settings / Run
tabs and the shared training bar. The subclasses say what a run computes and how it is shown.

Training runs in the ``train`` lane on the panel's cases (a :class:`~viewer.ui.lesions.cases.CasesPicker`
shared by both tasks) and writes its best checkpoint to a temporary folder as it goes, so a
cancelled run still leaves a usable model; "Save model…" copies that folder where the user wants it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from PySide6.QtWidgets import QComboBox, QFormLayout, QPushButton, QTabWidget, QVBoxLayout, QWidget

from ...model import ImageLayer, Scene
from ...plugins import PluginInfo
from ..training_bar import TrainingBar
from ..training_panel import TrainingPanel
from ..training_widgets import warm_imports

__all__ = ["LesionTask", "warm_up", "WARM_MODULES"]

#: what a classifier's or detector's first call imports (libraries only)
WARM_MODULES = ("torch", "monai.networks.nets", "monai.networks.blocks")


def warm_up() -> None:
    warm_imports(WARM_MODULES)


def _metric_curve(name: str) -> bool:
    return name == "loss" or name.startswith("val")


class LesionTask(TrainingPanel):
    """The common part of the Classification and Detection tabs; subclasses set ``kind``, ``verb``
    and write :meth:`_build_run` (their Run tab's own widgets), :meth:`_run_work` (in the job) and
    :meth:`_show` (on the UI thread)."""

    kind = ""
    verb = ""  # "Classify", "Detect"

    def __init__(self, scene: Scene, jobs, cases, view3d=None, parent: QWidget | None = None,
                 infos: Iterable[PluginInfo] | dict | None = None) -> None:
        bar = TrainingBar([("loss, validation", _metric_curve)], "",
                          "Stop the running job; a cancelled training keeps its best model so far", name=self.kind)
        super().__init__(scene, jobs, self.kind, bar, infos, parent)
        self.title = f"Lesions: {self.kind}"
        self.cases, self.view3d = cases, view3d
        self.model_dir: str | None = None
        self.train_dir: str | None = None
        self._trained_dir: str | None = None
        self._build()
        cases.changed.connect(self._update)
        self._wire()

    # layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        head = QFormLayout()
        head.addRow(self.kind.capitalize(), self.chooser.box)
        head.addRow(self.chooser.description)
        self._add_model_rows(head, f"{self.kind}_model_label")
        lay.addLayout(head)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_train(), "Train")
        self.tabs.addTab(self.chooser.settings, "Settings")
        self.tabs.addTab(self._build_run_tab(), "Run")
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.bar)

    def _build_train(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 6, 4, 4)
        self.train_btn = QPushButton("Train")
        self.train_btn.setObjectName(f"{self.kind}_train_button")
        self.train_btn.setToolTip("Train on the cases above with the settings of the Settings tab")
        self.train_btn.clicked.connect(self.train)
        lay.addWidget(self.train_btn)
        lay.addWidget(self.bar.charts, 1)
        return w

    def _build_run_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 6, 4, 4)
        form = QFormLayout()
        self.image_box = QComboBox()
        self.image_box.setToolTip("The scan to run the model on")
        self.image_box.currentIndexChanged.connect(lambda *_: self._update())
        form.addRow("Image", self.image_box)
        lay.addLayout(form)
        self._build_run(lay, form)
        return w

    def _build_run(self, lay: QVBoxLayout, form: QFormLayout) -> None:
        raise NotImplementedError

    # state -> widgets ---------------------------------------------------------------------------
    def images(self) -> list[ImageLayer]:
        """The scene's images a model can run on: not the maps runs made."""
        return [l for l in self.scene if isinstance(l, ImageLayer) and not l.data.meta.get("saliency")]

    def _scene_changed(self) -> None:
        current = self.image_box.currentData()
        self.image_box.blockSignals(True)
        self.image_box.clear()
        for img in self.images():
            self.image_box.addItem(img.name, img)
        idx = self.image_box.findData(current) if current is not None else -1
        self.image_box.setCurrentIndex(idx if idx >= 0 else 0)
        self.image_box.blockSignals(False)
        self._update()

    def _update(self) -> None:
        busy = self.job is not None
        self.train_btn.setEnabled(not busy and self.chooser.plugin() is not None and bool(self.cases.rows)
                                  and not self.cases.loading)
        self.run_btn.setEnabled(not busy and self.model is not None and self.image_box.currentData() is not None)
        self.load_btn.setEnabled(not busy)
        self.save_model_btn.setEnabled(not busy and self.model_dir is not None)
        self.chooser.box.setEnabled(not busy)
        self.model_label.setText(self._model_text())

    def _model_text(self) -> str:
        if self.model is None:
            return "none yet: train one, or load a checkpoint"
        m = self.model.metrics or {}
        where = "trained here" if self.model_dir == self._trained_dir else Path(self.model_dir or "").name
        text = f"{self.model.plugin}, {where}"
        score = m.get("best_val_score")
        if isinstance(score, (int, float)):
            text += f"; best validation score {score:.3f}"
        return text

    # training -------------------------------------------------------------------------------------
    def train(self) -> None:
        plugin = self.chooser.plugin()
        if plugin is None or self.job is not None or not self.cases.rows:
            return
        try:
            config = self.chooser.config()
            cases = self._training_cases()
        except (TypeError, ValueError) as exc:
            self.error(f"Cannot train: {exc}")
            return
        ckpt = tempfile.mkdtemp(prefix=f"lucid3d-{plugin.name}-")
        atexit.register(shutil.rmtree, ckpt, True)
        self.train_dir = ckpt
        sources = list(self.cases.sources)

        def work(progress):
            progress.update(1, 1000, "preparing the training cases")  # the clock's start marker
            warm_up()
            return plugin.train(cases, config, progress, checkpoint_dir=ckpt, sources=sources)

        self.bar.start(self.jobs, work, f"Training {plugin.name}", self._trained, failed=self.error,
                       cancelled=lambda: self.bar.status.setText("Cancelled before any weights were kept."))
        self.tabs.setCurrentIndex(0)

    def _training_cases(self) -> list:
        from ...plugins import ImageCase

        return [ImageCase(r.image, r.label, r.boxes, r.name) for r in self.cases.rows]

    def _trained(self, model) -> None:
        old = self.model_dir if self.model_dir == self._trained_dir else None
        self.model, self.model_dir = model, self.train_dir
        self._trained_dir = self.train_dir
        if old and old != self.model_dir:
            shutil.rmtree(old, ignore_errors=True)
        m = model.metrics or {}
        how = {"cancelled": "Cancelled: kept the best model so far",
               "time budget": "Stopped at the time budget"}.get(m.get("stopped_by"), "Done")
        self.bar.finish(f"{how}: {m.get('steps', 0)} steps in {m.get('seconds', 0):.0f} s.")
        self.tabs.setCurrentIndex(2)
        self._update()

    # running the model ------------------------------------------------------------------------------
    def run(self) -> None:
        image = self.image_box.currentData()
        if self.model is None or image is None or self.job is not None:
            return
        model = self.model
        try:
            plugin = self.chooser.plugin_named(model.plugin)
        except Exception as exc:  # PluginError: the plugin that made the model is gone
            self.error(str(exc))
            return
        options = self._run_options()

        def work(progress):
            progress.update(1, 1000, "")
            warm_up()
            return self._run_work(plugin, model, image.data, options)

        self.bar.start(self.jobs, work, f"{self.verb} {image.name}", lambda r: self._done(image, r),
                       failed=self.error, cancelled=lambda: self.bar.status.setText("Cancelled."), training=False)

    def _done(self, image: ImageLayer, result: Any) -> None:
        self._show(image, result)
        self._update()

    def _run_options(self) -> dict:
        return {}

    def _run_work(self, plugin, model, volume, options: dict) -> Any:
        raise NotImplementedError

    def _show(self, image: ImageLayer, result: Any) -> None:
        raise NotImplementedError

    # checkpoints ------------------------------------------------------------------------------------
    def _load_dialog(self) -> None:
        folder = self._ask_folder("Load model (checkpoint folder)")
        if folder:
            self.load_model(folder)

    def load_model(self, folder: str) -> None:
        """Load a checkpoint folder in a job with the plugin that wrote it."""
        def done(plugin, model) -> None:
            self.model, self.model_dir = model, str(folder)
            self.chooser.choose(plugin.name)
            self.bar.status.setText(f"Loaded model {Path(folder).name}.")
            self._update()

        self._load(folder, warm_up, done)
