"""The scene: ordered layers, the linked cursor, and events views subscribe to."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from psygnal import Signal

from .layer import ImageLayer, LabelLayer, Layer

__all__ = ["Scene"]


class Scene:
    """Ordered layers (drawing order: first is bottom) and a shared RAS cursor.

    Events
    ------
    layer_inserted(index, layer), layer_removed(index, layer), layers_moved(),
    cursor(ndarray (3,) RAS mm), selection(layer or None).
    """

    layer_inserted = Signal(int, object)
    layer_removed = Signal(int, object)
    layers_moved = Signal()
    cursor_changed = Signal(object)
    selection = Signal(object)
    measurements_changed = Signal()

    def __init__(self) -> None:
        self.measurements: list = []  # Ruler / Region (viewer.model.measure), RAS mm
        self._layers: list[Layer] = []
        self._cursor = np.zeros(3)
        self._selected: Layer | None = None

    # layers --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers))

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i: int) -> Layer:
        return self._layers[i]

    def index(self, layer: Layer) -> int:
        return self._layers.index(layer)

    def add(self, layer: Layer, index: int | None = None) -> Layer:
        """Insert a layer (on top by default) with a name unique in the scene."""
        names = {l.name for l in self._layers}
        base, n = layer.name, 2
        while layer.name in names:
            layer.name = f"{base} [{n}]"
            n += 1
        first_volume = not any(isinstance(l, (ImageLayer, LabelLayer)) for l in self._layers)
        index = len(self._layers) if index is None else int(index)
        self._layers.insert(index, layer)
        self.layer_inserted.emit(index, layer)
        if first_volume and isinstance(layer, (ImageLayer, LabelLayer)):
            self.cursor = layer.bounds_world().mean(0)
        self.selected = layer
        return layer

    def remove(self, layer: Layer) -> None:
        i = self._layers.index(layer)
        del self._layers[i]
        if self._selected is layer:
            self.selected = self._layers[-1] if self._layers else None
        self.layer_removed.emit(i, layer)

    def clear(self) -> None:
        for layer in reversed(self._layers):
            self.remove(layer)

    def move(self, layer: Layer, index: int) -> None:
        """Move ``layer`` to position ``index`` in the drawing order."""
        index = max(0, min(int(index), len(self._layers) - 1))
        self._layers.remove(layer)
        self._layers.insert(index, layer)
        self.layers_moved.emit()

    def of_kind(self, kind: type) -> list:
        return [l for l in self._layers if isinstance(l, kind)]

    @property
    def selected(self) -> Layer | None:
        return self._selected

    @selected.setter
    def selected(self, layer: Layer | None) -> None:
        if layer is not None and layer not in self._layers:
            raise ValueError("can only select a layer of this scene")
        if layer is not self._selected:
            self._selected = layer
            self.selection.emit(layer)

    # measurements ---------------------------------------------------------------------------
    def add_measurement(self, m) -> None:
        self.measurements.append(m)
        self.measurements_changed.emit()

    def remove_measurement(self, m) -> None:
        if m in self.measurements:
            self.measurements.remove(m)
            self.measurements_changed.emit()

    def clear_measurements(self) -> None:
        if self.measurements:
            self.measurements.clear()
            self.measurements_changed.emit()

    # cursor -------------------------------------------------------------------------------
    @property
    def cursor(self) -> np.ndarray:
        """The linked crosshair position, RAS mm, shape (3,)."""
        return self._cursor.copy()

    @cursor.setter
    def cursor(self, ras) -> None:
        ras = np.asarray(ras, dtype=float).reshape(3)
        if not np.all(np.isfinite(ras)):
            raise ValueError("cursor must be finite")
        if np.array_equal(ras, self._cursor):
            return
        self._cursor = ras
        self.cursor_changed.emit(ras.copy())

    def bounds_world(self) -> np.ndarray | None:
        """(2, 3) union of all layers' bounds, or None for an empty scene."""
        boxes = [l.bounds_world() for l in self._layers]
        if not boxes:
            return None
        return np.stack([np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)])

    def reference_image(self) -> ImageLayer | LabelLayer | None:
        """The bottom-most image (else label) layer: it defines slice geometry and stepping."""
        for klass in (ImageLayer, LabelLayer):
            for layer in self._layers:
                if isinstance(layer, klass):
                    return layer
        return None
