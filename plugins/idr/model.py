"""A fitted IDR model, and how it draws a camera: rays into the normalised frame, sphere tracing
with secant refinement, normals from the SDF's gradient, colours from the rendering network,
composited over the background (a pixel whose ray meets no surface is the background).

Frames: world = ``centre + scale * x`` for x in the normalised frame (the object inside the unit
sphere); cameras are :class:`~viewer.model.camera.Camera` (OpenCV axes, camera-to-world).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from viewer.model.camera import Camera

from .network import IDRNet, gradient
from .tracing import sphere_bounds, sphere_trace

__all__ = ["IDRModel", "camera_rays", "trace_and_shade", "render_image", "cpu_threads", "CHUNK"]

CHUNK = 8192  # rays per pass when rendering a whole image


@dataclass(eq=False)
class IDRModel:
    """A fitted IDR scene.

    Attributes
    ----------
    net : the SDF and rendering networks (and pose corrections when cameras were refined).
    plugin, config, metrics : what every TrainedModel has (config: the Config as a dict).
    centre, scale : the normalisation, world = centre + scale * x.
    background : RGB in 0..1 the photos were composited over.
    train_size : (width, height) of the first training frame at the training size.
    meta : orbit defaults, training camera centres (world; the mean view direction of exported
        vertex colours), the training views' names, the scene's path.
    """

    net: IDRNet
    plugin: str
    config: dict[str, Any]
    centre: np.ndarray
    scale: float
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    train_size: tuple[int, int] = (0, 0)
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def to_normalised(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, float) - self.centre) / self.scale

    def to_world(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float) * self.scale + self.centre


def camera_rays(camera: Camera, centre: np.ndarray, scale: float, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (H*W, 3) of every pixel centre, row by row, normalised frame."""
    o, d = camera.pixel_rays()
    o = (np.asarray(o, float) - centre) / scale
    d = d.reshape(-1, 3)
    ot = torch.tensor(o, dtype=torch.float32, device=device).expand(len(d), 3)
    return ot, torch.tensor(d, dtype=torch.float32, device=device)


def trace_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The sphere tracer's keyword arguments from a Config dict."""
    return {"steps": int(config["trace_steps"]), "samples": int(config["samples"]), "secant": int(config["secant_steps"])}


def trace_and_shade(net: IDRNet, o: torch.Tensor, d: torch.Tensor, config: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb (N, 3), hit (N,)) of rays, without gradients; rgb is 0 where nothing is hit."""
    with torch.no_grad():
        near, far, inside = sphere_bounds(o, d)
        far = torch.where(inside, far, near)
        t, hit = sphere_trace(net.sdf.sdf, o, d, near, far, **trace_settings(config))
        rgb = torch.zeros(len(o), 3, device=o.device)
        if hit.any():
            x = o[hit] + t[hit, None] * d[hit]
            out, g = gradient(net.sdf, x, create_graph=False)
            rgb[hit] = net.render(x, F.normalize(g, dim=-1), d[hit], out[:, 1:].detach())
    return rgb, hit


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (0: left alone) for the block, then restored."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


SUPERSAMPLE_RAYS = 256 * 256  # anti-aliasing never traces more rays than a 256² frame would


def samples_per_axis(camera: Camera, wanted: int) -> int:
    """Rays per pixel along each axis: ``wanted``, lowered until the frame has at most
    :data:`SUPERSAMPLE_RAYS` rays (a big or moving learned-view frame gets one per pixel)."""
    s = max(1, int(wanted))
    while s > 1 and camera.width * camera.height * s * s > SUPERSAMPLE_RAYS:
        s -= 1
    return s


def render_image(model: IDRModel, camera: Camera, background: Sequence[float] | None = None,
                 supersample: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 image in 0..1 of ``camera`` at its own size (row 0 at the top).

    Each pixel is the mean of s x s rays spread over its area (``supersample``, else the
    config's, capped by :func:`samples_per_axis`): one ray through the pixel centre gives the
    silhouette a hard, aliased edge where the photos have an area-averaged one (2x2 rays:
    +0.49 dB held-out PSNR on the globe for the same model, docs/PERFORMANCE.md).
    """
    s = samples_per_axis(camera, model.config.get("supersample", 2) if supersample is None else supersample)
    if s > 1:
        fine = render_image(model, camera.scaled(camera.width * s, camera.height * s), background, supersample=1)
        return fine.reshape(camera.height, s, camera.width, s, 3).mean(axis=(1, 3), dtype=np.float32)
    bg = np.asarray(model.background if background is None else background, np.float32)[:3]
    o, d = camera_rays(camera, model.centre, model.scale, model.device)
    rgbs, hits = [], []
    model.net.eval()
    with cpu_threads(int(model.config.get("threads", 0)) if model.device == "cpu" else 0):
        for i in range(0, len(d), CHUNK):
            rgb, hit = trace_and_shade(model.net, o[i:i + CHUNK], d[i:i + CHUNK], model.config)
            rgbs.append(rgb.cpu())
            hits.append(hit.cpu())
    rgb = torch.cat(rgbs).numpy()
    hit = torch.cat(hits).numpy()[:, None]
    img = np.where(hit, rgb, bg[None])
    return img.reshape(camera.height, camera.width, 3).astype(np.float32)
