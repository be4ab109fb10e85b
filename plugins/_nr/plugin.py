"""The plugin object renderer plugins share: fit, render, save and load around one network.

A renderer plugin is then a ``Config`` (a :class:`FitConfig` with its own fields) and a
``build(config, init) -> RendererNet``; see ``plugins/texture`` and ``plugins/dnr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from viewer.jobs.progress import Progress
from viewer.model.camera import Camera
from viewer.model.geometry import Mesh
from viewer.model.viewset import Frame, ViewSet

__all__ = ["FitConfig", "NeuralRendererPlugin", "texture_size_for"]


@dataclass
class FitConfig:
    """Settings every neural renderer has; the defaults fit on 2 CPU cores in 10 minutes."""

    size: int = field(default=256, metadata={"help": "training image size: frames whose longer side is larger are "
                                                     "scaled down to it, with their cameras (0 = their own size)"})
    minutes: float = field(default=10.0, metadata={"help": "wall-clock budget (0 = none); the best checkpoint "
                                                           "is kept"})
    iters: int = field(default=100000, metadata={"help": "optimisation steps at most (0 = until the time budget)"})
    batch: int = field(default=2, metadata={"help": "random crops (of different frames) per step"})
    crop: int = field(default=128, metadata={"help": "crop edge in pixels (0 = whole frames)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the network"})
    lr_texture: float = field(default=1e-2, metadata={"help": "Adam learning rate of the texture"})
    lr_decay: float = field(default=0.1, metadata={"help": "learning rates fall exponentially to this fraction "
                                                           "by the end of the budget"})
    val_every: int = field(default=250, metadata={"help": "score the held-out views every N steps"})
    val_views: int = field(default=8, metadata={"help": "held-out views scored while fitting (all at the end)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})


def texture_size_for(covered_pixels: int, lo: int = 64, hi: int = 2048) -> int:
    """A texture edge sized to the data: about 16 covered training pixels per texel of the finest
    level (the nearest power of two, within ``lo..hi``).

    Each texel needs several observations to generalise. Measured (DNR, 100 views of a specular
    globe, 2 CPU cores, 2 minutes): at 128x128 a 512 texture (3 pixels per texel) over-fits, 28.6 dB held
    out, where 256 and 128 reach 34 dB; at 256x256, 256 and 512 are within 0.2 dB.
    """
    s = np.sqrt(max(1, covered_pixels) / 16.0)
    return int(np.clip(2 ** int(np.round(np.log2(s))), lo, hi))


class NeuralRendererPlugin:
    """The renderer contract of :mod:`viewer.plugins` around a plugin's ``build``.

    Subclasses set ``name``, ``description``, ``Config`` and implement :meth:`build`.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "renderer"
    description: ClassVar[str] = ""
    Config: ClassVar[type] = FitConfig

    def build(self, config: dict[str, Any], init: dict[str, Any]):
        """The network for ``config`` (a Config as a dict); ``init`` has data statistics when
        fitting ({"mean_rgb": (3,) tensor, "covered_pixels": int}) and is empty when loading.
        May fill in data-dependent settings of ``config`` in place (a texture sized to the data)."""
        raise NotImplementedError

    def config_from(self, values: dict[str, Any]):
        """A Config from a dict, ignoring keys it does not have."""
        names = {f.name for f in fields(self.Config)}
        return self.Config(**{k: v for k, v in values.items() if k in names})

    def fit(self, views: ViewSet | Sequence[Frame], geometry: Mesh, config: Any, progress: Progress,
            checkpoint_path: str | Path | None = None, mesh_source: str | None = None,
            mesh_source_sha256: str | None = None, scene: str | None = None):
        """Fit to the photos of ``views`` (train split; val or test held out) on ``geometry``."""
        from .fit import fit_renderer

        if not isinstance(geometry, Mesh) or geometry.n_faces == 0:
            raise ValueError("a neural renderer needs a triangle mesh")
        return fit_renderer(views, geometry, config, progress, plugin=self.name, build=self.build,
                            checkpoint_path=checkpoint_path, mesh_source=mesh_source,
                            mesh_source_sha256=mesh_source_sha256, scene=scene)

    def render(self, model, camera: Camera, background: Sequence[float] | None = None) -> np.ndarray:
        """(H, W, 3) float32 image in 0..1 of ``camera`` at its own size (row 0 at the top)."""
        from .model import render_image

        return render_image(model, camera, background)

    def save(self, model, path: str | Path) -> Path:
        from .checkpoint import save_checkpoint

        return save_checkpoint(model, path)

    def load(self, path: str | Path, device: str = "cpu"):
        from .checkpoint import load_checkpoint

        def build(cfg: dict):
            return self.build(dict(cfg), {})

        return load_checkpoint(path, build, device)
