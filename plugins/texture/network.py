"""The plain texture's network (torch): colour = an RGB Laplacian-pyramid texture at the pixel's uv."""

from __future__ import annotations

import torch

from plugins._nr.data import PixelBatch
from plugins._nr.model import RendererNet
from plugins._nr.networks import LaplacianTexture, scatter_pixels

__all__ = ["TextureNet"]


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
