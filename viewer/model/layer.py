"""Layers: one piece of data plus how it is displayed. Setters check, store, emit.

Each display property is declared once as a :class:`Prop`; assigning it validates the value,
stores it and emits ``layer.events.<name>`` (a psygnal signal) only when the value changed.
Views subscribe to these events; nothing here knows about Qt or VTK.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any, Callable

import numpy as np
from psygnal import Signal, SignalGroup

from .geometry import Mesh, PointCloud
from .labels import LabelMap
from .viewset import ViewSet
from .volume import Volume

__all__ = [
    "Layer", "ImageLayer", "LabelLayer", "MeshLayer", "PointsLayer", "ViewSetLayer", "layer_for",
    "COLORMAPS", "RENDER_MODES",
]

COLORMAPS = ("gray", "inverted", "hot", "heat", "viridis", "bone", "jet")
"""``heat`` is ``hot`` with opacity rising from 0: an overlay (uncertainty, probability) that leaves
low values see-through."""
RENDER_MODES = ("off", "ct_bone", "ct_soft", "mip", "mr_default")


class Prop:
    """A validated, evented layer property."""

    def __init__(self, default: Any, check: Callable[[Any], Any] | None = None) -> None:
        self.default = default
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.attr = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj, self.attr, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.check is not None:
            value = self.check(value)
        old = getattr(obj, self.attr, self.default)
        if _same(old, value):
            return
        setattr(obj, self.attr, value)
        getattr(obj.events, self.name).emit(value)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) if np.shape(a) == np.shape(b) else False
    except Exception:
        return a is b


def _number(v: Any) -> float:
    """A real number: not a bool, not text ("5" and True would otherwise pass float())."""
    if isinstance(v, (bool, np.bool_, str, bytes)):
        raise ValueError(f"must be a number, got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, got {v!r}") from None


def _unit(v: Any) -> float:
    v = _number(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"must be within 0..1, got {v}")
    return v


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}; got {v!r}")
        return str(v)
    return check


def _positive(v: Any) -> float:
    v = _number(v)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"must be a positive number, got {v}")
    return v


def _finite(v: Any) -> float:
    v = _number(v)
    if not np.isfinite(v):
        raise ValueError(f"must be finite, got {v}")
    return v


def _bool(v: Any) -> bool:
    """Only a real boolean: ``bool("no")`` is True, so a scene file's "no" must not pass."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"must be true or false, got {v!r}")


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be text, got {v!r}")
    return v


def _color(v: Any) -> tuple[float, float, float]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        raise ValueError(f"colour must be 3 values within 0..1, got {v!r}")
    c = tuple(float(x) for x in v)
    if len(c) != 3 or not all(0.0 <= x <= 1.0 for x in c):
        raise ValueError(f"colour must be 3 values within 0..1, got {v}")
    return c  # type: ignore[return-value]


class LayerEvents(SignalGroup):
    name = Signal(str)
    visible = Signal(bool)
    opacity = Signal(float)
    # image
    window = Signal(float)
    level = Signal(float)
    colormap = Signal(str)
    render_mode = Signal(str)
    # labels
    outline = Signal(bool)
    show_3d = Signal(bool)
    table = Signal(int)
    # mesh / points
    color = Signal(object)
    show_texture = Signal(bool)
    point_size = Signal(float)
    # view sets (posed photos)
    frustum_scale = Signal(float)
    show_thumbnails = Signal(bool)
    selected_frame = Signal(int)
    # 4D images: the time frame shown (its voxels arrive later, with ``data``)
    frame = Signal(int)
    # the data itself was replaced (e.g. a label map edited or a prediction refined)
    data = Signal()
    # part of a label map was edited (the box of voxel slices): slices redraw at once; the 3D
    # surfaces wait for ``data``, which the editor sends when a stroke ends
    edited = Signal(object)


#: file and folder names that say nothing about what they hold (a capture's ``mesh.obj``,
#: COLMAP's ``sparse/0``): a layer from one is named with its folder too
GENERIC_NAMES = frozenset({"mesh", "model", "scene", "points", "points3d", "cloud", "pointcloud", "transforms",
                           "sparse", "images", "0", "dense", "fused", "output", "out", "data", "image", "volume",
                           "label", "labels", "seg", "mask"})


def readable_name(name: str, source: str | None) -> str:
    """``name``, or ``folder/name`` when the name alone is generic (``capture-globe/mesh.obj``);
    folders named generically are skipped too (``garden/sparse/0`` reads ``garden``)."""
    if not name or not source or str(source).startswith("demo:"):
        return name
    stem = name.split(".", 1)[0].lower()
    if stem not in GENERIC_NAMES:
        return name
    path = Path(str(source))
    folders = [q.name for q in (path.parents if path.name == name else [path, *path.parents]) if q.name]
    folder = next((f for f in folders if f.split(".", 1)[0].lower() not in GENERIC_NAMES), None)
    if folder is None:
        return name
    return f"{folder}/{name}" if "." in name else folder  # a file keeps its name; a folder is replaced


