"""What the Segmentation, Lesions and Neural Rendering panels are alike: a dock panel over the scene
with a method chooser of one plugin kind, the shared :class:`~viewer.ui.training_bar.TrainingBar`,
the model in memory (and its checkpoint folder, saved elsewhere atomically) and non-modal warnings.
Each panel adds its inputs, its tabs and what it does with a model."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from ..model import Scene
from ..model.errors import LoadError
from ..plugins import PluginInfo
from .methods import MethodChooser, as_infos
from .training_bar import TrainingBar

__all__ = ["TrainingPanel", "copy_checkpoint"]


class TrainingPanel(QWidget):
    """The common part of a training panel; subclasses build their widgets, then call
    :meth:`_wire`, and write ``_update`` (buttons from state) and ``_scene_changed``.

    ``infos``: the plugins to offer (PluginInfos or ``{name: plugin}``); default: every installed
    one (:func:`viewer.plugins.plugin_infos`).
    """

    title = ""  # the warnings' title

    def __init__(self, scene: Scene, jobs, kind: str, bar: TrainingBar,
                 infos: Iterable[PluginInfo] | dict | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene, self.jobs = scene, jobs
        self.model: Any = None  # the trained or loaded model in memory
        self.model_dir: str | None = None  # its checkpoint folder, when it has one
        self.last_error: str | None = None
        self.chooser = MethodChooser(kind, None if infos is None else as_infos(infos))
        self.bar = bar

    def _wire(self) -> None:
        """Keep the buttons and lists current: after the widgets exist."""
        self.chooser.changed.connect(self._update)
        self.bar.busy_changed.connect(lambda _busy: self._update())
        self.scene.layer_inserted.connect(lambda *_: self._scene_changed())
        self.scene.layer_removed.connect(lambda *_: self._scene_changed())
        self._scene_changed()

    def _update(self) -> None:
        raise NotImplementedError

    def _scene_changed(self) -> None:
        raise NotImplementedError

    @property
    def job(self) -> Any:
        """The panel's running job (training, prediction), or None."""
        return self.bar.job

    @property
    def form(self):
        """The chosen method's settings form (None when there is none)."""
        return self.chooser.form

    @property
    def plugins(self) -> dict[str, Any]:
        """The available methods offered, by name."""
        return self.chooser.plugins

    def plugin(self) -> Any:
        return self.chooser.plugin()

    def set_plugins(self, plugins: Iterable[PluginInfo] | dict) -> None:
        """Offer these plugins (PluginInfos or ``{name: plugin}``) instead of the installed ones."""
        self.chooser.set_infos(as_infos(plugins))

    def cancel(self) -> None:
        self.bar.cancel()

    def _load(self, folder: str, warm: Callable[[], None], done: Callable[[Any, Any], None]) -> None:
        """Load the checkpoint ``folder`` in a job with the plugin that wrote it (``warm()`` first
        imports what the plugin will need, off the UI thread); then ``done(plugin, model)``."""
        chooser = self.chooser

        def work(progress):
            progress.update(0, 0, f"loading {Path(folder).name}")
            plugin = chooser.plugin_for(folder)
            warm()
            return plugin, plugin.load(folder, device="cpu")

        self.jobs.submit(work, f"Loading {Path(folder).name}", on_done=lambda result: done(*result),
                         on_error=self.error)

    def _ask_folder(self, title: str) -> str | None:
        return QFileDialog.getExistingDirectory(self, title, str(Path.home())) or None

    def error(self, message: str) -> None:
        """A non-modal warning (and ``last_error`` for tests and scripts)."""
        self.last_error = message
        box = QMessageBox(QMessageBox.Icon.Warning, self.title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error_dialog")
        box.setModal(False)
        box.show()

    # the model's checkpoint folder, saved elsewhere ------------------------------------------------
    def _add_model_rows(self, form: QFormLayout, label_name: str) -> None:
        """The "Model" row (``model_label``, object name ``label_name``) and the Load/Save model
        buttons (``load_btn``, ``save_model_btn``; the subclass writes ``_load_dialog``)."""
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.model_label.setObjectName(label_name)
        form.addRow("Model", self.model_label)
        row = QHBoxLayout()
        self.load_btn = QPushButton("Load model…")
        self.load_btn.setToolTip("Use a checkpoint folder saved earlier (model.safetensors + config.json)")
        self.save_model_btn = QPushButton("Save model…")
        self.save_model_btn.setToolTip("Copy the model's checkpoint folder to a folder of your choice")
        self.load_btn.clicked.connect(self._load_dialog)
        self.save_model_btn.clicked.connect(self._save_model_dialog)
        row.addWidget(self.load_btn)
        row.addWidget(self.save_model_btn)
        form.addRow(row)

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
            self.error("No model to save: train one first.")
            return
        self.jobs.submit(lambda _p: copy_checkpoint(src, folder), "Saving model",
                         on_done=lambda path: self.bar.status.setText(f"Saved model to {path}."),
                         on_error=self.error)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name): the dock's width when first shown
        return QSize(390, 760)


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
