"""What the Segmentation and Neural Rendering panels are alike: a dock panel over the scene with a
method chooser of one plugin kind, the shared :class:`~viewer.ui.training_bar.TrainingBar`, the
model in memory and non-modal warnings. Each panel adds its inputs, its tabs and what it does with
a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from ..model import Scene
from ..plugins import PluginInfo
from .methods import MethodChooser, as_infos
from .training_bar import TrainingBar

__all__ = ["TrainingPanel"]


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

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name): the dock's width when first shown
        return QSize(390, 760)
