"""NPBG++ (Rakhimov et al. 2022): point descriptors predicted from the photos instead of fitted,
so a scene renders with no per-scene optimisation; the same splatting and renderer as NPBG
(``plugins/npbg``), with view-dependent descriptors (``network.py``).

* ``fit`` aggregates every point's descriptor from the scene's training photos with pretrained
  weights (``pretrained``: a folder from ``main.py pretrain npbgpp``; empty = the small model
  shipped in ``resources/npbgpp``) and writes the checkpoint: with ``minutes`` 0 (the default)
  that is all; with ``minutes`` > 0 the descriptors and the renderer are then fine-tuned per
  scene by the shared fitting loop, as NPBG fits its own.
* ``pretrain`` learns the encoder and renderer across scenes (``pretrain.py``).
* Checkpoints are NPBG's (config.json, model.safetensors, points.npz) and render alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from plugins._nr.config import validate_fit_config
from plugins.npbg import BOUNDS as NPBG_BOUNDS
from plugins.npbg import Config as NPBGConfig
from plugins.npbg import PointRendererPlugin
from viewer.jobs.progress import Progress
from viewer.plugins import Range, TrainedModel

__all__ = ["Config", "NPBGPPPlugin", "PLUGIN"]


@dataclass
class Config(NPBGConfig):
    """Settings of NPBG++; the architecture (channels, U-Net, encoder) comes from the pretrained
    weights."""

    minutes: float = field(default=0.0, metadata={"help": "per-scene fine-tuning budget (0 = none: aggregate the "
                                                          "descriptors from the photos and stop)"})
    pretrained: str = field(default="", metadata={"help": "pretrained weights folder (empty = the shipped model)"})
    encoder_base: int = field(default=16, metadata={"help": "encoder channels at its finest level (pretraining)"})
    sources: int = field(default=6, metadata={"help": "photos aggregated per pretraining step"})
    lr_texture: float = field(default=1e-2, metadata={"help": "Adam learning rate of the descriptors (fine-tuning)"})
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate of the networks"})
    splat_average: bool = field(default=True, metadata={"help": "pretraining: draw each pixel as the mean of its "
                                                                "front points (fitting: as the pretrained "
                                                                "weights were trained)"})

    def validate(self) -> None:
        bounds = {**NPBG_BOUNDS, "encoder_base": Range(1, 256), "sources": Range(1, 64)}
        if self.minutes == 0:  # no fitting: no step limit is needed
            validate_fit_config(type(self)(**{**asdict(self), "minutes": 1.0}), bounds)
        else:
            validate_fit_config(self, bounds)
        if not isinstance(self.pretrained, str) or not isinstance(self.vgg_weights, str):
            raise ValueError("pretrained: must be a folder name")


class NPBGPPPlugin(PointRendererPlugin):
    name = "npbgpp"
    description = "NPBG++: point descriptors predicted from the photos (no per-scene fitting), NPBG's renderer"
    Config = Config

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> Any:
        """A :class:`~plugins.npbgpp.network.SHRendererNet`; when fitting, ``init["start"]`` is the
        network aggregation made (its descriptors and pretrained renderer)."""
        if init.get("start") is not None:
            config["n_points"] = int(init["n_points"])
            return init["start"]
        from .network import SHRendererNet
        from .pretrain import unet_for

        cfg = self.config_from(config)
        if "splat_average" not in config:  # a checkpoint from before the setting: the nearest point
            cfg.splat_average = False
        return SHRendererNet(cfg.n_points, cfg.channels, unet_for(config), cfg.multiscale, cfg.view_dirs,
                             average=cfg.splat_depth if cfg.splat_average else None)

    def fit(self, views: Any, geometry: Any, config: Any, progress: Progress, *,
            checkpoint_dir: str | Path | None = None, sources: Mapping[str, str] | None = None) -> TrainedModel:
        """Aggregate the descriptors from the training photos (and fine-tune with ``minutes`` > 0)."""
        from .fit import fit_npbgpp

        return fit_npbgpp(self, views, geometry, config, progress, checkpoint_dir=checkpoint_dir, sources=sources)

    def pretrain(self, scenes: Sequence[tuple[str, Any, Any]], config: Any, progress: Progress, *,
                 out: str | Path, heldout: Sequence[tuple[str, Any, Any]] = (),
                 resume: str | Path | None = None) -> dict[str, Any]:
        """Learn the encoder and renderer across ``scenes`` ((name, ViewSet, PointCloud) each) and
        write the pretrained weights into ``out``; returns the metrics. ``resume``: pretrained
        weights to continue from (their architecture is kept)."""
        from .fit import pretrain_scenes

        return pretrain_scenes(self, scenes, config, progress, out, resume)


PLUGIN = NPBGPPPlugin()
