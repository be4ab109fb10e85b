"""The classical baseline: one RGB texture on the mesh's uv atlas, fitted to the photos by
gradient descent through the rasterized uv maps (bilinear sampling, L1 on the composite).

The texture is a Laplacian pyramid (``levels`` >= 2): texels no photo saw take the value of the
coarser levels, smooth, instead of staying at their initial colour, which helps held-out views.
With ``levels = 1`` it is a plain texture. It has no view dependence: highlights are averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from plugins._nr.checkpoint import check_texture, validate_fit_config
from plugins._nr.data import PixelBatch
from plugins._nr.model import RendererNet
from plugins._nr.networks import LaplacianTexture, scatter_pixels
from plugins._nr.plugin import FitConfig, NeuralRendererPlugin, texture_size_for
from viewer.plugins import Range

__all__ = ["BOUNDS", "Config", "TextureNet", "TexturePlugin", "PLUGIN"]

BOUNDS = {"texture_size": Range(0, 8192), "levels": Range(1, 12)}


@dataclass
class Config(FitConfig):
    """Settings of the fitted RGB texture."""

    texture_size: int = field(default=0, metadata={"help": "texture edge in texels (0 = sized to the data: about "
                                                              "16 training pixels per texel)"})
    levels: int = field(default=4, metadata={"help": "Laplacian pyramid levels (1 = a plain texture)"})
    batch: int = field(default=4, metadata={"help": "random crops (of different frames) per step"})
    lr_texture: float = field(default=2e-2, metadata={"help": "Adam learning rate of the texture"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_fit_config(self, BOUNDS)
        check_texture(self.texture_size, self.levels, 3)


class TextureNet(RendererNet):
    """Colour = the texture at the pixel's uv; alpha = the rasterized coverage.

    Parameters
    ----------
    size, levels : finest texture edge and pyramid levels.
    init : (3,) start colour (the photos' mean).
    """

    def __init__(self, size: int, levels: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.texture = LaplacianTexture(size, levels, 3, init=init)

    def forward(self, batch: PixelBatch) -> tuple[torch.Tensor, torch.Tensor, None]:
        """rgb (B, 3, H, W) (0 where uncovered), alpha = mask (B, 1, H, W)."""
        rgb = scatter_pixels(self.texture(batch.uv), batch.pix, batch.shape)
        return rgb, batch.mask, None


class TexturePlugin(NeuralRendererPlugin):
    name = "texture"
    description = "plain RGB texture (Laplacian pyramid) fitted through the mesh's uv maps: the classical baseline"
    Config = Config

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> TextureNet:
        cfg = self.config_from(config)
        if cfg.texture_size <= 0:
            config["texture_size"] = cfg.texture_size = texture_size_for(int(init.get("covered_pixels", 1 << 18)))
        return TextureNet(cfg.texture_size, cfg.levels, init.get("mean_rgb"))


PLUGIN = TexturePlugin()
