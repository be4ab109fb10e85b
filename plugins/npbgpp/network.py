"""NPBG++'s networks (Rakhimov, Ardelean, Lempitsky, Burnaev 2022), small and in pure torch.

* :class:`ViewEncoder`: a small U-Net (``plugins._nr.networks.UNet2D``) from a photo and its
  per-pixel view directions to ``channels`` features and one confidence logit per pixel.
* Aggregation (:func:`aggregate`): every point takes, in each view that sees it (z-buffer
  visibility with a depth tolerance, at half resolution so that a sparse cloud's points are not
  hidden by their neighbours), the features at its projection; the features are projected onto
  a LEARNED basis of the view direction (the 9 real SH functions of bands 0-2 mixed by a learned
  9 x 9 matrix, :class:`LearnedSH`) and averaged over the views with softmax weights of the
  confidences: each point gets ``channels x 9`` coefficients, a descriptor that varies with the
  direction it is seen from.
* :class:`SHRendererNet`: the NPBG renderer (``plugins._points.network``) whose rasters are the
  coefficients drawn per pixel and evaluated at the pixel's view direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plugins._nr.networks import UNet2D, sh_basis
from plugins._points.data import PointBatch, ray_dirs
from plugins._points.network import PointRendererNet
from plugins._points.splat import PointSet, front_rasters, gather, pad_descriptors, project, zbuffer
from viewer.model.camera import Camera

__all__ = ["LearnedSH", "ViewEncoder", "SHRendererNet", "Pretrained", "Observation", "observe", "aggregate"]

N_SH = 9
_VISIBLE_SCALE = 1  # z-buffer scale of the visibility test (1 = half resolution)
_DEPTH_TOL = 0.02  # of the cloud's extent: how far behind the nearest point a visible point may lie


class LearnedSH(nn.Module):
    """A learned basis of directions: the 9 real SH functions mixed by a 9 x 9 matrix (identity
    at the start)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.eye(N_SH))

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:
        """(N, 3) unit directions -> (N, 9)."""
        return sh_basis(dirs) @ self.mix.t()


