"""Deferred Neural Rendering (Thies, Zollhöfer, Nießner 2019): a learned neural texture on the
mesh's uv atlas, sampled per pixel through the rasterized uv map, and a U-Net that turns the
sampled features into the image.

* Neural texture: ``channels`` features per texel, a Laplacian pyramid of ``levels`` levels
  (``texture_size``, /2, /4, ...), each sampled bilinearly and summed.
* View dependence (as in the paper): features 3..11 are multiplied by the 9 real spherical
  harmonics (bands 0-2) of the pixel's viewing direction (world frame, camera -> surface).
* Shading network (``shade``): under lights fixed in the world, highlights are a function of
  the surface normal and the view direction, the same for every texel; SH of bands 0-2 are far
  too smooth for them. A small MLP shared by all texels maps (normal, view direction, its mirror
  image) to ``shade`` channels given to the U-Net, the first of them scaled by texel features
  12.. (a texel's gloss). Normals come from the mesh's geometry (``plugins/_nr/shading.py``).
  ``lobes`` swaps the MLP for the point renderers' highlight lobes (spherical Gaussians of the
  mirror direction); measured in one paired run, +1.5 dB on airplane-vc-128 and -3.4 dB on
  ant-tex-128 at 5 minutes, so the MLP stays the default.
* Renderer: a 5-level U-Net (``unet_base`` channels at the finest levels), bilinear upsampling
  + convolution on the way up (no transposed convolutions: no checkerboard artefacts). With
  ``texture_skip`` (default) features 0..2 ARE the colour and the U-Net adds a correction (its
  colour head starts at zero): the fit starts as a plain texture and converges as fast as one,
  then learns what a texture cannot (measured on unseen meshes: +5.5 dB at 2 minutes over a
  U-Net that has to make the colour through a sigmoid). It also predicts coverage as a
  correction of the rasterized mask
  (``alpha = sigmoid(logit + alpha_prior * (2 mask - 1))``, and 0 more than 2 pixels away from
  the mesh), so anti-aliased or slightly wrong silhouettes can be learned while pixels away from
  the mesh are exactly the background.
* Pixel coverage (``coverage``): a camera's pixel integrates the light over its area, so along the
  silhouette a photo blends object and background by how much of the pixel the object covers, which
  a mask sampled at the pixel centre cannot tell. With ``coverage`` s > 1 the mesh is also
  rasterized at s x s samples a pixel; each pixel's covered share is an input of the U-Net and the
  coverage prior is taken on it (``2 share - 1`` instead of ``2 mask - 1``). The default (0) decides
  from the photos (:func:`plugins._nr.data.photos_blend_edges`): 3 when they blend (anti-aliased,
  shrunk to the training size, or a camera's photos without transparency), 1 when their alpha is
  0 or 1 at the training size (renders sampled at pixel centres, where the centre mask is exact and
  the share measured 3 dB worse). Measured in docs/PERFORMANCE.md.
* Loss: L1 between the image composited over the background and the photo composited over it;
  ``aux_weight`` adds the paper's auxiliary L1 of features 0..2 against the photo's colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugins._nr.config import FitConfig, check_texture, validate_fit_config
from plugins._nr.plugin import NeuralRendererPlugin
from viewer.plugins import Range

__all__ = ["BOUNDS", "Config", "DNRPlugin", "PLUGIN"]

BOUNDS = {"texture_size": Range(0, 8192), "levels": Range(1, 12), "channels": Range(1, 256),
          "unet_base": Range(1, 256), "unet_levels": Range(2, 8), "alpha_prior": Range(-100, 100),
          "aux_weight": Range(0, 100), "shade": Range(0, 256), "unet_convs": Range(1, 8),
          "dense": Range(0, 1 << 22), "coverage": Range(0, 8)}


@dataclass
class Config(FitConfig):
    """Settings of Deferred Neural Rendering; the defaults fit in 10 minutes on 2 CPU cores and
    render 256x256 at more than 15 frames/s there."""

    texture_size: int = field(default=0, metadata={"help": "finest neural-texture level, texels (0 = sized to "
                                                              "the data: about 16 training pixels per texel)"})
    levels: int = field(default=4, metadata={"help": "Laplacian pyramid levels (each half the size of the last)"})
    channels: int = field(default=16, metadata={"help": "features per texel (at least 12 with view dependence)"})
    view_dependent: bool = field(default=True, metadata={"help": "multiply features 3..11 by the SH basis of the "
                                                                 "view direction"})
    unet_base: int = field(default=16, metadata={"help": "U-Net channels at the finest level"})
    unet_levels: int = field(default=5, metadata={"help": "U-Net resolution levels"})
    alpha_prior: float = field(default=8.0, metadata={"help": "logit the rasterized mask adds to the predicted "
                                                              "coverage"})
    aux_weight: float = field(default=0.0, metadata={"help": "weight of the L1 between features 0..2 and the "
                                                             "photo (0 = off)"})
    shade: int = field(default=8, metadata={"help": "channels of the shading network (0 = off), shared by "
                                                     "all texels: functions of the surface normal, the view "
                                                     "direction and its mirror image, for highlights under "
                                                     "world-fixed lights (with lobes: 3 widths per direction)"})
    lobes: bool = field(default=False, metadata={"help": "the shading network is highlight lobes (spherical "
                                                         "Gaussians of the mirror direction, learned directions "
                                                         "and sharpness) rather than an MLP (measured: +1.5 dB "
                                                         "on one capture, -3.4 on another; off by default)"})
    unet_convs: int = field(default=1, metadata={"help": "3x3 convolutions per U-Net level and direction"})
    batch: int = field(default=4, metadata={"help": "random crops (of different frames) per step"})
    crop: int = field(default=64, metadata={"help": "crop edge in pixels (0 = whole frames)"})
    lr_texture: float = field(default=2e-2, metadata={"help": "Adam learning rate of the texture"})
    dense: int = field(default=0, metadata={"help": "with texture_skip: random covered training pixels a step "
                                                        "whose texture colour is also fitted to the photo directly, "
                                                        "no U-Net (0 = off)"})
    texture_skip: bool = field(default=True, metadata={"help": "features 0..2 are the colour and the U-Net adds "
                                                               "a correction (it starts as a plain texture)"})
    coverage: int = field(default=0, metadata={"help": "samples per pixel edge for each pixel's covered share, "
                                                       "which the U-Net sees and the coverage starts from: photos "
                                                       "blend colours along the silhouette (1 = the pixel centre "
                                                       "only; 0 = from the photos: 3 when they blend, else 1)"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_fit_config(self, BOUNDS)
        check_texture(self.texture_size, self.levels, self.channels)
        if self.view_dependent and self.channels < 12:
            raise ValueError(f"channels: view dependence needs at least 12, got {self.channels}")


# what a stored config without these keys was fitted with (checkpoints from before they existed)
_LEGACY = {"shade": 0, "unet_convs": 1, "texture_skip": False, "dense": 0, "lobes": False, "coverage": 1}


class DNRPlugin(NeuralRendererPlugin):
    name = "dnr"
    priority = 10  # the default renderer
    description = "Deferred Neural Rendering: neural texture (Laplacian pyramid, SH view dependence) + U-Net"
    Config = Config

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> Any:
        """A :class:`~plugins.dnr.network.DNRNet` (torch loads here, on first use)."""
        from .network import DNRNet, unet_channels

        cfg = self.config_for(config, init)
        if not cfg.texture_skip:  # the direct colour loss fits the colour the skip adds
            config["dense"] = cfg.dense = 0
        if not init:  # loading: a stored config may predate some settings
            for k, v in _LEGACY.items():
                if k not in config:
                    setattr(cfg, k, v)
        return DNRNet(cfg.texture_size, cfg.levels, cfg.channels, unet_channels(cfg.unet_base, cfg.unet_levels),
                      cfg.view_dependent, cfg.alpha_prior, cfg.shade, cfg.unet_convs, cfg.texture_skip,
                      init.get("mean_rgb"), lobes=cfg.lobes, coverage=cfg.coverage)


PLUGIN = DNRPlugin()
