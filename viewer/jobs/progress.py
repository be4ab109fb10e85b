"""Progress reporting and cancellation for long calls, with no Qt: plugins and headless commands
use it directly; the window's job runner connects its callbacks to Qt signals."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

__all__ = ["Cancelled", "Progress", "TerminalProgress", "SlicePreview", "ImagePreview", "MeshPreview", "Preview"]


@dataclass(frozen=True)
class SlicePreview:
    """A segmenter's prediction on one held-out slice, beside the reference.

    ``prediction`` and ``reference`` (H, W) hold label VALUES (those of the training labels),
    drawn with row 0 at the top; ``pixel_mm`` (row, column) spacing; ``colors`` maps a label
    value to RGB in 0..1 (values it lacks are drawn black); ``case`` names the case.
    """

    case: str
    prediction: np.ndarray
    reference: np.ndarray | None
    pixel_mm: tuple[float, float]
    colors: dict[int, tuple[float, float, float]]


@dataclass(frozen=True)
class ImagePreview:
    """A renderer's image of a held-out view: ``image`` (H, W, 3) uint8, ``target`` the photo
    (same shape) or None, ``view`` its name."""

    view: str
    image: np.ndarray
    target: np.ndarray | None = None


@dataclass(frozen=True)
class MeshPreview:
    """A surface a renderer has learned so far (IDR's zero level set), a
    :class:`~viewer.model.Mesh` in the scene's world frame: the window shows it as a mesh layer,
    each one replacing the one before. ``name`` is the layer's name."""

    name: str
    mesh: object


Preview = Union[SlicePreview, ImagePreview, MeshPreview]


class Cancelled(Exception):
    """Raised inside the working call the moment its job is cancelled."""


class Progress:
    """Handed to a long call; thread-safe. Every report also honours a pending cancel.

    Parameters
    ----------
    on_update : called with (step, total, message); total 0 = unknown.
    on_metrics : called with (step, {name: value}) for curves (loss, val_dice, psnr, ...).
    on_preview : called with a :class:`SlicePreview` or :class:`ImagePreview` to show.
    """

    def __init__(self, on_update: Callable[[float, float, str], None] | None = None,
                 on_metrics: Callable[[float, dict[str, float]], None] | None = None,
                 on_preview: Callable[[Preview], None] | None = None) -> None:
        self._cancel = threading.Event()
        self._on_update, self._on_metrics, self._on_preview = on_update, on_metrics, on_preview
        self.started = time.monotonic()
        self.history: list[tuple[float, dict[str, float]]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def update(self, step: float, total: float = 0, message: str = "") -> None:
        self.check()
        if self._on_update is not None:
            self._on_update(float(step), float(total), message)

    def metrics(self, step: float, **values: float) -> None:
        vals = {k: float(v) for k, v in values.items()}
        self.history.append((float(step), vals))
        if self._on_metrics is not None:
            self._on_metrics(float(step), vals)
        self.check()

    def preview(self, obj: Preview) -> None:
        if not isinstance(obj, (SlicePreview, ImagePreview, MeshPreview)):
            raise TypeError(f"a preview is a SlicePreview, an ImagePreview or a MeshPreview, not {type(obj).__name__}")
        if self._on_preview is not None:
            self._on_preview(obj)


class TerminalProgress(Progress):
    """A tqdm bar on stderr for headless commands; Ctrl-C is the caller's to turn into cancel()."""

    def __init__(self, desc: str = "", disable: bool = False) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, total=None, disable=disable, dynamic_ncols=True, leave=True,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")
        self._last: dict[str, float] = {}
        super().__init__(self._update, self._metrics)

    def _update(self, step: float, total: float, message: str) -> None:
        # shown as a percentage: plugins report steps, windows or fractions alike
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = min(step, total) if total else step
        if message:
            self._bar.set_description(message, refresh=False)
        self._bar.refresh()

    def _metrics(self, step: float, values: dict[str, float]) -> None:
        self._last.update(values)
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in self._last.items()}, refresh=True)

    def close(self) -> None:
        self._bar.close()