class ViewEncoder(nn.Module):
    """Photo (B, 3, H, W) and view directions (B, 3, H, W) -> features (B, channels, H, W) and
    confidence logits (B, 1, H, W)."""

    def __init__(self, channels: int, base: int = 16) -> None:
        super().__init__()
        self.net = UNet2D(6, int(channels) + 1, (base, base * 2, base * 2))

    def forward(self, rgb: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net(torch.cat([rgb * 2.0 - 1.0, dirs], 1))
        return y[:, :-1], y[:, -1:]


class SHRendererNet(PointRendererNet):
    """The point renderer over direction-dependent descriptors: ``texture.descriptors`` (N,
    channels * 9) are coefficients of :class:`LearnedSH`, evaluated per pixel at its view direction."""

    def __init__(self, n_points: int, channels: int, unet: tuple[int, ...], multiscale: bool = True,
                 view_dirs: bool = True, convs: int = 1, mean_rgb: torch.Tensor | None = None,
                 average: float | None = None) -> None:
        super().__init__(n_points, channels * N_SH, unet, multiscale, view_dirs, convs, None, mean_rgb,
                         raster_channels=channels, average=average)
        self.channels = int(channels)
        self.basis = LearnedSH()

    def rasters(self, batch: PointBatch, descriptors: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per scale (B, channels + 1, H_s, W_s): the coefficients of the pixel's point (or the
        mean over its front points, with ``batch.front``: the SH evaluation is linear, so the
        mean of the coefficients is the mean of the features) at the pixel's view direction."""
        d = self.texture.descriptors if descriptors is None else descriptors
        means = None
        if batch.front is not None and d.shape[0] > 0:
            b, h, w = batch.ids[0].shape
            means = front_rasters(d, batch.front, b, h, w, len(batch.ids))
        else:
            pad = pad_descriptors(d)
        out = []
        for s, ids in enumerate(batch.ids):
            dirs = F.normalize(F.avg_pool2d(batch.dirs, 2 ** s) if s else batch.dirs, dim=1)
            b, _, h, w = dirs.shape
            y = self.basis(dirs.permute(0, 2, 3, 1).reshape(-1, 3)).view(b, h, w, N_SH).permute(0, 3, 1, 2)
            if means is None:
                coef = gather(pad, ids, padded=True).view(b, self.channels, N_SH, h, w)
                cov = (ids >= 0).to(d.dtype)[:, None]
            else:
                coef = means[s][..., :-1].permute(0, 3, 1, 2).reshape(b, self.channels, N_SH, h, w)
                cov = means[s][..., -1:].permute(0, 3, 1, 2)
            feat = torch.einsum("bckhw,bkhw->bchw", coef, y.to(coef.dtype))
            out.append(torch.cat([feat, cov], 1))
        return out


class Pretrained(nn.Module):
    """What pretraining learns and ships: the encoder and the renderer (with no points)."""

    def __init__(self, channels: int, unet: tuple[int, ...], encoder_base: int = 16, multiscale: bool = True,
                 view_dirs: bool = True, average: float | None = None) -> None:
        super().__init__()
        self.encoder = ViewEncoder(channels, encoder_base)
        self.renderer = SHRendererNet(0, channels, unet, multiscale, view_dirs, average=average)


@dataclass(eq=False)
class Observation:
    """One source view of a cloud: the photo (1, 3, H, W) and view directions (1, 3, H, W) at
    the training size, and its visible points: ``ids`` (n,), flat pixel ``pix`` (n,) and unit
    directions camera -> point ``dirs`` (n, 3)."""

    rgb: torch.Tensor
    view: torch.Tensor
    ids: torch.Tensor
    pix: torch.Tensor
    dirs: torch.Tensor


def observe(points: PointSet, camera: Camera, rgb: np.ndarray | torch.Tensor, device="cpu") -> Observation:
    """The points ``camera`` sees (z-buffer at half resolution, within a depth tolerance) and
    where; ``rgb`` (H, W, 3) float 0..1 is the photo at the camera's size."""
    proj = project(points, camera)
    ids_map = zbuffer(proj, _VISIBLE_SCALE + 1)[_VISIBLE_SCALE]
    keep = torch.nonzero(proj.keep).squeeze(1)
    x, y = proj.u[keep].floor().long(), proj.v[keep].floor().long()
    nearest = ids_map[y >> _VISIBLE_SCALE, x >> _VISIBLE_SCALE]
    front = proj.z[nearest.clamp(min=0)]
    vis = (nearest >= 0) & (proj.z[keep] <= front + _DEPTH_TOL * points.extent)
    ids, x, y = keep[vis], x[vis], y[vis]
    centre = torch.as_tensor(camera.center - points.origin, dtype=torch.float32, device=points.device)
    dirs = F.normalize(points.local[ids] - centre, dim=1)
    img = torch.as_tensor(np.asarray(rgb, np.float32)).permute(2, 0, 1)[None].to(device)
    view = ray_dirs([camera], [0], [0], camera.height, camera.width, device)
    return Observation(img, view, ids.to(device), (y * camera.width + x).to(device), dirs.to(device))


def aggregate(encoder: ViewEncoder, basis: LearnedSH, views: list[Observation], n_points: int,
              channels: int) -> torch.Tensor:
    """(n_points, channels * 9) coefficients: each point's features in the views that see it,
    projected on the basis of the direction it was seen from, averaged with softmax weights of
    the confidences (0 for points no view sees). Differentiable (pretraining)."""
    dev = views[0].rgb.device
    num = torch.zeros(n_points, channels * N_SH, device=dev)
    den = torch.zeros(n_points, 1, device=dev)
    for v in views:
        if not len(v.ids):
            continue
        feat, conf = encoder(v.rgb, v.view)
        feat, conf = feat.float(), conf.float()  # under autocast the encoder's are bf16/fp16; the sums stay float32
        f = feat[0].flatten(1).t()[v.pix]  # (n, channels)
        w = torch.exp(conf[0].flatten(1).t()[v.pix].clamp(-10.0, 10.0))  # (n, 1)
        y = basis(v.dirs)  # (n, 9)
        coef = (f[:, :, None] * y[:, None, :]).reshape(len(v.ids), -1)
        # in place: out of place copied the whole (n_points, channels * 9) sum once per view (58 MB
        # per view at 200 k points); autograd needs neither sum's old value
        num.index_add_(0, v.ids, w * coef)
        den.index_add_(0, v.ids, w)
    return num / den.clamp(min=1e-6)
