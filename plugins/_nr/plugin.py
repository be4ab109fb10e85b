"""The plugin object renderer plugins share: fit, render, save, load and owns_checkpoint around
one network.

A renderer plugin is then a ``Config`` (a :class:`~plugins._nr.config.FitConfig` with its own
fields) and a ``build(config, init) -> RendererNet``; see ``plugins/texture`` and ``plugins/dnr``.
Light: torch, the fitting loop and the networks load on the first call that needs them.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from viewer.jobs.progress import Progress
from viewer.model.camera import Camera
from viewer.model.geometry import Mesh
from viewer.model.viewset import Frame, ViewSet
from viewer.plugins import GeometryError, Orbit, RendererBase, TrainedModel

from .config import FitConfig, texture_size_for

__all__ = ["FORMAT", "NeuralRendererPlugin"]

FORMAT = "lucid3d-renderer"  # config.json's "format": a renderer checkpoint of this machinery


class NeuralRendererPlugin(RendererBase):
    """The renderer contract of :mod:`viewer.plugins` around a plugin's ``build``.

    Subclasses set ``name``, ``description``, ``Config`` and implement :meth:`build`.
    """

    Config: ClassVar[type] = FitConfig
    checkpoint_files: ClassVar[tuple[str, ...]] = ("config.json", "model.safetensors", "mesh.npz")

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> Any:
        """The network (a :class:`~plugins._nr.model.RendererNet`) for ``config`` (a Config as a
        dict); ``init`` has data statistics when fitting ({"mean_rgb": (3,) tensor,
        "covered_pixels": int}) and is empty when loading. May fill in data-dependent settings of
        ``config`` in place (:meth:`config_for`)."""
        raise NotImplementedError

    def config_from(self, values: Mapping[str, Any]) -> Any:
        """A Config from a dict, ignoring keys it does not have."""
        names = {f.name for f in fields(self.Config)}
        return self.Config(**{k: v for k, v in values.items() if k in names})

    def config_for(self, config: dict[str, Any], init: Mapping[str, Any]) -> Any:
        """The Config ``build`` makes its network from, with the settings that depend on the data
        filled in, in ``config`` too (so the checkpoint stores them): ``texture_size`` 0 is
        sized to the covered training pixels."""
        cfg = self.config_from(config)
        if getattr(cfg, "texture_size", 1) <= 0:
            config["texture_size"] = cfg.texture_size = texture_size_for(int(init.get("covered_pixels", 1 << 18)))
        return cfg

    def fit(self, views: ViewSet | Sequence[Frame], geometry: Any, config: Any, progress: Progress, *,
            checkpoint_dir: str | Path | None = None,
            sources: Mapping[str, str] | None = None) -> TrainedModel:
        """Fit to the photos of ``views`` (train split; val or test held out) on ``geometry``, a
        triangle mesh; ``sources`` = {"mesh", "mesh_sha256", "scene"} (stored as provenance)."""
        from .fit import fit_renderer

        if not isinstance(geometry, Mesh) or geometry.n_faces == 0:
            raise GeometryError("a neural renderer needs a triangle mesh")
        return fit_renderer(views, geometry, config, progress, plugin=self.name, build=self.build,
                            checkpoint_dir=checkpoint_dir, sources=sources)

    def render(self, model: TrainedModel, camera: Camera, background: Sequence[float] | None = None) -> np.ndarray:
        """(H, W, 3) float32 image in 0..1 of ``camera`` at its own size (row 0 at the top)."""
        from .model import render_image

        return render_image(model, camera, background)

    def orbit(self, model: TrainedModel) -> Orbit:
        """The fly-around fitting chose from the training cameras (``orbit_defaults``), or one
        framing the mesh's (or point cloud's) bounding box for a checkpoint that stored none."""
        o = model.meta.get("orbit") or {}
        b = np.asarray((model.mesh if model.mesh is not None else model.points).bounds(), float).reshape(3, 2)
        return Orbit(center=tuple(map(float, o.get("center", b.mean(1)))),
                     radius=float(o.get("radius", 1.5 * np.linalg.norm(b[:, 1] - b[:, 0]))),
                     up=tuple(map(float, o.get("up", (0.0, 0.0, 1.0)))),
                     elevation=float(o.get("elevation", 20.0)), view_angle=float(o.get("view_angle", 40.0)))

    def save(self, model: TrainedModel, path: str | Path) -> Path:
        from .checkpoint import save_checkpoint

        return save_checkpoint(model, path)

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel:
        from .checkpoint import load_checkpoint

        return load_checkpoint(path, lambda cfg: self.build(dict(cfg), {}), device)

    def owns_checkpoint(self, folder: Path) -> bool:
        from viewer.plugins.checkpoint import stored_config

        return super().owns_checkpoint(folder) and (stored_config(folder) or {}).get("format") == FORMAT
