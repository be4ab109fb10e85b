"""Slice-view tools that place measurements: drag a ruler, or drag out a spherical region.

Like the brush, each is an object with ``press/drag/release/hover(view, ras)`` that the window
sets as a slice view's ``tool``; the result is added to ``scene.measurements``.
"""

from __future__ import annotations

import numpy as np

from ..model.layer import ImageLayer
from ..model.measure import Region, Ruler
from ..model.scene import Scene

__all__ = ["RulerTool", "RegionTool"]


class RulerTool:
    """Press at one end, release at the other: a ruler in mm."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._start: np.ndarray | None = None
        self.count = 0

    def press(self, view, ras) -> None:
        self._start = np.asarray(ras, float)

    def drag(self, view, ras) -> None:
        pass

    def release(self, view, ras) -> None:
        if self._start is None or ras is None:
            return
        end = np.asarray(ras, float)
        if np.linalg.norm(end - self._start) > 1e-6:
            self.count += 1
            self.scene.add_measurement(Ruler(tuple(self._start), tuple(end), f"ruler {self.count}"))
        self._start = None

    def hover(self, view, ras) -> None:
        pass


class RegionTool:
    """Press at the centre, release at the rim: a sphere whose image statistics are measured on
    the selected (else the bottom-most) image."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._center: np.ndarray | None = None
        self.count = 0

    def press(self, view, ras) -> None:
        self._center = np.asarray(ras, float)

    def drag(self, view, ras) -> None:
        if self._center is not None and ras is not None and hasattr(view, "show_brush"):
            view.show_brush(self._center, float(np.linalg.norm(np.asarray(ras) - self._center)))

    def release(self, view, ras) -> None:
        if self._center is None or ras is None:
            return
        radius = float(np.linalg.norm(np.asarray(ras, float) - self._center))
        if hasattr(view, "show_brush"):
            view.show_brush(None)
        if radius > 1e-3:
            image = self.scene.selected if isinstance(self.scene.selected, ImageLayer) else \
                next((l for l in self.scene if isinstance(l, ImageLayer)), None)
            self.count += 1
            region = Region(tuple(self._center), radius, f"region {self.count}")
            if image is not None:
                region.measure(image.data)
            self.scene.add_measurement(region)
        self._center = None

    def hover(self, view, ras) -> None:
        pass
