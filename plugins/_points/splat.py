"""Point splatting in pure torch (CPU and CUDA; no OpenGL, no custom kernels).

A point is drawn as the one pixel its projection falls in, at every scale of a pyramid (full
resolution, 1/2, 1/4, ...): at scale ``s`` pixel ``(floor(u) >> s, floor(v) >> s)``, so the coarse
rasters see through the holes a sparse cloud leaves at full resolution (NPBG, Aliev et al. 2020).
Each pixel keeps the nearest point: a z-buffer by one ``scatter_reduce(..., "amin")`` over keys
``depth_bits << 32 | point_id`` (the IEEE bits of a positive float32 sort as the float does), so
ties in depth go to the lower point id; the coarser scales min-pool those keys 2 x 2 (the same
winners as a scatter of their own, at the cost of a few image-sized reductions).

Cameras are :class:`~viewer.model.camera.Camera` (OpenCV axes, camera-to-world; pixel (i, j)
spans [i, i + 1)); :meth:`Camera.project` is the reference, the same projection the mesh
rasterizer of the DNR renderers draws with. Points behind the near plane or whose projection
falls outside the image are dropped. Raster sizes are those of the image padded to a multiple of
``2 ** (scales - 1)``, halved per scale, so they line up with the levels of a U-Net.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from viewer.model.camera import Camera

__all__ = ["SCALES", "PointSet", "Projection", "project", "raster_sizes", "zbuffer", "splat", "gather",
           "pad_descriptors"]

SCALES = 5  # full, 1/2, 1/4, 1/8, 1/16
_NEAR = 1e-6  # fraction of the cloud's extent in front of the camera below which a point is dropped
_ID_BITS = 32
_EMPTY = torch.iinfo(torch.int64).max


@dataclass(eq=False)
class PointSet:
    """A cloud on a torch device, stored relative to ``origin`` (float64, world) in float32 so
    that large world coordinates (metres of a projected CRS) keep their precision.

    Build with :meth:`from_numpy`.
    """

    local: torch.Tensor  # (N, 3) float32 = points - origin
    origin: np.ndarray  # (3,) float64
    extent: float  # bounding-box diagonal, world units

    @classmethod
    def from_numpy(cls, points: np.ndarray, device: str | torch.device = "cpu") -> "PointSet":
        p = np.asarray(points, np.float64).reshape(-1, 3)
        origin = p.mean(0) if len(p) else np.zeros(3)
        extent = float(np.linalg.norm(p.max(0) - p.min(0))) if len(p) else 1.0
        return cls(torch.from_numpy((p - origin).astype(np.float32)).to(device), origin, max(extent, 1e-12))

    @property
    def n(self) -> int:
        return int(self.local.shape[0])

    @property
    def device(self) -> torch.device:
        return self.local.device


@dataclass(eq=False)
class Projection:
    """Every point through one camera: pixel coordinates ``u``, ``v`` (N,) float32 (pixel i spans
    [i, i + 1)), depth ``z`` (N,) along the optical axis and ``keep`` (N,) bool: in front of the
    near plane and inside the image."""

    u: torch.Tensor
    v: torch.Tensor
    z: torch.Tensor
    keep: torch.Tensor
    width: int
    height: int


def project(points: PointSet, camera: Camera) -> Projection:
    """Project ``points`` through ``camera`` (OpenCV axes) in float32 on the points' device."""
    dev = points.device
    w2c = camera.w2c
    rot = torch.as_tensor(w2c[:3, :3], dtype=torch.float32, device=dev)
    # the translation of the local frame: w2c applied to the origin (float64, then float32)
    t = torch.as_tensor(w2c[:3, :3] @ points.origin + w2c[:3, 3], dtype=torch.float32, device=dev)
    pc = torch.addmm(t, points.local, rot.t())
    z = pc[:, 2]
    zs = torch.where(z > 0, z, torch.ones_like(z))
    u = pc[:, 0] / zs * float(camera.fx) + float(camera.cx)
    v = pc[:, 1] / zs * float(camera.fy) + float(camera.cy)
    keep = (z > _NEAR * points.extent) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return Projection(u, v, z, keep, camera.width, camera.height)


def raster_sizes(width: int, height: int, scales: int = SCALES) -> list[tuple[int, int]]:
    """(height, width) of each scale's raster: the image padded to a multiple of
    ``2 ** (scales - 1)``, halved per scale."""
    m = 2 ** (scales - 1)
    hp, wp = -(-height // m) * m, -(-width // m) * m
    return [(hp >> s, wp >> s) for s in range(scales)]


def zbuffer(proj: Projection, scales: int = SCALES) -> list[torch.Tensor]:
    """The nearest point's id per pixel at each scale: ``scales`` int64 tensors (H_s, W_s), -1
    where no point falls (sizes :func:`raster_sizes`)."""
    sizes = raster_sizes(proj.width, proj.height, scales)
    ids = torch.nonzero(proj.keep).squeeze(1)
    dev = proj.u.device
    x = proj.u[ids].floor().long()
    y = proj.v[ids].floor().long()
    bits = proj.z[ids].contiguous().view(torch.int32).long()  # positive floats: monotone bits
    key = (bits << _ID_BITS) | ids
    h, w = sizes[0]
    buf = torch.full((h * w,), _EMPTY, dtype=torch.int64, device=dev)
    buf.scatter_reduce_(0, y * w + x, key, reduce="amin", include_self=True)
    # a coarser pixel's winner is the least key of the 2 x 2 finer pixels under it (the minimum
    # over a union is the minimum of the minima): one scatter at full scale, then min-pooling
    keys = [buf.view(h, w)]
    for s in range(1, scales):
        hs, ws = sizes[s]
        keys.append(keys[-1].view(hs, 2, ws, 2).amin(dim=(1, 3)))
    return [torch.where(k == _EMPTY, torch.full_like(k, -1), k & ((1 << _ID_BITS) - 1)) for k in keys]


def splat(points: PointSet, camera: Camera, scales: int = SCALES) -> list[torch.Tensor]:
    """:func:`zbuffer` of :func:`project`: per scale, the id of the point each pixel shows, or -1."""
    return zbuffer(project(points, camera), scales)


def gather(descriptors: torch.Tensor, ids: torch.Tensor, padded: bool = False) -> torch.Tensor:
    """Per-pixel descriptors: ``descriptors`` (N, C) at ``ids`` (..., H, W) (-1 = empty, zeros)
    as (..., C, H, W). ``padded``: ``descriptors`` already has the zero row first (N + 1, C)
    (:func:`pad_descriptors`; made once for all scales, not once per scale)."""
    pad = descriptors if padded else pad_descriptors(descriptors)
    out = pad[ids + 1]  # (..., H, W, C)
    return out.movedim(-1, -3)


def pad_descriptors(descriptors: torch.Tensor) -> torch.Tensor:
    """(N + 1, C): a zero row (empty pixels) and then ``descriptors``."""
    return torch.cat([descriptors.new_zeros(1, descriptors.shape[1]), descriptors], 0)
