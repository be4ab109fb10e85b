"""Neural Point-Based Graphics (Aliev, Sevastopolsky, Kolos, Ulyanov, Lempitsky 2020): a learnable
descriptor per point, drawn by a pure-torch z-buffer at five scales (``plugins/_points/splat.py``,
no OpenGL), and a U-Net that takes the coarser rasters at its encoder levels and makes the image;
descriptors and U-Net are fitted per scene.

* Descriptors: ``channels`` per point (8 by default); the first three start at the point's colour
  when the cloud has colours. Their Adam learning rate is ``lr_texture``.
* Rasters: per scale, the mean descriptor of the pixel's front points (``splat_average``, beyond
  the paper: those within ``splat_depth`` pixel footprints of the nearest point's depth) or the
  nearest point's alone (the paper's z-buffer), and a coverage channel; the full scale also
  carries the pixel's view direction (``view_dirs``) for view-dependent effects. With several
  points per pixel the z-buffer's winner is a matter of chance, a per-pixel noise in the image
  the U-Net cannot undo; the mean is what a photo's pixel sees (held-out +1.8 dB on an unseen
  airplane, +2.0 dB on the globe at 5 minutes: docs/PERFORMANCE.md).
* Shading network (``shade``, beyond the paper): under lights fixed in the world, highlights move
  with the view, and a descriptor can only bake the ones the training views saw (on a specular
  capture nearly all the held-out error). As DNR's shading network does from the mesh's normals,
  one network shared by all points maps the drawn point's normal (the cloud file's own, else
  estimated from the points: ``plugins/_points/normals.py``) and the view direction to
  ``shade`` channels of the full-scale input: spherical Gaussians of the mirror direction
  (learned directions, three widths each; ``plugins/_points/network.py``), the shape of a
  highlight.
* Pixel coverage (``coverage``, beyond the paper): along a silhouette a camera's pixel blends
  object and background by how much of it the object covers; the z-buffer says only that some
  point fell in the pixel. With ``coverage`` s > 1 the full-scale input also carries each pixel's
  share of s x s sub-cells a point projects into (``plugins/_points/splat.py``'s ``pixel_share``).
  The default (0) decides from the photos and the cloud: 3 when the photos blend the silhouette
  (as DNR's) and the cloud fills >= 0.9 of the sub-cells inside the object, else none (a sparser
  cloud makes the share its sampling noise). Held-out +1.2 to +2.1 dB on three unseen blended
  captures with dense clouds; docs/PERFORMANCE.md.
* Renderer: the U-Net of the DNR machinery (``unet_base`` channels at the finest levels), with
  the coarse rasters concatenated at its encoder levels (``multiscale``, as in the paper) or only
  the full-resolution raster (the plain variant). It predicts colour and coverage.
* Loss: L1 of the composite over the background (the shared loop) + ``ssim_weight`` (1 - SSIM)
  (MONAI), + ``vgg_weight`` VGG-19 perceptual loss only with ``vgg_weights`` a local file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from plugins._nr.config import FitConfig, validate_fit_config
from plugins._nr.plugin import NeuralRendererPlugin
from viewer.jobs.progress import Progress
from viewer.plugins import Range, TrainedModel

__all__ = ["BOUNDS", "Config", "NPBGPlugin", "PLUGIN", "PointRendererPlugin"]

BOUNDS = {"splat_depth": Range(0, 100), "channels": Range(1, 64), "shade": Range(0, 256), "point_dropout": Range(0, 0.95), "alpha_prior": Range(0, 100), "coverage": Range(0, 8), "unet_base": Range(1, 256), "unet_levels": Range(2, 6),
          "unet_convs": Range(1, 8), "n_points": Range(0, 20_000_000), "ssim_weight": Range(0, 100),
          "vgg_weight": Range(0, 100)}


@dataclass
class Config(FitConfig):
    """Settings of NPBG; the defaults fit in 10 minutes on 2 CPU cores."""

    channels: int = field(default=8, metadata={"help": "descriptor channels per point"})
    unet_base: int = field(default=16, metadata={"help": "U-Net channels at the finest level"})
    unet_levels: int = field(default=5, metadata={"help": "U-Net levels = raster scales (full, 1/2, 1/4, ...)"})
    unet_convs: int = field(default=1, metadata={"help": "3x3 convolutions per U-Net level and direction"})
    multiscale: bool = field(default=True, metadata={"help": "the coarser rasters join the U-Net's encoder "
                                                             "levels (else only the full-resolution raster)"})
    view_dirs: bool = field(default=True, metadata={"help": "the full-resolution raster carries the view "
                                                            "direction"})
    shade: int = field(default=48, metadata={"help": "channels of the shading network (0 = off): highlight lobes "
                                                     "(16 directions x 3 widths) of the view direction mirrored "
                                                     "about the point's normal"})
    cloud_normals: bool = field(default=True, metadata={"help": "with shade: the normals the cloud's file carries "
                                                                  "(COLMAP's fused.ply, capture's points.ply); "
                                                                  "off, or a file without: estimated from the points"})
    alpha_prior: float = field(default=4.0, metadata={"help": "logit the points drawn add to the coverage "
                                                              "(subtracted where none is): keeps a small "
                                                              "object's fit from collapsing to the background"})
    splat_average: bool = field(default=True, metadata={"help": "draw each pixel as the mean descriptor of its "
                                                                "front points (within splat_depth of the "
                                                                "nearest) rather than the nearest point alone"})
    splat_depth: float = field(default=8.0, metadata={"help": "with splat_average: depth tolerance of a pixel's "
                                                              "front points, in pixel footprints (the width a "
                                                              "pixel covers at that depth)"})
    coverage: int = field(default=0, metadata={"help": "N > 1: the full-resolution raster also carries each "
                                                       "pixel's share of N x N sub-cells a point falls in (where "
                                                       "a silhouette crosses it); 1 = off; 0 = decided: 3 "
                                                       "when the photos blend the silhouette and the cloud "
                                                       "is dense enough, else off"})
    point_dropout: float = field(default=0.0, metadata={"help": "share of the points left out of each training "
                                                                "crop's splat (against memorising the views)"})
    colour_skip: bool = field(default=False, metadata={"help": "descriptor channels 0..2 are the colour and the "
                                                               "U-Net adds a correction (it starts as the "
                                                               "points' colours; measured worse, off)"})
    ssim_weight: float = field(default=0.2, metadata={"help": "weight of 1 - SSIM beside the L1 (0 = off)"})
    vgg_weight: float = field(default=0.1, metadata={"help": "weight of the VGG-19 loss (with vgg_weights)"})
    vgg_weights: str = field(default="", metadata={"help": "a local VGG-19 state dict (torchvision keys) for the "
                                                           "perceptual loss; empty = off (nothing downloads)"})
    n_points: int = field(default=0, metadata={"help": "points of the cloud (set by fitting)"})
    batch: int = field(default=4, metadata={"help": "random crops (of different frames) per step"})
    crop: int = field(default=64, metadata={"help": "crop edge in pixels, a multiple of 16 (0 = whole frames)"})
    lr_texture: float = field(default=5e-2, metadata={"help": "Adam learning rate of the descriptors"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_fit_config(self, BOUNDS)
        if not isinstance(self.vgg_weights, str):
            raise ValueError(f"vgg_weights: must be a file name, got {self.vgg_weights!r}")


def unet_channels(base: int, levels: int) -> tuple[int, ...]:
    """base, base, 2 base, 4 base, 4 base, ... (as DNR's): the full and half scales dominate the cost."""
    return tuple(int(base) * min(4, 2 ** max(0, i - 1)) for i in range(int(levels)))


class PointRendererPlugin(NeuralRendererPlugin):
    """The renderer contract around a :class:`plugins._points.network.PointRendererNet`: fit from
    a point cloud, checkpoints with ``points.npz`` (shared by NPBG and NPBG++)."""

    geometry = "points"
    checkpoint_files = ("config.json", "model.safetensors", "points.npz")

    def extra_loss(self, cfg: Any):
        from plugins._points.network import image_loss

        return image_loss(float(cfg.ssim_weight), float(cfg.vgg_weight), str(cfg.vgg_weights or ""),
                          str(cfg.device))

    def fit(self, views: Any, geometry: Any, config: Any, progress: Progress, *,
            checkpoint_dir: str | Path | None = None, sources: Mapping[str, str] | None = None) -> TrainedModel:
        """Fit to the photos of ``views`` drawn from ``geometry``, a PointCloud in the cameras'
        world frame; ``sources`` = {"points", "points_sha256", "scene"} (stored as provenance)."""
        from plugins._points.fit import fit_points

        return fit_points(views, geometry, config, progress, plugin=self.name, build=self.build,
                          checkpoint_dir=checkpoint_dir, sources=sources, extra_loss=self.extra_loss(config))

    def render(self, model: TrainedModel, camera: Any, background: Sequence[float] | None = None) -> Any:
        from plugins._points.fit import render_points

        return render_points(model, camera, background)

    def learned_points(self, model: TrainedModel) -> tuple[Any, Any]:
        """(the cloud, its (N, C) descriptors as float32 numpy): what the panel colours by."""
        import torch

        net = model.net.module if hasattr(model.net, "module") else model.net
        return model.points, net.texture.descriptors.detach().to("cpu", torch.float32).numpy()


# what a stored config without these keys was fitted with (checkpoints from before they existed)
_LEGACY = {"shade": 0, "alpha_prior": 0.0, "splat_average": False, "coverage": 1}


class NPBGPlugin(PointRendererPlugin):
    name = "npbg"
    description = "Neural Point-Based Graphics: a learned descriptor per point, 5-scale z-buffer splats + U-Net"
    Config = Config

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> Any:
        """A :class:`~plugins._points.network.PointRendererNet` (torch loads here, on first use)."""
        from plugins._points.network import PointRendererNet

        if init:  # fitting: the cloud sizes the descriptor table, and the checkpoint stores it
            config["n_points"] = int(init["n_points"])
        cfg = self.config_from(config)
        if not init:  # loading: a stored config may predate some settings
            for k, v in _LEGACY.items():
                if k not in config:
                    setattr(cfg, k, v)
        return PointRendererNet(cfg.n_points, cfg.channels, unet_channels(cfg.unet_base, cfg.unet_levels),
                                cfg.multiscale, cfg.view_dirs, cfg.unet_convs, init.get("colors"),
                                init.get("mean_rgb"), colour_skip=cfg.colour_skip, shade=cfg.shade,
                                normals=init.get("normals"), alpha_prior=cfg.alpha_prior,
                                average=cfg.splat_depth if cfg.splat_average else None,
                                share=cfg.coverage if cfg.coverage > 1 else 0)


PLUGIN = NPBGPlugin()
