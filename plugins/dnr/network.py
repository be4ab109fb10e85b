"""Deferred Neural Rendering's network (torch): neural texture, SH view dependence, the shading
MLP and the U-Net (see the package docstring)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plugins._nr.data import PixelBatch
from plugins._nr.model import RendererNet
from plugins._nr.networks import LaplacianTexture, Lobes, UNet2D, float32, scatter_pixels, sh_basis

__all__ = ["DNRNet", "unet_channels", "shade_mlp", "shade_inputs"]

_EDGE = 2  # pixels beyond the rasterized silhouette where coverage may still be learned


def unet_channels(base: int, levels: int) -> tuple[int, ...]:
    """Feature maps per U-Net level, finest first: base, base, 2 base, 4 base, 4 base, ... (the
    two full-and-half resolution levels dominate the cost, so they stay narrow)."""
    mult = [1, 1, 2, 4] + [4] * max(0, levels - 4)
    return tuple(int(base) * m for m in mult[:levels])


def shade_mlp(out: int, hidden: int = 64, lobes: bool = False) -> nn.Module:
    """The shading network: 9 inputs (:func:`shade_inputs`) -> ``out`` features per pixel: with
    ``lobes``, spherical Gaussians of the mirror direction (:class:`~plugins._nr.networks.Lobes`,
    the shape of a highlight under a world-fixed light), else an MLP (the first version)."""
    if lobes:
        return Lobes(out)
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
    shade, lobes : channels of the shading network, and whether it is highlight lobes or an MLP.
    coverage : s > 1: the U-Net also sees each pixel's covered share from s x s samples
        (``PixelBatch.coverage``) and the coverage prior is taken on that share rather than on the
        centre-sampled mask, so a silhouette pixel starts at its share, not at 0 or 1.
    """

    def __init__(self, size: int, levels: int, channels: int, unet: tuple[int, ...],
                 view_dependent: bool = True, alpha_prior: float = 8.0, shade: int = 0,
                 unet_convs: int = 1, texture_skip: bool = False, init: torch.Tensor | None = None,
                 lobes: bool = False, coverage: int = 1) -> None:
        super().__init__()
        if view_dependent and channels < 12:
            raise ValueError("view dependence needs at least 12 texture channels")
        start = None
        if texture_skip and init is not None:  # the colour channels start at the photos' mean
            start = torch.zeros(channels)
            start[:3] = torch.as_tensor(init, dtype=torch.float32).reshape(3)
        self.texture = LaplacianTexture(size, levels, channels, init=start, noise=0.01)
        self.texture_skip = bool(texture_skip)
        self.shade = shade_mlp(int(shade), lobes=lobes) if shade > 0 else None
        self.uses_normals = self.shade is not None
        self.coverage_samples = max(1, int(coverage))
        extra = 2 if self.coverage_samples > 1 else 1  # the centre mask (and the covered share)
        self.unet = UNet2D(channels + int(max(0, shade)) + extra, 4, unet, convs=unet_convs)
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
            with float32(f):  # a product of 9 inputs: float32 is faster and exact enough
                g = self.shade(shade_inputs(batch.normals.float(), batch.dirs.float()))  # (N, k)
            rest = parts[-1]  # texel features scale the first shading channels (a texel's gloss)
            m = min(rest.shape[1], g.shape[1])
            parts = parts[:-1] + [torch.cat([rest[:, :m] * g[:, :m], rest[:, m:]], 1), g]
        ones = f.new_ones(f.shape[0], 1)  # becomes the mask channel: 1 covered, 0 elsewhere
        x = scatter_pixels(torch.cat(parts + [ones], 1), batch.pix, batch.shape)
        cover = batch.mask
        if self.coverage_samples > 1:
            # a batch made without coverage (a caller that did not ask) falls back to the mask
            cover = batch.coverage if batch.coverage is not None else batch.mask
            x = torch.cat([x, cover.to(x.dtype)], 1)
        y = self.unet(x)
        if self.texture_skip:
            rgb = scatter_pixels(f[:, :3], batch.pix, batch.shape) + y[:, :3]
        else:
            rgb = torch.sigmoid(y[:, :3])
        alpha = torch.sigmoid(y[:, 3:4] + self.alpha_prior * (2.0 * cover - 1.0))
        seen = batch.mask if cover is batch.mask else (cover > 0).to(cover.dtype)
        near = F.max_pool2d(seen, 2 * _EDGE + 1, stride=1, padding=_EDGE)  # silhouette +- _EDGE px
        return rgb, alpha * near, f[:, :3]