class Layer:
    """Base of all layers: a name, visibility and opacity, and ``events``."""

    kind = "layer"
    name = Prop("", _text)
    visible = Prop(True, _bool)
    opacity = Prop(1.0, _unit)

    def __init__(self, data: Any, name: str = "", **display: Any) -> None:
        self.events = LayerEvents()
        self.data = data
        self.name = name or readable_name(getattr(data, "name", ""), getattr(data, "source", None)) or self.kind
        for key, value in display.items():
            if not isinstance(getattr(type(self), key, None), Prop):
                raise TypeError(f"{type(self).__name__} has no display property {key!r}")
            setattr(self, key, value)

    @property
    def source(self) -> str | None:
        return getattr(self.data, "source", None)

    def display_state(self) -> dict[str, Any]:
        """Every display property as plain JSON-able values (for scene files)."""
        out = {}
        for klass in type(self).__mro__:
            for key, val in vars(klass).items():
                if isinstance(val, Prop) and key not in out:
                    v = getattr(self, key)
                    out[key] = list(v) if isinstance(v, tuple) else v
        return out

    def apply_display_state(self, state: dict[str, Any]) -> None:
        """Set each display property ``state`` names (unknown keys are ignored).

        Raises ValueError naming the first property whose value does not pass its check.
        """
        for key, value in state.items():
            if isinstance(getattr(type(self), key, None), Prop):
                try:
                    setattr(self, key, value)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{key}: {exc}") from None

    def bounds_world(self) -> np.ndarray:
        """(2, 3) min/max world corner."""
        b = np.asarray(self.data.bounds(), float).reshape(3, 2)
        return b.T.copy()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class _TimeFrame(Prop):
    """The time frame of a 4D image shown, 0 .. ``n_frames - 1``."""

    def __set__(self, obj: Any, value: Any) -> None:
        n = obj.n_frames
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < n:
            raise ValueError(f"frame must be a whole number within 0..{n - 1}, got {value!r}")
        super().__set__(obj, int(value))


class ImageLayer(Layer):
    """A scalar ``Volume`` drawn in grey levels (window/level) and optionally volume-rendered.

    A 4D file's volume holds one time frame: ``n_frames`` says how many the file has, setting
    ``frame`` asks for another (``events.frame``), and whoever reads it (the window, in a worker,
    with :meth:`read_frame`) hands the voxels back through :meth:`show_frame`.
    """

    kind = "image"
    frame = _TimeFrame(0)
    window = Prop(1.0, _positive)
    level = Prop(0.0, _finite)
    colormap = Prop("gray", _one_of(COLORMAPS))
    render_mode = Prop("off", _one_of(RENDER_MODES))
    data: Volume

    def __init__(self, data: Volume, name: str = "", **display: Any) -> None:
        if "window" not in display:
            lo, hi = data.quick_range()
            if data.modality == "CT":
                lo, hi = -160.0, 240.0  # soft tissue: what a radiologist opens a CT with
            display.setdefault("window", max(hi - lo, 1e-6))
            display.setdefault("level", (hi + lo) / 2.0)
        super().__init__(data, name, **display)

    def bounds_world(self) -> np.ndarray:
        return self.data.bounds_world()

    @property
    def n_frames(self) -> int:
        return int(self.data.meta.get("frames", 1)) if callable(self.data.meta.get("read_frame")) else 1

    def read_frame(self, k: int) -> np.ndarray:
        """The voxels of time frame ``k`` from the file (slow: call it in a worker)."""
        return self.data.meta["read_frame"](int(k))

    def show_frame(self, k: int, array: np.ndarray) -> bool:
        """Show frame ``k``'s voxels (from :meth:`read_frame`) if it is still the one asked for;
        False (and nothing changes) for a frame the user has since moved past."""
        if int(k) != self.frame:
            return False
        if array.shape != self.data.shape:
            raise ValueError(f"frame {k} has shape {array.shape}, the volume {self.data.shape}")
        self.data.array = array
        self.data.meta["frame"] = int(k)
        self.events.data.emit()
        return True


class LabelLayer(Layer):
    """A ``LabelMap`` drawn over the slices (filled or outline) and as 3D surfaces."""

    kind = "labels"
    outline = Prop(False, _bool)
    show_3d = Prop(True, _bool)
    data: LabelMap

    def __init__(self, data: LabelMap, name: str = "", **display: Any) -> None:
        display.setdefault("opacity", 0.5)
        super().__init__(data, name, **display)
        data.table.changed.connect(self.events.table.emit)

    def bounds_world(self) -> np.ndarray:
        return Volume(np.empty(self.data.shape, np.uint8), self.data.affine).bounds_world()


