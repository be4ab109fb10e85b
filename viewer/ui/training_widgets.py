"""Small pieces the training panels share: curves, the time-left clock, images as pixmaps
(:mod:`viewer.ui.training_bar` puts them together).

Images here are numpy arrays with row 0 at the top: (H, W, 3) RGB, uint8 or float in 0..1.
"""

from __future__ import annotations

import gc
import importlib
import threading
import time
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage, QPixmap

__all__ = ["format_left", "ProgressClock", "CurvePlot", "to_uint8", "to_pixmap", "heat_colors", "psnr",
           "side_by_side", "warm_imports", "warm_torch"]


def format_left(seconds: float) -> str:
    """``125`` -> "about 2 min 5 s left"."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"about {s} s left"
    if s < 3600:
        return f"about {s // 60} min {s % 60:02d} s left"
    return f"about {s // 3600} h {(s % 3600) // 60:02d} min left"


class ProgressClock:
    """Elapsed time and time left of a job from its reported fraction done.

    The clock starts when the first step ends (that one is slow: imports, warm-up): a job reports
    a small first fraction (e.g. ``update(1, 1000)``) as its start marker, and the next report
    starts the clock; before one second of steady progress it says "estimating".
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.monotonic()
        self._first: tuple[float, float] | None = None
        self.frac = 0.0
        self._t = self.started

    def report(self, frac: float) -> None:
        now = time.monotonic()
        frac = min(max(float(frac), 0.0), 1.0)
        if self._first is None and frac > self.frac and self.frac > 0.0:
            self._first = (now, frac)
        self.frac, self._t = frac, now

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.started)
        return f"{s // 60}:{s % 60:02d} elapsed"

    def left(self) -> str:
        if self._first is None:
            return ""
        t0, f0 = self._first
        if self.frac >= 0.999:
            return "finishing"
        rate = (self.frac - f0) / max(self._t - t0, 1e-6)
        return format_left((1.0 - self.frac) / rate) if rate > 0 and self._t - t0 > 1.0 else "estimating time left"


_COLORS = [(255, 160, 60), (80, 200, 255), (140, 230, 120), (230, 110, 200), (240, 230, 90)]


class CurvePlot(pg.PlotWidget):
    """Live curves of the metrics whose names pass ``accept`` (one curve per name)."""

    def __init__(self, ylabel: str, accept: Callable[[str], bool], parent=None) -> None:
        super().__init__(parent)
        self.accept = accept
        self.setMinimumHeight(110)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLabel("bottom", "step")
        self.setLabel("left", ylabel)
        self.addLegend(offset=(-8, 8))
        self.getPlotItem().setMenuEnabled(False)
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.dirty = False

    def add(self, step: float, values: dict[str, float]) -> None:
        """Note new points (drawn at the next :meth:`redraw`)."""
        for name, v in values.items():
            if self.accept(name) and np.isfinite(v):
                xs, ys = self.data.setdefault(name, ([], []))
                xs.append(float(step))
                ys.append(float(v))
                self.dirty = True

    def redraw(self) -> None:
        self.dirty = False
        for name, (xs, ys) in self.data.items():
            if name not in self.curves:
                c = _COLORS[len(self.curves) % len(_COLORS)]
                self.curves[name] = self.plot([], [], pen=pg.mkPen(c, width=2), symbol="o", symbolSize=4,
                                              symbolBrush=c, name=name.replace("_", " "))
            self.curves[name].setData(xs, ys)

    def clear_data(self) -> None:
        self.data.clear()
        for curve in self.curves.values():
            self.removeItem(curve)
        self.curves.clear()
        legend = self.getPlotItem().legend
        if legend is not None:
            legend.clear()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) float 0..1 or uint8 -> contiguous (H, W, 3) uint8."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def to_pixmap(image: np.ndarray) -> QPixmap:
    """An (H, W, 3) image (row 0 at the top) as a QPixmap (copied: the array may go)."""
    a = to_uint8(image)
    h, w = a.shape[:2]
    qimg = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())


def heat_colors(values: np.ndarray, vmax: float = 0.25) -> np.ndarray:
    """(H, W) non-negative values -> (H, W, 3) uint8 "hot" colours (black, red, yellow, white),
    saturating at ``vmax``."""
    t = np.clip(np.asarray(values, np.float32) / max(vmax, 1e-12), 0, 1)[..., None]
    rgb = np.concatenate([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in 0..1 (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse <= 0 else float(-10.0 * np.log10(mse))


def side_by_side(images: list[np.ndarray], height: int = 150, gap: int = 6) -> np.ndarray:
    """Images scaled to one ``height`` and laid out left to right on black: (height, W, 3) uint8."""
    from PIL import Image

    tiles = []
    for img in images:
        a = to_uint8(img)
        h, w = a.shape[:2]
        tw = max(1, round(w * height / h))
        tiles.append(np.asarray(Image.fromarray(a).resize((tw, height), Image.Resampling.BILINEAR)))
    width = sum(t.shape[1] for t in tiles) + gap * max(len(tiles) - 1, 0)
    out = np.zeros((height, max(width, 1), 3), np.uint8)
    x = 0
    for t in tiles:
        out[:, x:x + t.shape[1]] = t
        x += t.shape[1] + gap
    return out


_WARMED: set[str] = set()
_WARM_LOCK = threading.Lock()


def warm_imports(modules: tuple[str, ...]) -> None:
    """Import ``modules`` (in a worker) with the garbage collector paused, take one optimizer
    step when torch is among them (its first step imports more), then freeze everything out of
    the collector. Idempotent per module and thread-safe.

    The UI's long stalls while a model trains are Python's full collections over the ~500k
    objects these imports create (docs/PERFORMANCE.md, UI stall). ``gc.freeze`` (O(1), no collection) makes
    later collections, automatic or a training loop's own, scan only what training creates.
    """
    with _WARM_LOCK:
        todo = [m for m in modules if m not in _WARMED]
        if not todo:
            return
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for name in todo:
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass
            if "torch" in todo:
                import torch

                p = torch.zeros(1, requires_grad=True)
                opt = torch.optim.AdamW([p], lr=1e-3)
                (2 * p).sum().backward()
                opt.step()
                del opt, p
        finally:
            gc.freeze()
            if was_enabled:
                gc.enable()
            _WARMED.update(todo)


def warm_torch() -> None:
    """:func:`warm_imports` of torch: what every renderer needs first."""
    warm_imports(("torch",))
