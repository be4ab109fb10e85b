"""Choosing a method: the plugins of one kind in a combo box, their description and settings form.

Every plugin the registry lists is shown: available ones of the panel's kind are selectable, and
the unavailable ones (a plugin whose module fails to import, or that lacks part of the contract)
are listed greyed out with their one-line reason as tooltip, so a user sees why a method is
missing. Nothing here imports a plugin's module or torch; a broken plugin never breaks a panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from ..plugins import PluginInfo, checkpoint_plugin_name, plugin_for_checkpoint, plugin_infos
from .plugin_form import PluginForm

__all__ = ["MethodChooser", "as_infos", "installed_infos"]


def installed_infos() -> list[PluginInfo]:
    """The registry's list; a registry that fails altogether reads as one unavailable entry."""
    try:
        return plugin_infos()
    except Exception as exc:  # discovery must never take a panel down
        return [PluginInfo("plugins", "", "", problem=f"plugin discovery failed ({type(exc).__name__}: {exc})")]


def _kind(info: PluginInfo) -> str | None:
    """What the registry found the plugin to be (None for one that could not be loaded)."""
    return getattr(info, "kind", None) or getattr(info.plugin, "kind", None)


def as_infos(plugins: Mapping[str, Any] | Iterable[PluginInfo]) -> list[PluginInfo]:
    """``{name: plugin}`` (e.g. a test's own plugin) or PluginInfos, as PluginInfos."""
    if isinstance(plugins, Mapping):
        return [PluginInfo(name, "", "", plugin=p) for name, p in plugins.items()]
    return list(plugins)


class MethodChooser(QWidget):
    """The method combo box (``box``), the chosen method's description (``description``) and its
    settings form (``settings``: a scroll area the panel puts in a tab; ``form`` is the
    :class:`PluginForm`, or None). ``changed`` is emitted after the choice changed."""

    changed = Signal()

    def __init__(self, kind: str, infos: Iterable[PluginInfo] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.plugins: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self.form: PluginForm | None = None
        self.box = QComboBox()
        self.box.setObjectName(f"{kind}_methods")
        self.box.currentIndexChanged.connect(self._changed)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: palette(mid);")
        self.settings = QScrollArea()
        self.settings.setWidgetResizable(True)
        self.set_infos(installed_infos() if infos is None else infos)

    # the list --------------------------------------------------------------------------------------
    def set_infos(self, infos: Iterable[PluginInfo]) -> None:
        """Offer these plugins: available ones of this kind, then the unavailable ones (greyed)."""
        infos = list(infos)
        self.plugins = {i.name: i.plugin for i in infos if i.available and _kind(i) == self.kind}
        # an unavailable plugin of unknown kind (it did not even load) is listed in every chooser
        self.unavailable = {i.name: i.problem or "unavailable" for i in infos
                            if not i.available and _kind(i) in (None, self.kind)}
        self.box.blockSignals(True)
        self.box.clear()
        # the preferred method first (its ``priority``), then by name
        for name, plugin in sorted(self.plugins.items(), key=lambda kv: (-int(getattr(kv[1], "priority", 0)), kv[0])):
            self.box.addItem(name, name)
            self.box.setItemData(self.box.count() - 1, str(getattr(plugin, "description", "") or ""),
                                 Qt.ItemDataRole.ToolTipRole)
        model = self.box.model()
        for name, problem in sorted(self.unavailable.items()):
            self.box.addItem(f"{name} (unavailable)", None)
            row = self.box.count() - 1
            self.box.setItemData(row, f"{name}: {problem}", Qt.ItemDataRole.ToolTipRole)
            if isinstance(model, QStandardItemModel):
                model.item(row).setEnabled(False)  # shown, never chosen
        # with none available the first greyed entry is what the box shows (it says why)
        self.box.setCurrentIndex(0 if self.box.count() else -1)
        self.box.blockSignals(False)
        self._changed()

    def item_enabled(self, row: int) -> bool:
        model = self.box.model()
        return bool(model.item(row).isEnabled()) if isinstance(model, QStandardItemModel) else True

    def plugin(self) -> Any:
        name = self.box.currentData()
        return self.plugins.get(name) if name else None

    def choose(self, name: str) -> None:
        idx = self.box.findData(name)
        if idx >= 0:
            self.box.setCurrentIndex(idx)

    def _changed(self, *_: object) -> None:
        plugin = self.plugin()
        self.form = None
        host = QWidget()
        lay = QVBoxLayout(host)
        if plugin is None:
            why = "; ".join(f"{n}: {p}" for n, p in sorted(self.unavailable.items()))
            self.description.setText(f"No {self.kind} plugin is available." + (f" Unavailable: {why}" if why else ""))
            lay.addWidget(QLabel("No settings."))
        else:
            self.description.setText(str(getattr(plugin, "description", "") or ""))
            try:
                self.form = PluginForm(plugin.Config)
            except Exception as exc:  # a third-party Config magicgui cannot show: say so, keep going
                lay.addWidget(QLabel(f"This plugin's settings cannot be shown: {exc}"))
            else:
                lay.addWidget(self.form)
                reset = QPushButton("Reset to defaults")
                reset.clicked.connect(lambda: self.form.set_config(plugin.Config()))
                lay.addWidget(reset, 0, Qt.AlignmentFlag.AlignRight)
        lay.addStretch(1)
        self.settings.setWidget(host)
        self.changed.emit()

    def config(self) -> Any:
        """The chosen plugin's Config as the form shows it (validated); ValueError/TypeError if not."""
        plugin = self.plugin()
        return self.form.config() if self.form is not None else plugin.Config()

    # checkpoints ------------------------------------------------------------------------------------
    def plugin_named(self, name: str) -> Any:
        """The listed plugin called ``name``, else the registry's (PluginError if none)."""
        if name in self.plugins:
            return self.plugins[name]
        from ..plugins import get_plugin

        return get_plugin(name, self.kind)

    def plugin_for(self, folder: str | Path) -> Any:
        """The plugin that wrote the checkpoint ``folder``: a listed one first (a plugin a test or
        a session offered), else the registry's; LoadError for a folder that is no checkpoint."""
        name = checkpoint_plugin_name(Path(folder))
        if name in self.plugins:
            return self.plugins[name]
        return plugin_for_checkpoint(folder, self.kind)
