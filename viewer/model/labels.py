"""Integer label volumes and their label tables (name, colour, visibility, opacity)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal

from .volume import Volume

__all__ = ["Label", "LabelTable", "LabelMap", "default_color"]


def default_color(value: int) -> tuple[float, float, float]:
    """A distinct, stable colour for label ``value`` (golden-ratio hue walk), RGB in 0..1."""
    h = (value * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(h, 0.75, 1.0)


@dataclass
class Label:
    """One label: its integer value in the map and how it is shown."""

    value: int
    name: str
    color: tuple[float, float, float]
    visible: bool = True
    opacity: float = 1.0


def _label_from_dict(row: object, i: int) -> Label:
    def bad(what: str) -> ValueError:
        return ValueError(f"label {i}: {what}")

    if not isinstance(row, dict):
        raise bad("must be an object with value, name and color")
    value, name, color = row.get("value"), row.get("name"), row.get("color")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise bad(f"value must be a non-negative integer, got {value!r}")
    if not isinstance(name, str):
        raise bad(f"name must be text, got {name!r}")
    if (not isinstance(color, (list, tuple)) or len(color) != 3
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0.0 <= c <= 1.0 for c in color)):
        raise bad(f"color must be 3 numbers within 0..1, got {color!r}")
    visible, opacity = row.get("visible", True), row.get("opacity", 1.0)
    if not isinstance(visible, bool):
        raise bad(f"visible must be true or false, got {visible!r}")
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not 0.0 <= opacity <= 1.0:
        raise bad(f"opacity must be a number within 0..1, got {opacity!r}")
    return Label(value, name, tuple(float(c) for c in color), visible, float(opacity))  # type: ignore[arg-type]


class LabelTable:
    """Ordered labels by value; ``changed`` fires with the value whenever one is edited."""

    changed = Signal(int)

    def __init__(self, labels: list[Label] | None = None) -> None:
        self._labels: dict[int, Label] = {}
        for lab in labels or []:
            self._labels[int(lab.value)] = lab

    def __iter__(self):
        return iter(sorted(self._labels.values(), key=lambda lab: lab.value))

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, value: int) -> bool:
        return int(value) in self._labels

    def __getitem__(self, value: int) -> Label:
        return self._labels[int(value)]

    def add(self, label: Label) -> None:
        self._labels[int(label.value)] = label
        self.changed.emit(int(label.value))

    def set(self, value: int, **changes) -> None:
        """Edit one label: ``table.set(3, color=(1, 0, 0), opacity=0.5)``; checks, stores, emits."""
        lab = self._labels[int(value)]
        for key, val in changes.items():
            if key == "opacity" and not 0.0 <= float(val) <= 1.0:
                raise ValueError(f"opacity must be within 0..1, got {val}")
            if key == "color":
                val = tuple(float(c) for c in val)
                if len(val) != 3 or not all(0.0 <= c <= 1.0 for c in val):
                    raise ValueError(f"colour must be 3 values within 0..1, got {val}")
            if not hasattr(lab, key) or key == "value":
                raise AttributeError(f"labels have no editable field {key!r}")
            setattr(lab, key, val)
        self.changed.emit(int(value))

    @classmethod
    def for_values(cls, values, names: dict[int, str] | None = None) -> "LabelTable":
        """A table for the non-zero ``values`` with default names/colours (0 is background)."""
        names = names or {}
        return cls([
            Label(int(v), names.get(int(v), f"label {int(v)}"), default_color(int(v)))
            for v in values if int(v) != 0
        ])

    def to_list(self) -> list[dict]:
        return [dict(value=l.value, name=l.name, color=list(l.color), visible=l.visible,
                     opacity=l.opacity) for l in self]

    @classmethod
    def from_list(cls, rows: list[dict]) -> "LabelTable":
        """The inverse of :meth:`to_list`; every field is checked (ValueError names the row)."""
        if not isinstance(rows, list):
            raise ValueError(f"a label table is a list of labels, got {type(rows).__name__}")
        return cls([_label_from_dict(r, i) for i, r in enumerate(rows)])


@dataclass(eq=False)
class LabelMap:
    """An integer label array on a voxel grid (usually the grid of an image ``Volume``).

    Parameters
    ----------
    array : (I, J, K) integer labels, 0 = background.
    affine : (4, 4) voxel index -> RAS mm, as for ``Volume``.
    table : names and colours of the labels present.
    """

    array: np.ndarray
    affine: np.ndarray
    table: LabelTable = field(default_factory=LabelTable)
    name: str = ""
    source: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a label map is 3D, got shape {self.array.shape}")
        if self.array.dtype.kind not in "iub":
            raise ValueError(f"labels must be integers, got {self.array.dtype}")
        self.affine = np.asarray(self.affine, float).reshape(4, 4)
        if len(self.table) == 0:
            self.table = LabelTable.for_values(self.present_values())

    @classmethod
    def from_volume(cls, vol: Volume, names: dict[int, str] | None = None) -> "LabelMap":
        """Reinterpret an integer-valued volume as labels (refuses fractional values)."""
        a = np.asarray(vol.array)
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                raise ValueError("not a label volume: it holds non-integer values")
            a = a.astype(np.int32)
        elif a.dtype.kind not in "iub":
            raise ValueError(f"not a label volume: dtype {a.dtype}")
        values = np.unique(a)
        if values.size > 1000:
            raise ValueError(f"not a label volume: {values.size} distinct values")
        return cls(a, vol.affine, LabelTable.for_values(values, names), name=vol.name,
                   source=vol.source, meta=dict(vol.meta))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    def present_values(self) -> np.ndarray:
        return np.unique(self.array)

    def voxel_counts(self) -> dict[int, int]:
        """Voxels per non-zero label value present in the array."""
        a = np.asarray(self.array)
        if a.dtype.kind in "iu" and a.size and a.min() >= 0 and a.max() < 65536:
            counts = np.bincount(a.ravel(order="K"))
            return {int(v): int(c) for v, c in enumerate(counts) if v and c}
        vals, counts = np.unique(a, return_counts=True)
        return {int(v): int(c) for v, c in zip(vals, counts) if v}

    def volumes_ml(self) -> dict[int, float]:
        """Volume of each label in millilitres (voxel count x |det(affine)| / 1000)."""
        from .volume import voxel_volume_ml

        ml = voxel_volume_ml(self.affine)
        return {v: c * ml for v, c in self.voxel_counts().items()}
