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
* Loss: L1 between the image composited over the background and the photo composited over it;
  ``aux_weight`` adds the paper's auxiliary L1 of features 0..2 against the photo's colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plugins._nr.checkpoint import check_texture, validate_fit_config
from plugins._nr.data import PixelBatch
from plugins._nr.model import RendererNet
from plugins._nr.networks import LaplacianTexture, UNet2D, scatter_pixels, sh_basis
from plugins._nr.plugin import FitConfig, NeuralRendererPlugin, texture_size_for
from viewer.plugins import Range

__all__ = ["BOUNDS", "Config", "DNRNet", "DNRPlugin", "PLUGIN", "unet_channels"]

_EDGE = 2  # pixels beyond the rasterized silhouette where coverage may still be learned

BOUNDS = {"texture_size": Range(0, 8192), "levels": Range(1, 12), "channels": Range(1, 256),
          "unet_base": Range(1, 256), "unet_levels": Range(2, 8), "alpha_prior": Range(-100, 100),
          "aux_weight": Range(0, 100), "shade": Range(0, 256), "unet_convs": Range(1, 8),
          "dense": Range(0, 1 << 22)}


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
    shade: int = field(default=8, metadata={"help": "channels of the shading network (0 = off): an MLP shared "
                                                    "by all texels of the surface normal, the view direction and "
                                                    "its mirror image, for highlights under world-fixed lights"})
    unet_convs: int = field(default=1, metadata={"help": "3x3 convolutions per U-Net level and direction"})
    batch: int = field(default=4, metadata={"help": "random crops (of different frames) per step"})
    crop: int = field(default=64, metadata={"help": "crop edge in pixels (0 = whole frames)"})
    lr_texture: float = field(default=2e-2, metadata={"help": "Adam learning rate of the texture"})
    dense: int = field(default=0, metadata={"help": "with texture_skip: random covered training pixels a step "
                                                        "whose texture colour is also fitted to the photo directly, "
                                                        "no U-Net (0 = off)"})
    texture_skip: bool = field(default=True, metadata={"help": "features 0..2 are the colour and the U-Net adds "
                                                               "a correction (it starts as a plain texture)"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_fit_config(self, BOUNDS)
        check_texture(self.texture_size, self.levels, self.channels)
        if self.view_dependent and self.channels < 12:
            raise ValueError(f"channels: view dependence needs at least 12, got {self.channels}")


# what a stored config without these keys was fitted with (checkpoints from before they existed)
_LEGACY = {"shade": 0, "unet_convs": 1, "texture_skip": False, "dense": 0}


def unet_channels(base: int, levels: int) -> tuple[int, ...]:
    """Feature maps per U-Net level, finest first: base, base, 2 base, 4 base, 4 base, ... (the
    two full-and-half resolution levels dominate the cost, so they stay narrow)."""
    mult = [1, 1, 2, 4] + [4] * max(0, levels - 4)
    return tuple(int(base) * m for m in mult[:levels])


def shade_mlp(out: int, hidden: int = 64) -> nn.Sequential:
    """The shading network: 9 inputs (:func:`shade_inputs`) -> ``out`` features per pixel."""
    return nn.Sequential(nn.Linear(9, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out))


def shade_inputs(normals: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(N, 9): the normal turned towards the camera (captures light both sides of open
    surfaces), the view direction (camera -> surface) and its mirror image about the normal."""
    cos = (normals * dirs).sum(1, keepdim=True)
    n = torch.where(cos > 0, -normals, normals)
    r = dirs - 2.0 * (n * dirs).sum(1, keepdim=True) * n
    return torch.cat([n, dirs, r], 1)


class DNRNet(RendererNet):
    """Neural texture + SH view dependence + U-Net (see the module docstring).

    Parameters
    ----------
    size, levels, channels : the neural texture (finest edge, pyramid levels, features).
    unet : U-Net channels per level, finest first.
    view_dependent : multiply features 3..11 by the SH basis of the view direction.
    alpha_prior : logit added to the coverage for covered pixels (subtracted elsewhere).
    """

    def __init__(self, size: int, levels: int, channels: int, unet: tuple[int, ...],
                 view_dependent: bool = True, alpha_prior: float = 8.0, shade: int = 0,
                 unet_convs: int = 1, texture_skip: bool = False, init: torch.Tensor | None = None) -> None:
        super().__init__()
        if view_dependent and channels < 12:
            raise ValueError("view dependence needs at least 12 texture channels")
        start = None
        if texture_skip and init is not None:  # the colour channels start at the photos' mean
            start = torch.zeros(channels)
            start[:3] = torch.as_tensor(init, dtype=torch.float32).reshape(3)
        self.texture = LaplacianTexture(size, levels, channels, init=start, noise=0.01)
        self.texture_skip = bool(texture_skip)
        self.shade = shade_mlp(int(shade)) if shade > 0 else None
        self.uses_normals = self.shade is not None
        self.unet = UNet2D(channels + int(max(0, shade)) + 1, 4, unet, convs=unet_convs)
        with torch.no_grad():  # coverage starts as the rasterized mask
            self.unet.head.weight[3].zero_()
            self.unet.head.bias[3].zero_()
            if self.texture_skip:  # and the colour starts as the texture's
                self.unet.head.weight[:3].zero_()
                self.unet.head.bias[:3].zero_()
        self.view_dependent = bool(view_dependent)
        self.alpha_prior = float(alpha_prior)

    def dense_colour(self, uv: torch.Tensor) -> torch.Tensor:
        """(N, 3) the texture's colour at ``uv`` (N, 2): with ``texture_skip``, what the image is
        before the U-Net's correction; the fit's ``dense`` loss fits it to the photo directly."""
        return self.texture(uv)[:, :3]

    def forward(self, batch: PixelBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rgb (B, 3, H, W), alpha (B, 1, H, W) in 0..1 and features 0..2 (N, 3) of the covered pixels."""
        f = self.texture(batch.uv)  # (N, C)
        parts = [f[:, :3], f[:, 3:12] * sh_basis(batch.dirs), f[:, 12:]] if self.view_dependent else [f]
        if self.shade is not None:
            g = self.shade(shade_inputs(batch.normals, batch.dirs))  # (N, k)
            rest = parts[-1]  # texel features scale the first shading channels (a texel's gloss)
            m = min(rest.shape[1], g.shape[1])
            parts = parts[:-1] + [torch.cat([rest[:, :m] * g[:, :m], rest[:, m:]], 1), g]
        ones = f.new_ones(f.shape[0], 1)  # becomes the mask channel: 1 covered, 0 elsewhere
        x = scatter_pixels(torch.cat(parts + [ones], 1), batch.pix, batch.shape)
        y = self.unet(x)
        if self.texture_skip:
            rgb = scatter_pixels(f[:, :3], batch.pix, batch.shape) + y[:, :3]
        else:
            rgb = torch.sigmoid(y[:, :3])
        alpha = torch.sigmoid(y[:, 3:4] + self.alpha_prior * (2.0 * batch.mask - 1.0))
        near = F.max_pool2d(batch.mask, 2 * _EDGE + 1, stride=1, padding=_EDGE)  # silhouette +- _EDGE px
        return rgb, alpha * near, f[:, :3]


class DNRPlugin(NeuralRendererPlugin):
    name = "dnr"
    description = "Deferred Neural Rendering: neural texture (Laplacian pyramid, SH view dependence) + U-Net"
    Config = Config

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> DNRNet:
        cfg = self.config_from(config)
        if cfg.texture_size <= 0:
            config["texture_size"] = cfg.texture_size = texture_size_for(int(init.get("covered_pixels", 1 << 18)))
        if not cfg.texture_skip:  # the direct colour loss fits the colour the skip adds
            config["dense"] = cfg.dense = 0
        if not init:  # loading: a stored config may predate some settings
            for k, v in _LEGACY.items():
                if k not in config:
                    setattr(cfg, k, v)
        return DNRNet(cfg.texture_size, cfg.levels, cfg.channels, unet_channels(cfg.unet_base, cfg.unet_levels),
                      cfg.view_dependent, cfg.alpha_prior, cfg.shade, cfg.unet_convs, cfg.texture_skip,
                      init.get("mean_rgb"))


PLUGIN = DNRPlugin()
