"""A fitted neural renderer and how it draws a camera: rasterize the mesh's uv map (VTK, one
rasterizer per thread), sample, run the network, composite over the background.

Compositing: a network returns colour ``rgb`` (B, 3, H, W) and coverage ``alpha`` (B, 1, H, W),
both in 0..1, and the image is ``alpha * rgb + (1 - alpha) * background``. The plain texture's
alpha is the rasterized mask; DNR predicts alpha as a correction of the mask (anti-aliased or
imprecise silhouettes), so uncovered pixels stay exactly the background far from the mesh. The
loss compares this composite with the photo composited over the same background, on all pixels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from viewer.model.camera import Camera
from viewer.model.geometry import Mesh
from viewer.plugins.precision import autocast

from .data import PixelBatch, camera_batch, cover_box, make_rasterizer
from .shading import mesh_shading

__all__ = ["RendererNet", "NRModel", "composite", "render_image"]


class RendererNet(nn.Module):
    """What a renderer plugin's network implements.

    ``forward(batch: PixelBatch) -> (rgb, alpha, rgb_features)``: rgb (B, 3, H, W) and alpha
    (B, 1, H, W) in 0..1, and the (N, 3) texture values of the covered pixels that should match
    the photo (for an auxiliary loss; None when there are none).
    """

    def forward(self, batch: PixelBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


def composite(rgb: torch.Tensor, alpha: torch.Tensor, background: Sequence[float]) -> torch.Tensor:
    """``alpha * rgb + (1 - alpha) * background``: (B, 3, H, W)."""
    bg = torch.as_tensor(background, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return alpha * rgb + (1.0 - alpha) * bg


@dataclass(eq=False)
class NRModel:
    """A fitted renderer with everything needed to draw new views.

    Attributes
    ----------
    net : the network (a :class:`RendererNet`).
    plugin : the plugin's name.
    config : the plugin's Config as a dict.
    mesh : the mesh with uv (N, 2), origin bottom-left; world frame of the scene (None for a
        point renderer).
    background : RGB in 0..1 the photos were composited over.
    train_size : (width, height) of the first training frame at the training size.
    metrics : held-out PSNR, steps, seconds, how the fit stopped, history.
    meta : mesh source and hashes, orbit defaults (centre, radius, up, view angle, elevation).
    device : torch device of ``net``.
    points : a point renderer's :class:`~viewer.model.geometry.PointCloud` (None for a mesh).
    """

    net: nn.Module
    plugin: str
    config: dict[str, Any]
    mesh: Mesh | None
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    train_size: tuple[int, int] = (0, 0)
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    points: Any = None
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def rasterizer(self):
        """This thread's rasterizer of the mesh (made on first use: VTK contexts are per thread)."""
        rast = getattr(self._local, "rast", None)
        if rast is None:
            rast = self._local.rast = make_rasterizer(self.mesh)
        return rast

    def close(self) -> None:
        """Release the calling thread's rasterizer (others go with their threads' objects)."""
        rast = getattr(self._local, "rast", None)
        if rast is not None:
            rast.close()
            self._local.rast = None


def render_image(model: NRModel, camera: Camera, background: Sequence[float] | None = None,
                 return_alpha: bool = False):
    """Draw ``camera`` at its own size.

    Parameters
    ----------
    model : the fitted renderer.
    camera : pinhole camera, OpenCV axes, camera-to-world in the mesh's world frame.
    background : RGB 0..1 to composite over (default: the model's).
    return_alpha : also return the coverage (H, W) float32.

    Returns
    -------
    (H, W, 3) float32 image in 0..1, row 0 at the top (and the alpha if asked).
    """
    net = model.net.module if hasattr(model.net, "module") else model.net
    m = model.rasterizer().rasterize(camera, coverage=int(getattr(net, "coverage_samples", 1)))
    bg = np.asarray(model.background if background is None else background, np.float32).reshape(3)
    out = np.empty((camera.height, camera.width, 3), np.float32)
    out[:] = bg
    full_alpha = np.zeros((camera.height, camera.width), np.float32)
    # only the box around what the mesh covers goes through the network (the rest is exactly
    # the background): 2-4x faster for an object that fills part of the frame, as in training
    # crops; the box's margin keeps the network's view of the silhouette's surroundings
    box = cover_box(m.mask)
    if box is not None:
        x0, y0, x1, y1 = box
        uv, mask = m.uv[y0:y1, x0:x1], m.mask[y0:y1, x0:x1]
        with torch.inference_mode():
            normal = (mesh_shading(model.mesh).normals(m.face[y0:y1, x0:x1], uv)
                      if getattr(net, "uses_normals", False) else None)
            cov = None if m.coverage is None else m.coverage[y0:y1, x0:x1]
            batch = camera_batch(camera, uv, mask, model.device, normal, origin=(x0, y0), coverage=cov)
            with autocast(model.device, bool(model.config.get("amp", False))):  # as it was scored
                rgb, alpha, _ = net(batch)
            rgb, alpha = rgb.float(), alpha.float()
            img = composite(rgb, alpha, bg.tolist())
            out[y0:y1, x0:x1] = img[0].permute(1, 2, 0).clamp(0.0, 1.0).to("cpu", torch.float32).numpy()
            full_alpha[y0:y1, x0:x1] = alpha[0, 0].to("cpu", torch.float32).numpy()
    if return_alpha:
        return out, full_alpha
    return out