class MeshLayer(Layer):
    kind = "mesh"
    color = Prop((0.85, 0.85, 0.85), _color)
    show_texture = Prop(True, _bool)
    data: Mesh


class PointsLayer(Layer):
    kind = "points"
    color = Prop((1.0, 1.0, 1.0), _color)
    point_size = Prop(3.0, _positive)
    data: PointCloud


class _FrameIndex(Prop):
    """A frame of the layer's view set by index, or -1 for none."""

    def __set__(self, obj: Any, value: Any) -> None:
        v = int(value)
        n = len(obj.data.frames)
        if v != value or not -1 <= v < n:
            raise ValueError(f"frame index must be -1 (none) or within 0..{n - 1}, got {value!r}")
        super().__set__(obj, v)


class ViewSetLayer(Layer):
    """Posed photos (a :class:`ViewSet`): each camera drawn as a frustum, its photo on the far face.

    ``frustum_scale`` is the depth of the drawn image plane in world units (default:
    :func:`default_frustum_scale`); ``color`` colours the training cameras' frusta (held-out ones use a fixed
    blue); ``selected_frame`` is the frame the 3D view looks through (-1: none).
    """

    kind = "viewset"
    color = Prop((1.0, 0.62, 0.15), _color)
    frustum_scale = Prop(1.0, _positive)
    show_thumbnails = Prop(True, _bool)
    selected_frame = _FrameIndex(-1)
    data: ViewSet

    def __init__(self, data: ViewSet, name: str = "", **display: Any) -> None:
        display.setdefault("frustum_scale", default_frustum_scale(data))
        super().__init__(data, name, **display)

    @property
    def frame(self):
        """The selected :class:`Frame`, or None."""
        i = self.selected_frame
        return self.data.frames[i] if 0 <= i < len(self.data.frames) else None


def _look_at_distance(views: ViewSet) -> float | None:
    """Median distance from the cameras to what they look at: the point nearest all their
    optical axes (least squares) for a rig around an object, else the sparse points' centre;
    None when neither is known (parallel axes and no points)."""
    frames = views.frames[:: max(1, len(views.frames) // 1000)]
    c = np.array([f.camera.center for f in frames], float)
    d = np.array([f.camera.forward for f in frames], float)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]  # removes the along-axis part
    a, b = proj.sum(0), np.einsum("nij,nj->i", proj, c)
    target = None
    if len(frames) > 1 and np.linalg.eigvalsh(a)[0] > 0.05 * len(frames):  # axes that cross somewhere
        target = np.linalg.solve(a, b)
    elif views.points is not None and views.points.n_points:
        target = np.asarray(views.points.points, float).mean(0)
    if target is None:
        return None
    dist = float(np.median(np.linalg.norm(c - target, axis=1)))
    return dist if np.isfinite(dist) and dist > 0 else None


def default_frustum_scale(views: ViewSet) -> float:
    """A frustum depth that reads well: 1/20 of the extent of the cameras and points, at most
    0.6 of the median distance between neighbouring cameras (so that dense rigs do not turn into
    a wall of photos) and at most 6 % of the cameras' distance to what they look at (so that the
    photos in front do not hide the object); for a scene with one camera position, a tenth of
    its distance from the origin (else 1)."""
    b = np.asarray(views.bounds(), float).reshape(3, 2)
    extent = float(np.linalg.norm(b[:, 1] - b[:, 0]))
    if extent > 1e-9 and np.isfinite(extent):
        scale = extent / 20.0
        c = np.array([f.camera.center for f in views.frames[:: max(1, len(views.frames) // 1000)]])
        if len(c) > 1:
            d = np.linalg.norm(c[:, None] - c[None], axis=-1)
            np.fill_diagonal(d, np.inf)
            nearest = np.min(d, axis=1)
            nearest = nearest[np.isfinite(nearest) & (nearest > 1e-9 * extent)]
            if len(nearest):
                scale = min(scale, 0.6 * float(np.median(nearest)))
            far = _look_at_distance(views)
            if far is not None:
                scale = min(scale, 0.06 * far)
        return scale
    if views.frames:
        d = float(np.linalg.norm(views.frames[0].camera.center))
        if d > 1e-9:
            return d / 10.0
    return 1.0


_LAYER_FOR: dict[type, type[Layer]] = {
    Volume: ImageLayer, LabelMap: LabelLayer, Mesh: MeshLayer, PointCloud: PointsLayer,
    ViewSet: ViewSetLayer,
}


def layer_for(data: Any, **display: Any) -> Layer:
    """The layer class that shows ``data`` (type -> layer registry)."""
    for klass, layer_cls in _LAYER_FOR.items():
        if isinstance(data, klass):
            return layer_cls(data, **display)
    raise TypeError(f"no layer shows {type(data).__name__}")
