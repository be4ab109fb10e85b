"""A settings form built from a plugin's ``Config`` dataclass (magicgui), and read back.

Each dataclass field becomes one magicgui widget chosen from its type (int -> spin box,
float -> float spin box, bool -> check box, str -> line edit); its help text
(``field(metadata={"help": ...})``, see :func:`viewer.plugins.config_help`) is the tooltip.
Optional field metadata refines the widget: ``min``, ``max``, ``step`` and ``choices``.
Nothing here knows a particular plugin.

Examples::

    form = PluginForm(PLUGIN.Config)
    form.set_config(PLUGIN.Config(minutes=2.0))
    cfg = form.config()          # a new PLUGIN.Config with the values shown
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from magicgui.widgets import create_widget
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from ..plugins import config_help

__all__ = ["PluginForm", "field_widget"]

_BIG = 1_000_000  # spin-box bounds when the field gives none (magicgui's default is 999)


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


_ACRONYMS = {"tta": "TTA", "amp": "AMP", "sw": "SW", "lr": "LR", "cpu": "CPU", "gpu": "GPU",
             "ct": "CT", "mr": "MR", "mri": "MRI", "roi": "ROI", "id": "ID"}


def _label(name: str) -> str:
    """``sw_batch_size`` -> "SW batch size"."""
    words = [_ACRONYMS.get(w, w) for w in name.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _float_step(value: float) -> float:
    """One tenth of the default's leading decimal (3e-3 -> 1e-4, 0.25 -> 0.01, 10 -> 0.1)."""
    if not value:
        return 0.01
    return min(0.1, 10.0 ** (math.floor(math.log10(abs(value))) - 1))


def _device_choices() -> list[str]:
    # no torch import on the UI thread just for this: the NVIDIA driver's folder tells
    return ["cpu", "cuda"] if Path("/proc/driver/nvidia").exists() else ["cpu"]


def field_widget(f, annotation: Any, help_text: str = ""):
    """The magicgui widget for one dataclass field, with its help as tooltip."""
    value = _default(f)
    meta = dict(f.metadata or {})
    options: dict[str, Any] = {}
    widget_type = None
    choices = meta.get("choices")
    if choices is None and f.name == "device" and annotation is str:
        choices = _device_choices()
        if value not in choices:
            choices = [value, *choices]
    if choices is not None:
        widget_type = "ComboBox"
        options["choices"] = list(choices)
    elif annotation is int:
        lo = meta.get("min", 0 if (value or 0) >= 0 else -_BIG)
        options.update(min=lo, max=meta.get("max", _BIG), step=meta.get("step", 1))
    elif annotation is float:
        lo = meta.get("min", 0.0 if (value or 0.0) >= 0 else -float(_BIG))
        options.update(min=lo, max=meta.get("max", float(_BIG)),
                       step=meta.get("step", _float_step(float(value or 0.0))))
    w = create_widget(value=value, annotation=annotation, name=f.name, label=_label(f.name),
                      widget_type=widget_type, options=options)
    if annotation is float and value and hasattr(w.native, "setDecimals"):
        # two significant digits below the default's: 3e-3 shows as 0.00300, 2.5e-4 fits
        w.native.setDecimals(max(2, 2 - math.floor(math.log10(abs(float(value))))))
    if help_text:
        w.tooltip = help_text
        if hasattr(w, "native"):
            w.native.setStatusTip(help_text)
    return w


class PluginForm(QWidget):
    """The form of one ``Config`` dataclass; :meth:`config` returns a filled instance.

    The magicgui widgets sit in a ``QFormLayout`` (label column aligned, one row per field);
    ``widgets`` maps field name -> magicgui widget.
    """

    def __init__(self, config_cls: type, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not is_dataclass(config_cls):
            raise TypeError(f"{config_cls!r} is not a dataclass")
        self.config_cls = config_cls
        hints = typing.get_type_hints(config_cls)
        helps = config_help(config_cls)
        self._fields = [f for f in fields(config_cls) if f.init]
        self.widgets: dict[str, Any] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for f in self._fields:
            help_text = helps.get(f.name, "")
            w = field_widget(f, hints.get(f.name, type(_default(f))), help_text)
            if hasattr(w, "text") and type(w).__name__ == "CheckBox":
                w.text = ""  # the row label names it
            label = QLabel(_label(f.name))
            label.setToolTip(help_text)
            form.addRow(label, w.native)
            self.widgets[f.name] = w
        self.form = form

    def widget(self, name: str):
        """The magicgui widget of field ``name`` (``.value`` reads and writes it)."""
        return self.widgets[name]

    def values(self) -> dict[str, Any]:
        return {name: w.value for name, w in self.widgets.items()}

    def config(self) -> Any:
        """A new ``Config`` with the values shown, checked by the plugin's own ``validate()`` (the
        same bounds a command line or a checkpoint's config.json meets): ValueError naming the field."""
        cfg = self.config_cls(**self.values())
        check = getattr(cfg, "validate", None)
        if check is not None:
            check()
        return cfg

    def set_config(self, config: Any) -> None:
        for name, w in self.widgets.items():
            w.value = getattr(config, name)

    def set_values(self, **values: Any) -> None:
        for name, value in values.items():
            self.widgets[name].value = value
