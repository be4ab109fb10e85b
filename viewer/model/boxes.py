"""Detection boxes: axis-aligned boxes in RAS millimetres with a score and an optional label, and
the layer that shows them (outlines where a slice view's plane cuts them, wireframes in 3D).

A box is ``[r0, a0, s0, r1, a1, s1]``, its min corner then its max corner, as ``cases.json`` and
``main.py detect`` write them. Nothing here knows about Qt or VTK.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from psygnal import Signal

from .layer import _LAYER_FOR, Layer, LayerEvents, Prop, _bool, _unit

__all__ = ["Boxes", "BoxesLayer", "score_color", "box_problem"]


def box_problem(box: Any) -> str | None:
    """Why ``box`` is not 6 finite numbers with its min corner below its max corner, or None."""
    if isinstance(box, (str, bytes)) or not hasattr(box, "__len__") or len(box) != 6:
        return f"a box is 6 numbers [r0, a0, s0, r1, a1, s1], got {box!r}"
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
           or not math.isfinite(float(v)) for v in box):
        return f"a box's corners are finite numbers, got {list(box)!r}"
    if any(box[a] >= box[a + 3] for a in range(3)):
        return f"a box's min corner comes first and is below its max corner on every axis, got {list(box)}"
    return None


def score_color(score: float) -> tuple[float, float, float]:
    """The colour of a score in 0..1: blue (0) through yellow (0.5) to red (1), so the likeliest
    boxes stand out on grey CT and the doubtful ones recede."""
    s = float(np.clip(score, 0.0, 1.0))
    stops = ((0.0, (0.25, 0.55, 1.0)), (0.5, (1.0, 0.9, 0.2)), (1.0, (1.0, 0.15, 0.1)))
    for (s0, c0), (s1, c1) in zip(stops, stops[1:]):
        if s <= s1:
            t = (s - s0) / (s1 - s0)
            return tuple(float(a + t * (b - a)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return stops[-1][1]


class Boxes:
    """N boxes: ``corners`` (N, 6) float RAS mm, ``scores`` (N,) in 0..1, ``labels`` (N names, ""
    for none). ``source`` and ``name`` as for other data; ``meta`` for anything else."""

    def __init__(self, corners: Sequence[Sequence[float]] | np.ndarray = (), scores: Iterable[float] | None = None,
                 labels: Iterable[str] | None = None, name: str = "boxes", source: str | None = None,
                 meta: dict | None = None) -> None:
        corners = np.asarray(corners, float).reshape(-1, 6) if len(corners) else np.zeros((0, 6))
        for i, box in enumerate(corners):
            problem = box_problem(list(box))
            if problem:
                raise ValueError(f"box {i + 1}: {problem}")
        n = len(corners)
        scores = np.ones(n) if scores is None else np.asarray(list(scores), float).reshape(-1)
        if len(scores) != n:
            raise ValueError(f"{len(scores)} scores for {n} boxes")
        if n and (not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1):
            raise ValueError("scores must lie within 0..1")
        labels = [""] * n if labels is None else [str(l) for l in labels]
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} boxes")
        self.corners, self.scores, self.labels = corners, scores, labels
        self.name, self.source, self.meta = name, source, dict(meta or {})

    def __len__(self) -> int:
        return len(self.corners)

    @property
    def centers(self) -> np.ndarray:
        """(N, 3) centre of each box, RAS mm."""
        return (self.corners[:, :3] + self.corners[:, 3:]) / 2.0

    @property
    def sizes(self) -> np.ndarray:
        """(N, 3) edge lengths of each box, mm."""
        return self.corners[:, 3:] - self.corners[:, :3]

    def bounds(self) -> tuple[float, ...]:
        """(x0, x1, y0, y1, z0, z1) around every box (pyvista's order); a point at 0 when empty."""
        if not len(self):
            return (0.0,) * 6
        lo, hi = self.corners[:, :3].min(0), self.corners[:, 3:].max(0)
        return tuple(float(v) for pair in zip(lo, hi) for v in pair)

    def to_list(self) -> list[dict[str, Any]]:
        """``[{"box": [...], "score": s, "label": name}, ...]`` (label left out when empty): what
        ``main.py detect`` prints and scene files keep."""
        out = []
        for box, score, label in zip(self.corners, self.scores, self.labels):
            d: dict[str, Any] = {"box": [float(v) for v in box], "score": float(score)}
            if label:
                d["label"] = label
            out.append(d)
        return out

    @classmethod
    def from_list(cls, items: Any, **kwargs: Any) -> "Boxes":
        """The inverse of :meth:`to_list`; also takes a detector's ``detect`` result. ValueError
        naming the first bad entry."""
        if not isinstance(items, list):
            raise ValueError("boxes must be a list of {box, score, label}")
        corners, scores, labels = [], [], []
        for i, d in enumerate(items):
            if not isinstance(d, dict) or "box" not in d:
                raise ValueError(f"box {i + 1}: must be an object with 'box' (and 'score', 'label')")
            problem = box_problem(d["box"])
            if problem:
                raise ValueError(f"box {i + 1}: {problem}")
            score = d.get("score", 1.0)
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
                raise ValueError(f"box {i + 1}: score must be a number within 0..1, got {score!r}")
            label = d.get("label", "")
            if not isinstance(label, str):
                raise ValueError(f"box {i + 1}: label must be text, got {label!r}")
            corners.append([float(v) for v in d["box"]])
            scores.append(float(score))
            labels.append(label)
        return cls(corners, scores, labels, **kwargs)


class BoxesEvents(LayerEvents):
    min_score = Signal(float)
    show_scores = Signal(bool)
    selected_box = Signal(int)


class _BoxIndex(Prop):
    """A box of the layer by index, or -1 for none."""

    def __set__(self, obj: Any, value: Any) -> None:
        n = len(obj.data)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not -1 <= value < n:
            raise ValueError(f"box index must be -1 (none) or within 0..{n - 1}, got {value!r}")
        super().__set__(obj, int(value))


class BoxesLayer(Layer):
    """:class:`Boxes` drawn coloured by score (:func:`score_color`): outlines where a slice view's
    plane cuts them, wireframes in 3D, each with its score as text (``show_scores``). Boxes scoring
    below ``min_score`` are hidden; ``selected_box`` is drawn thicker (-1: none)."""

    kind = "boxes"
    min_score = Prop(0.0, _unit)
    show_scores = Prop(True, _bool)
    selected_box = _BoxIndex(-1)
    data: Boxes

    def __init__(self, data: Boxes, name: str = "", **display: Any) -> None:
        super().__init__(data, name)
        # the layer's own signals too; nothing has connected to the base group yet
        self.events = BoxesEvents()
        for key, value in display.items():
            if not isinstance(getattr(type(self), key, None), Prop):
                raise TypeError(f"{type(self).__name__} has no display property {key!r}")
            setattr(self, key, value)

    def shown(self) -> np.ndarray:
        """Indices of the boxes drawn: those scoring at least ``min_score``."""
        return np.nonzero(self.data.scores >= self.min_score - 1e-12)[0]


_LAYER_FOR[Boxes] = BoxesLayer  # layer_for(Boxes(...)) -> BoxesLayer
