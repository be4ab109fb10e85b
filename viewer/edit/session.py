"""An editing session on one label layer: the brush as a slice-view tool, the clean-up tools,
and undo/redo, each edit announced on the layer's events (slices redraw at once through
``edited``; the 3D surfaces rebuild, in a worker, on ``data`` once a stroke ends).

Qt-free: the window's edit panel holds the controls and hands a session to the slice views as
their ``tool`` (any object with ``press/drag/release/hover(view, ras)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.labels import Label, LabelTable, default_color
from ..model.layer import ImageLayer, LabelLayer
from .history import EditHistory
from .tools import (brush_mask, fill_holes, interpolate_slices, keep_largest_component, remove_islands,
                    voxel_axis_for_normal)

__all__ = ["BrushSettings", "EditSession"]


@dataclass
class BrushSettings:
    """What the brush does. ``mode``: "paint" or "erase"; ``radius_mm``; ``shape``: "disk" (in
    the view's plane) or "sphere"; ``threshold``: (lo, hi) image values, or None; ``over``:
    "all" or "background" (paint only where no label is)."""

    mode: str = "paint"
    radius_mm: float = 3.0
    shape: str = "disk"
    threshold: tuple[float, float] | None = None
    over: str = "all"


class EditSession:
    """Edits of ``layer`` (a LabelLayer); ``image`` (an ImageLayer on the same grid) is what
    threshold-in-brush reads."""

    def __init__(self, layer: LabelLayer, image: ImageLayer | None = None) -> None:
        self.layer = layer
        self.image = image if image is not None and image.data.shape == layer.data.shape else None
        self.history = EditHistory(layer.data)
        self.history.changed.connect(lambda box: self.layer.events.edited.emit(box))
        self.brush = BrushSettings()
        present = [lab.value for lab in layer.data.table]
        self.value = present[0] if present else self.add_label()
        self._last: np.ndarray | None = None

    # labels -------------------------------------------------------------------------------------
    def add_label(self, name: str | None = None) -> int:
        """A new label value (one above the highest in the table) and select it."""
        table: LabelTable = self.layer.data.table
        value = max([lab.value for lab in table] + [0]) + 1
        table.add(Label(value, name or f"label {value}", default_color(value)))
        self.value = value
        return value

    # the brush as a slice-view tool -------------------------------------------------------------
    def press(self, view, ras) -> None:
        self.history.begin_group()
        self._last = None
        self._dab(view, ras)

    def drag(self, view, ras) -> None:
        if ras is None:
            return
        # dabs no further apart than a third of the radius, so a fast stroke leaves no gaps
        if self._last is not None:
            gap = float(np.linalg.norm(np.asarray(ras) - self._last))
            n = int(gap / max(self.brush.radius_mm / 3.0, 1e-3))
            for t in np.linspace(0, 1, n + 2)[1:-1]:
                self._dab(view, self._last + t * (np.asarray(ras) - self._last), draw=False)
        self._dab(view, ras)

    def release(self, view, ras) -> None:
        self.history.end_group(self.brush.mode)
        self._last = None
        self.layer.events.data.emit()  # the stroke is done: surfaces may rebuild

    def hover(self, view, ras) -> None:
        view.show_brush(ras, self.brush.radius_mm if ras is not None else 0.0)

    def _dab(self, view, ras, draw: bool = True) -> None:
        if ras is None:
            return
        b = self.brush
        erase = b.mode == "erase"
        paint_over = [self.value] if erase else ([0] if b.over == "background" else None)
        hit = brush_mask(self.layer.data, ras, b.radius_mm, shape=b.shape, normal_ras=getattr(view, "n", (0, 0, 1)),
                         image=self.image.data if (self.image is not None and b.threshold and not erase) else None,
                         threshold=b.threshold if (self.image is not None and not erase) else None,
                         paint_over=paint_over)
        self._last = np.asarray(ras, float)
        if hit is not None:
            mask, box = hit
            self.history.apply(mask, 0 if erase else self.value, box, b.mode)
        if draw and hasattr(view, "show_brush"):
            view.show_brush(ras, b.radius_mm)

    # clean-up tools (one undo step each) -----------------------------------------------------------
    def tool(self, what: str, axis: int | None = None, min_mm3: float = 0.0):
        """The clean-up ``what`` ("fill", "interpolate", "largest", "islands") split in two: a
        ``compute()`` that only reads (scipy over the whole volume: seconds on a big scan, so the
        window runs it in a worker) and an ``apply(result)`` that records it as one undo step
        (fast; on the UI thread) and returns the voxels changed."""
        data, value = self.layer.data, self.value
        compute, new_value = {
            "fill": (lambda: fill_holes(data, value, axis), value),
            "interpolate": (lambda: interpolate_slices(data, value, 2 if axis is None else axis), value),
            "largest": (lambda: keep_largest_component(data, value), 0),
            "islands": (lambda: remove_islands(data, value, min_mm3), 0),
        }[what]

        def apply(result) -> int:
            mask, box = result
            change = self.history.apply(mask, new_value, box, what)
            self.layer.events.data.emit()
            return change.n_voxels if change else 0

        return compute, apply

    def _run(self, what: str, **kw) -> int:
        compute, apply = self.tool(what, **kw)
        return apply(compute())

    def fill_holes(self, axis: int | None = None) -> int:
        return self._run("fill", axis=axis)

    def keep_largest(self) -> int:
        return self._run("largest")

    def remove_islands(self, min_mm3: float) -> int:
        return self._run("islands", min_mm3=min_mm3)

    def interpolate(self, axis: int) -> int:
        return self._run("interpolate", axis=axis)

    def axis_of_view(self, normal_ras) -> int:
        return voxel_axis_for_normal(self.layer.data.affine, normal_ras)

    # undo -----------------------------------------------------------------------------------------
    def undo(self) -> bool:
        done = self.history.undo() is not None
        if done:
            self.layer.events.data.emit()
        return done

    def redo(self) -> bool:
        done = self.history.redo() is not None
        if done:
            self.layer.events.data.emit()
        return done

    @property
    def dirty(self) -> bool:
        return self.history.dirty
