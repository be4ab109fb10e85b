"""What a method plugin is, and what every caller (the command line, the panels, the benchmarks)
may pass it and read back. Nothing here imports torch, Qt or VTK.

Segmenter (``kind = "segmenter"``)::

    model = plugin.train(cases, config, progress, checkpoint_dir=DIR, sources=[...])
    labels, uncertainty = plugin.predict(model, volume, progress, tta=False)   # settings={...}: Config fields
    problem = plugin.check_volume(model, volume)      # None, or why this scan cannot be segmented
    plugin.save(model, DIR); model = plugin.load(DIR, device="cpu")

Renderer (``kind = "renderer"``)::

    model = plugin.fit(views, mesh, config, progress, checkpoint_dir=DIR, sources={...})
    image = plugin.render(model, camera, background)   # (H, W, 3) float in 0..1
    plugin.save(model, DIR); model = plugin.load(DIR, device="cpu")

Classifier (``kind = "classifier"``)::

    model = plugin.train(cases, config, progress, checkpoint_dir=DIR, sources=[...])   # ImageCases
    result = plugin.classify(model, volume)      # {"label": name, "probabilities": {name: p, ...}}
    heat = plugin.saliency(model, volume)        # a Volume on ``volume``'s exact grid, or None
    plugin.save(model, DIR); model = plugin.load(DIR, device="cpu")

Detector (``kind = "detector"``)::

    model = plugin.train(cases, config, progress, checkpoint_dir=DIR, sources=[...])   # ImageCases
    found = plugin.detect(model, volume, min_score)   # [{"box": [r0, a0, s0, r1, a1, s1], "score": s}]
    plugin.save(model, DIR); model = plugin.load(DIR, device="cpu")

All: ``name``, ``kind``, ``description``, ``Config`` (a dataclass whose fields have defaults that
work on a laptop CPU, ``metadata["help"]`` per field, and ``validate()``), ``owns_checkpoint(DIR)``.
A trained model is a :class:`TrainedModel`: callers read ``plugin``, ``config`` and ``metrics``
and hand the object back to the plugin for everything else. While working, a plugin reports
through :class:`~viewer.jobs.progress.Progress`: ``update``, ``metrics`` (curves) and ``preview``
with a :class:`~viewer.jobs.progress.SlicePreview` or :class:`~viewer.jobs.progress.ImagePreview`.

:class:`SegmenterBase` and :class:`RendererBase` give the optional parts a default, so a plugin
writes only what it has (``docs/PLUGINS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from ..jobs.progress import Progress
from ..model import LabelMap, Volume

__all__ = ["Case", "load_case", "TrainedModel", "SegmenterPlugin", "RendererPlugin", "SegmenterBase",
           "RendererBase", "Orbit", "KINDS", "GEOMETRIES", "GeometryError", "checkpoint_plugin_name", "ImageCase", "Box",
           "ClassifierPlugin", "DetectorPlugin", "ClassifierBase", "DetectorBase"]

KINDS = ("segmenter", "renderer", "classifier", "detector")
GEOMETRIES = ("mesh", "points", "none")


class GeometryError(ValueError):
    """What ``fit`` raises when the ``geometry`` it was given cannot be fitted (an empty mesh, a
    cloud with NaN coordinates or out of every camera's view): callers then name the geometry's
    file rather than the scene. A ValueError, so callers that catch those keep working."""
"""What a renderer's ``fit`` takes as ``geometry``: a Mesh, a PointCloud, or None."""


@dataclass
class Case:
    """One training case: an image and its label map on the same grid.

    ``image.array`` (I, J, K) and ``labels.array`` (I, J, K) share the affine (voxel -> RAS mm).
    """

    image: Volume
    labels: LabelMap
    name: str = ""

    def __post_init__(self) -> None:
        import numpy as np

        if self.image.shape != self.labels.shape:
            raise ValueError(f"image {self.image.shape} and labels {self.labels.shape} differ in shape")
        if not np.allclose(self.image.affine, self.labels.affine, atol=1e-3):
            raise ValueError("image and labels lie on different grids (their affines differ)")


def load_case(image_path: str | Path, label_path: str | Path, name: str | None = None) -> Case:
    """An image file and its label file as a training Case; one-line LoadErrors for bad pairs
    (not a volume, empty labels, a label file that is not integer, grids that differ)."""
    import numpy as np

    from ..io import load_path
    from ..model.errors import LoadError

    img = load_path(image_path)
    if not isinstance(img, Volume):
        raise LoadError(image_path, "not a volume")
    lab = load_path(label_path, as_labels=True)
    if not np.any(np.asarray(lab.array)):
        raise LoadError(label_path, "the label volume is empty (all background)")
    try:
        return Case(img, lab, name=name if name is not None else Path(image_path).name)
    except ValueError as exc:
        raise LoadError(label_path, f"does not match {Path(image_path).name}: {exc}") from None


Box = tuple[float, float, float, float, float, float]
"""A box in RAS millimetres: (r0, a0, s0, r1, a1, s1), its min corner then its max corner."""


@dataclass
class ImageCase:
    """One classification or detection training case (a row of a ``cases.json`` manifest).

    ``label``: its class name. ``boxes``: what it holds in RAS mm (:data:`Box`); an empty list
    means nothing (no lesion), None means not said (a manifest of labels alone).
    """

    image: Volume
    label: str
    boxes: list[Box] | None = None
    name: str = ""


@dataclass(frozen=True)
class Orbit:
    """Where a fly-around of a fitted scene goes (``render --orbit``, the learned view's start):
    cameras on a circle of ``radius`` mm about ``center`` (RAS/world), at ``elevation`` degrees
    above the plane normal to ``up``, each with a ``view_angle`` degree field of view."""

    center: tuple[float, float, float]
    radius: float
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    elevation: float = 20.0
    view_angle: float = 40.0


@runtime_checkable
class TrainedModel(Protocol):
    """What a caller may read of a trained or loaded model; the rest is the plugin's own.

    ``plugin``: the name of the plugin that made it. ``config``: its settings as stored in the
    checkpoint (a dict). ``metrics``: what training measured (curves, best scores, seconds,
    ``stopped_by``); keys a command prints are listed in ``docs/PLUGINS.md``.
    """

    plugin: str
    config: Mapping[str, Any]
    metrics: Mapping[str, Any]


@runtime_checkable
class SegmenterPlugin(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]  # "segmenter"
    description: ClassVar[str]
    Config: ClassVar[type]

    def train(self, cases: Sequence[Case], config: Any, progress: Progress, *,
              checkpoint_dir: str | Path | None = None,
              sources: Sequence[Mapping[str, str]] = ()) -> TrainedModel:
        """Train on ``cases``; with ``checkpoint_dir`` the best model so far is kept there while
        training (written atomically). ``sources`` (one dict per case: image, image_sha256, label,
        label_sha256) is stored in the checkpoint as provenance."""

    def predict(self, model: TrainedModel, volume: Volume, progress: Progress, *,
                tta: bool = False, settings: Mapping[str, Any] | None = None) -> tuple[LabelMap, Volume | None]:
        """Labels on ``volume``'s own grid and, when the method has one, an uncertainty map
        (float32, 0 = certain) on the same grid; ``tta`` adds test-time augmentation.
        ``settings`` (optional: callers pass it only when they have some): fields of the plugin's
        ``Config`` that apply at inference (e.g. ``{"crf": True}``), over the checkpoint's for this
        call; a ValueError ``"field: problem"`` for one the Config lacks or refuses."""

    def check_volume(self, model: TrainedModel, volume: Volume) -> str | None:
        """Why ``model`` cannot segment ``volume`` (e.g. too many voxels at its spacing), or None."""

    def save(self, model: TrainedModel, path: str | Path) -> Path: ...

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel: ...

    def owns_checkpoint(self, folder: Path) -> bool:
        """True if ``folder`` holds one of this plugin's checkpoints and nothing else (so
        ``--overwrite`` may replace it)."""


@runtime_checkable
class RendererPlugin(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]  # "renderer"
    description: ClassVar[str]
    Config: ClassVar[type]
    geometry: ClassVar[str]  # "mesh", "points" or "none": what fit's ``geometry`` is

    def fit(self, views: Any, geometry: Any, config: Any, progress: Progress, *,
            checkpoint_dir: str | Path | None = None,
            sources: Mapping[str, str] | None = None) -> TrainedModel:
        """Fit to the photos ``views`` (a ViewSet: train split fitted, val/test held out) of
        ``geometry`` (a Mesh or PointCloud in the cameras' world frame). ``sources`` (mesh,
        mesh_sha256, scene) is stored as provenance, and lets a fit reuse what an earlier fit into
        ``checkpoint_dir`` computed from the same mesh file."""

    def render(self, model: TrainedModel, camera: Any, background: Sequence[float] | None = None) -> Any:
        """(H, W, 3) float image in 0..1 for a :class:`~viewer.model.camera.Camera`, composited
        over ``background`` (default: the training scene's)."""

    def orbit(self, model: TrainedModel) -> Orbit | None:
        """Where to fly around the fitted scene, or None if the model does not know its extent."""

    def save(self, model: TrainedModel, path: str | Path) -> Path: ...

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel: ...

    def owns_checkpoint(self, folder: Path) -> bool: ...


@runtime_checkable
class ClassifierPlugin(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]  # "classifier"
    description: ClassVar[str]
    Config: ClassVar[type]

    def train(self, cases: Sequence[ImageCase], config: Any, progress: Progress, *,
              checkpoint_dir: str | Path | None = None,
              sources: Sequence[Mapping[str, str]] = ()) -> TrainedModel:
        """Learn the cases' labels (and from their boxes, when every case has them and the
        method can use them); ``sources`` (one dict per case: image, image_sha256) is provenance."""

    def classify(self, model: TrainedModel, volume: Volume) -> dict[str, Any]:
        """``{"label": name, "probabilities": {name: p, ...}}``, the probabilities summing to 1."""

    def saliency(self, model: TrainedModel, volume: Volume) -> Volume | None:
        """Where the decision comes from: float32 on ``volume``'s exact grid (shape and affine),
        higher = more, or None if the method has no map."""

    def save(self, model: TrainedModel, path: str | Path) -> Path: ...

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel: ...

    def owns_checkpoint(self, folder: Path) -> bool: ...


@runtime_checkable
class DetectorPlugin(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]  # "detector"
    description: ClassVar[str]
    Config: ClassVar[type]

    def train(self, cases: Sequence[ImageCase], config: Any, progress: Progress, *,
              checkpoint_dir: str | Path | None = None,
              sources: Sequence[Mapping[str, str]] = ()) -> TrainedModel:
        """Learn to find the cases' boxes (every case has a list, empty when it holds nothing)."""

    def detect(self, model: TrainedModel, volume: Volume, min_score: float = 0.5) -> list[dict[str, Any]]:
        """``[{"box": [r0, a0, s0, r1, a1, s1], "score": s}, ...]`` in RAS mm, best first, every
        score at least ``min_score`` (0..1)."""

    def save(self, model: TrainedModel, path: str | Path) -> Path: ...

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel: ...

    def owns_checkpoint(self, folder: Path) -> bool: ...


def checkpoint_plugin_name(folder: Path) -> str | None:
    """The ``plugin`` a checkpoint folder's config.json names, or None (no readable config)."""
    from ..model.errors import LoadError
    from .config import read_checkpoint_json

    try:
        cfg = read_checkpoint_json(Path(folder) / "config.json")
    except LoadError:
        return None
    name = cfg.get("plugin") if isinstance(cfg, dict) else None
    return name if isinstance(name, str) else None


class _Base:
    """Defaults shared by every kind."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the files a checkpoint folder of this plugin holds (``owns_checkpoint``)
    checkpoint_files: ClassVar[tuple[str, ...]] = ("config.json", "model.safetensors")
    #: order of preference among methods of a kind: the highest is what the panels show first
    #: and what a command uses when no method is named (ties: by name)
    priority: ClassVar[int] = 0

    def owns_checkpoint(self, folder: Path) -> bool:
        from ..io.guards import only_files

        folder = Path(folder)
        return (folder.is_dir() and only_files(folder, lambda n: n in self.checkpoint_files)
                and checkpoint_plugin_name(folder) == self.name)


class SegmenterBase(_Base):
    """A segmenter's optional parts; subclasses write ``train``, ``predict``, ``save``, ``load``."""

    kind: ClassVar[str] = "segmenter"

    def check_volume(self, model: TrainedModel, volume: Volume) -> str | None:
        return None


class RendererBase(_Base):
    """A renderer's optional parts; subclasses write ``fit``, ``render``, ``save``, ``load``."""

    kind: ClassVar[str] = "renderer"
    #: what ``fit`` needs beside the photos: "mesh" (a triangle Mesh), "points" (a PointCloud)
    #: or "none" (the method learns the geometry itself; ``geometry`` is None). The command line
    #: asks for ``--mesh``/``--points`` and the panels offer layers of that kind from it.
    geometry: ClassVar[str] = "mesh"

    def orbit(self, model: TrainedModel) -> Orbit | None:
        return None

    def learned_volume(self, model: TrainedModel, resolution: int = 128) -> Volume | None:
        """A field the model learned over the scene as a :class:`~viewer.model.Volume` in the
        world frame (IDR: the signed distance, its zero level set the surface); the panel opens
        it as an image layer. None: no such field."""
        return None

    def learned_points(self, model: TrainedModel) -> tuple[Any, Any] | None:
        """(the PointCloud the model renders, its (N, C) learned descriptors as a numpy array), for
        a point renderer; the panel colours the points by them. None: nothing per point."""
        return None


class ClassifierBase(_Base):
    """A classifier's optional parts; subclasses write ``train``, ``classify``, ``save``, ``load``."""

    kind: ClassVar[str] = "classifier"

    def saliency(self, model: TrainedModel, volume: Volume) -> Volume | None:
        return None


class DetectorBase(_Base):
    """A detector's optional parts; subclasses write ``train``, ``detect``, ``save``, ``load``."""

    kind: ClassVar[str] = "detector"
