"""The point renderer's network and losses (torch).

* :class:`PointRendererNet`: the per-point descriptors (``descriptors`` (N, C), fitted per scene
  by NPBG, predicted from the photos by NPBG++) drawn at every scale of the z-buffer, each scale
  with a coverage channel (1 where a point was drawn), the full scale with the view direction
  too; the U-Net of :mod:`plugins._nr.networks` takes the full scale as its input and joins the
  coarser ones at its encoder levels (NPBG's multi-scale input), or, ``multiscale=False``, only
  the full scale (the plain variant). It predicts colour and coverage (sigmoids), composited
  over the background by the shared fitting loop.
* Losses beside the shared L1: ``1 - SSIM`` (MONAI's SSIMLoss, 7-pixel Gaussian window) and,
  only with a local weights file, a VGG-19 perceptual loss (nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from plugins._nr.model import RendererNet
from plugins._nr.networks import Lobes, UNet2D

from .data import PointBatch
from .splat import front_rasters, gather

__all__ = ["PointRendererNet", "PointTexture", "Lobes", "image_loss", "VGGLoss", "shade_mlp", "shade_inputs", "mirror_dirs"]


class PointTexture(nn.Module):
    """A learnable descriptor per point: ``descriptors`` (N, C); the fitting loop's "texture"
    learning rate applies to it (its parameters are named ``texture.*``)."""

    def __init__(self, n_points: int, channels: int, init: torch.Tensor | None = None, noise: float = 0.1) -> None:
        super().__init__()
        d = torch.randn(int(n_points), int(channels)) * noise
        if init is not None:
            k = min(int(channels), init.shape[1])
            d[:, :k] = init[:, :k].to(torch.float32)
        self.descriptors = nn.Parameter(d)


class PointRendererNet(RendererNet):
    """Descriptors + multi-scale rasters + U-Net (see the module docstring).

    Parameters
    ----------
    n_points, channels : the descriptor table.
    unet : U-Net channels per level, finest first (as many levels as the rasters have scales).
    multiscale : join the coarser rasters at the encoder levels (else only the full scale).
    view_dirs : the full scale also gets the per-pixel view direction (3 channels).
    init : (N, k) start of the first k descriptor channels (the points' colours), else noise.
    mean_rgb : (3,) the photos' mean colour: where the colour head starts.
    raster_channels : channels :meth:`rasters` draws per pixel (default ``channels``).
    colour_skip : descriptor channels 0..2 are the colour (holes filled from coarser scales) and
        the U-Net adds a correction (its colour head starts at zero).
    shade : channels of the shading network (0 = none): :class:`Lobes` of the view direction
        mirrored about the drawn point's normal, ``shade`` channels of the full-scale input, the
        first of them also scaled by descriptor channels 3.. (a point's gloss), as DNR's
        (``plugins/dnr``) are by texel features. The normals (N, 3) are a buffer (``normals``,
        stored in the checkpoint; :mod:`.normals` estimates them when fitting).
    normals : (N, 3) the points' unit normals (with ``shade``; zeros when loading, then filled).
    average : draw each pixel as the mean descriptor of its front points, those within
        ``average`` pixel footprints of the nearest one's depth (:mod:`.splat`'s ``Front``),
        instead of the nearest point alone; None = the nearest (NPBG's z-buffer). The data the
        network is given must carry the front points (``PointBatch.front``) when it is set.
    alpha_prior : logit added to the coverage where the cloud draws a point (full scale) and
        subtracted elsewhere, as DNR's mask prior. Without it a fit of an object that fills a small part of the frames can
        collapse to the background everywhere (most pixels of a crop are background: the
        coverage saturates at 0 before the colour is learned; measured on a capture of
        pyvista's ant: 13.4 dB, every frame blank, from step 50 on).
    share : k > 0: the full-scale input also carries each pixel's covered share of k x k
        sub-cells (:func:`~.splat.pixel_share`, ``PointBatch.share``): where a silhouette
        crosses the pixel, as a photo's edge pixels blend the object and the background.
    """

    def __init__(self, n_points: int, channels: int, unet: tuple[int, ...], multiscale: bool = True,
                 view_dirs: bool = True, convs: int = 1, init: torch.Tensor | None = None,
                 mean_rgb: torch.Tensor | None = None, raster_channels: int | None = None,
                 colour_skip: bool = False, shade: int = 0, normals: torch.Tensor | None = None,
                 alpha_prior: float = 0.0, average: float | None = None, share: int = 0) -> None:
        super().__init__()
        self.share = int(share)
        self.alpha_prior = float(alpha_prior)
        self.average = None if average is None else float(average)
        self.colour_skip = bool(colour_skip)
        self.texture = PointTexture(n_points, channels, init)
        self.shade = shade_mlp(int(shade)) if shade > 0 else None
        if self.shade is not None:
            n = torch.zeros(int(n_points), 3) if normals is None else torch.as_tensor(normals, dtype=torch.float32)
            self.register_buffer("normals", n.reshape(int(n_points), 3).clone())
        self.scales = len(unet)
        self.multiscale = bool(multiscale)
        self.view_dirs = bool(view_dirs)
        # what :meth:`rasters` draws per pixel (a subclass may draw other than the descriptors)
        per_scale = int(channels if raster_channels is None else raster_channels) + 1
        extra = (per_scale,) * (self.scales - 1) if self.multiscale else ()
        full = (per_scale + (3 if self.view_dirs else 0) + (int(shade) if self.shade is not None else 0)
                + (1 if self.share else 0))
        self.unet = UNet2D(full, 4, unet, convs=convs, extra=extra)
        if mean_rgb is not None:
            with torch.no_grad():
                m = torch.as_tensor(mean_rgb, dtype=torch.float32).clamp(0.02, 0.98)
                self.unet.head.bias[:3] = torch.log(m / (1 - m))
        if self.colour_skip:  # the colour starts as the drawn descriptors' channels 0..2
            with torch.no_grad():
                self.unet.head.weight[:3].zero_()
                self.unet.head.bias[:3].zero_()

    @staticmethod
    def drawn_colour(rasters: list[torch.Tensor]) -> torch.Tensor:
        """(B, 3, H_0, W_0): channels 0..2 of the nearest point at each pixel, holes filled from
        the finest coarser scale that drew a point there."""
        c = rasters[-1][:, :3]
        for r in reversed(rasters[:-1]):
            cov = r[:, -1:]
            c = cov * r[:, :3] + (1.0 - cov) * F.interpolate(c, size=r.shape[-2:], mode="nearest")
        return c

    def rasters(self, batch: PointBatch, descriptors: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per scale (B, C + 1, H_s, W_s) (channels-last memory): the descriptors drawn and the
        coverage. The descriptors are read straight from the table (empty pixels read row 0 and
        are zeroed) rather than from a copy with a zero row first: that copy of the whole table
        cost more than the pixels (2-3 ms a frame at 500 k points)."""
        d = self.texture.descriptors if descriptors is None else descriptors
        if batch.front is not None and d.shape[0] > 0:
            b, h, w = batch.ids[0].shape
            return [r.permute(0, 3, 1, 2) for r in front_rasters(d, batch.front, b, h, w, len(batch.ids))]
        if d.shape[0] == 0:
            return [torch.cat([gather(d, ids), (ids >= 0).to(d.dtype)[:, None]], 1) for ids in batch.ids]
        out = []
        for ids in batch.ids:
            cov = (ids >= 0).to(d.dtype)[..., None]  # (B, H, W, 1)
            feat = d.index_select(0, ids.clamp(min=0).reshape(-1)).view(*ids.shape, d.shape[1])
            out.append(torch.cat([feat * cov, cov], -1).permute(0, 3, 1, 2))
        return out

    def forward(self, batch: PointBatch, descriptors: torch.Tensor | None = None):
        """rgb (B, 3, H, W) and alpha (B, 1, H, W) in 0..1 (and no texture colours)."""
        r = self.rasters(batch, descriptors)
        if self._fast_input():
            first = self.shaded_input(r[0], batch)
        else:
            x = [r[0]]
            if self.shade is not None:
                x = self.shaded(r[0], batch)
            if self.view_dirs:
                x.insert(1, batch.dirs.to(r[0].dtype))
            if self.share:
                x.append(self._share(batch, r[0]))
            first = torch.cat(x, 1) if len(x) > 1 else x[0]
        y = self.unet(first, r[1:] if self.multiscale else None)
        h, w = batch.shape[1:]
        logit = y[:, 3:4]
        if self.alpha_prior:
            logit = logit + self.alpha_prior * (2.0 * self.drawn(r) - 1.0)
        y, logit = y[..., :h, :w], logit[..., :h, :w]
        if self.colour_skip:  # the U-Net corrects the drawn colour (as DNR's texture_skip)
            return self.drawn_colour(r)[..., :h, :w] + y[:, :3], torch.sigmoid(logit), None
        return torch.sigmoid(y[:, :3]), torch.sigmoid(logit), None

    def _share(self, batch: PointBatch, full: torch.Tensor) -> torch.Tensor:
        """(B, 1, H_0, W_0) each pixel's covered share (the batch must carry it)."""
        if batch.share is None:
            raise ValueError("this renderer reads each pixel's covered share; the batch has none")
        return batch.share.to(full.dtype)

    @staticmethod
    def drawn(rasters: list[torch.Tensor]) -> torch.Tensor:
        """(B, 1, H_0, W_0): 1 where a point is drawn at full scale. (Widening it by the half
        scale's cells, to bridge a sparse cloud's holes, put a one-pixel rim of the prior
        outside the silhouette: 15.1 against 17.8 dB on the tests' small capture after 200
        steps; the U-Net fills holes from the coarser rasters anyway.)"""
        return rasters[0][:, -1:]

    def _fast_input(self) -> bool:
        return (not torch.is_grad_enabled() and self.view_dirs and isinstance(self.shade, Lobes)
                and self.shade.k == 3 * self.shade.dirs.shape[0]
                and not getattr(self, "_slow_input", False))  # (set by the A/B bench and the test)

    def shaded_input(self, full: torch.Tensor, batch: PointBatch) -> torch.Tensor:
        """The U-Net's first input, as ``cat(shaded(...))`` with the view direction between, for
        drawing (no gradients): written in place into one channels-last buffer, nothing
        concatenated (the same numbers: tested against :meth:`shaded`)."""
        ids = batch.ids[0]
        b, h, w = ids.shape
        c = full.shape[1]  # descriptor channels + coverage
        k = self.shade.k
        buf = torch.empty(b, h, w, c + 3 + k + (1 if self.share else 0), dtype=full.dtype, device=full.device)
        buf[..., :c] = full.permute(0, 2, 3, 1)
        dirs = buf[..., c:c + 3]
        dirs.copy_(batch.dirs.to(full.dtype).permute(0, 2, 3, 1))
        nrm = self._normals_at(ids, full.dtype)
        if self.share:
            buf[..., -1] = self._share(batch, full)[:, 0]
        g = buf[..., c + 3:c + 3 + k]
        self.shade.fill(mirror_dirs(nrm, batch.dirs.to(full.dtype).permute(0, 2, 3, 1)), g)
        g.mul_(buf[..., c - 1:c])  # nothing where no point is drawn (the coverage channel)
        m = max(0, min(c - 1 - 3, k))
        if m:
            buf[..., 3:3 + m].mul_(g[..., :m])
        return buf.permute(0, 3, 1, 2)  # (B, C, H, W) in channels-last memory

    def _normals_at(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, H, W, 3) the normal of the point drawn at each pixel (row 0's where none is)."""
        return self.normals.to(dtype).index_select(0, ids.clamp(min=0).reshape(-1)).view(*ids.shape, 3)

    def shaded(self, full: torch.Tensor, batch: PointBatch) -> list[torch.Tensor]:
        """[the full-scale raster with descriptor channels 3.. scaled by the first shading
        channels, the shading channels] (the view direction goes between them)."""
        ids = batch.ids[0]
        cov = (ids >= 0).to(full.dtype)[..., None]  # (B, H, W, 1)
        nrm = self._normals_at(ids, full.dtype)
        dirs = batch.dirs.to(full.dtype).permute(0, 2, 3, 1)  # (B, H, W, 3), contiguous when channels-last
        g = self.shade(shade_inputs(nrm, dirs)) * cov  # (B, H, W, k): nothing where no point is drawn
        g = g.permute(0, 3, 1, 2)
        c = full.shape[1] - 1  # descriptor channels (the last is the coverage)
        m = max(0, min(c - 3, g.shape[1]))
        if m:
            full = torch.cat([full[:, :3], full[:, 3:3 + m] * g[:, :m], full[:, 3 + m:]], 1)
        return [full, g]


def shade_mlp(out: int) -> nn.Module:
    """The shading network: 9 inputs (:func:`shade_inputs`) -> ``out`` features per pixel
    (:class:`Lobes`; an MLP of the same inputs, as DNR's, had not grown a highlight's peak
    after 1000 steps: 23.9 against 25.7 dB held-out on the globe capture)."""
    return Lobes(out)


def shade_inputs(normals: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(..., 9): the normal turned towards the camera (a normal from points has no sign), the
    view direction (camera -> surface) and its mirror image about the normal."""
    cos = (normals * dirs).sum(-1, keepdim=True)
    n = torch.where(cos > 0, -normals, normals)
    return torch.cat([n, dirs, mirror_dirs(n, dirs)], -1)


def mirror_dirs(normals: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(..., 3) the view directions mirrored about the normals, ``d - 2 (n . d) n`` (the same
    for ``n`` and ``-n``: what :class:`Lobes` reads, without turning the normals first)."""
    return torch.addcmul(dirs, (normals * dirs).sum(-1, keepdim=True), normals, value=-2.0)


# VGG-19's convolutions up to relu4_4, numbered as torchvision numbers ``features`` (so its
# state dicts load as they are); the loss compares relu1_2, relu2_2, relu3_4 and relu4_4
_VGG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512]
_TAPS = (3, 8, 17, 26)


class VGGLoss(nn.Module):
    """Mean L1 between VGG-19 features of image and target, weights from a local file (a
    torchvision ``vgg19`` state dict, .pth or .safetensors; ``features.`` prefixes accepted)."""

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.features.load_state_dict(_read_vgg(Path(weights), self.features.state_dict().keys()))
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, target]).sub(self.mean).div(self.std)
        loss = x.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                a, b = x.chunk(2)
                loss = loss + (a - b).abs().mean()
        return loss / len(_TAPS)


def _read_vgg(path: Path, keys) -> dict[str, torch.Tensor]:
    """The conv weights in ``path``, keyed as our Sequential names them; ValueError one line."""
    if not path.is_file():
        raise ValueError(f"vgg_weights: {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors alike
        raise ValueError(f"vgg_weights: {path}: not a readable state dict ({' '.join(str(exc).split())[:120]})") from None
    state = {k[len("features."):] if k.startswith("features.") else k: v for k, v in dict(state).items()}
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"vgg_weights: {path}: not VGG-19 weights (lacks {missing[0]})")
    return {k: state[k] for k in keys}


def image_loss(ssim_weight: float, vgg_weight: float, vgg_weights: str,
               device: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """``ssim_weight * (1 - SSIM) + vgg_weight * VGG`` of (image, target), or None if both are off."""
    terms: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = []
    if ssim_weight > 0:
        from monai.losses import SSIMLoss

        ssim = SSIMLoss(spatial_dims=2, data_range=1.0, win_size=7)
        terms.append(lambda a, b: ssim_weight * ssim(a.float().contiguous(), b.float().contiguous()))
    if vgg_weights and vgg_weight > 0:
        vgg = VGGLoss(vgg_weights).to(device)
        terms.append(lambda a, b: vgg_weight * vgg(a, b))
    if not terms:
        return None
    return lambda a, b: sum(t(a, b) for t in terms)
