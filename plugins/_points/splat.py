"""Point splatting in pure torch (CPU and CUDA; no OpenGL, no custom kernels).

A point is drawn as the one pixel its projection falls in, at every scale of a pyramid (full
resolution, 1/2, 1/4, ...): at scale ``s`` pixel ``(floor(u) >> s, floor(v) >> s)``, so the coarse
rasters see through the holes a sparse cloud leaves at full resolution (NPBG, Aliev et al. 2020).
Each pixel keeps the nearest point: a z-buffer by one ``scatter_reduce(..., "amin")`` over keys
``depth_bits << 32 | point_id`` (the IEEE bits of a positive float32 sort as the float does), so
ties in depth go to the lower point id; the coarser scales min-pool those keys 2 x 2 (the same
winners as a scatter of their own, at the cost of a few image-sized reductions). Points that are
dropped scatter into one spare cell past the image instead of being compacted out first.

Speed (a frame of 500 k points on one CPU thread): the cloud is kept as three contiguous
coordinate rows, projected by nine multiply-adds with the intrinsics folded into the rotation
(an (N, 3) x (3, 3) ``addmm`` took 5 ms on one thread and 24 ms on two, against 1 ms); a renderer
that only needs the pixels the cloud covers crops the full-scale keys to that box before the
pyramid (:func:`splat_box`).

Cameras are :class:`~viewer.model.camera.Camera` (OpenCV axes, camera-to-world; pixel (i, j)
spans [i, i + 1)); :meth:`Camera.project` is the reference, the same projection the mesh
rasterizer of the DNR renderers draws with. Points behind the near plane or whose projection
falls outside the image are dropped. Raster sizes are those of the image padded to a multiple of
``2 ** (scales - 1)``, halved per scale, so they line up with the levels of a U-Net.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from viewer.model.camera import Camera

__all__ = ["SCALES", "PointSet", "Projection", "project", "raster_sizes", "zbuffer", "splat", "gather",
           "pad_descriptors", "depth_keys", "key_pyramid", "key_ids", "cover_box", "splat_box",
           "Front", "front", "front_box", "key_depths", "front_rasters", "pixel_share"]

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

    @cached_property
    def rows(self) -> torch.Tensor:
        """(3, N) contiguous: x, y and z rows of ``local`` (what :func:`project` reads)."""
        return self.local.t().contiguous()

    @cached_property
    def ids(self) -> torch.Tensor:
        """(N,) int64 0..N-1: the low bits of the z-buffer's keys (made once, not per frame)."""
        return torch.arange(self.n, dtype=torch.int64, device=self.device)


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
    ids: torch.Tensor | None = None  # (N,) int64 0..N-1 when the caller has them made
    pix: torch.Tensor | None = None  # (N,) int64 flat full-scale pixel (h * w if dropped): set by depth_keys
    pix_width: int = 0  # the raster width ``pix`` was made for


def pixel_index(proj: Projection, h: int, w: int) -> torch.Tensor:
    """(N,) int64 flat index of each point's pixel in an (h, w) raster, ``h * w`` (a spare cell)
    for a dropped point; made once per projection and raster width."""
    if proj.pix is None or proj.pix_width != w:
        proj.pix = torch.where(proj.keep, proj.v.long() * w + proj.u.long(),
                               torch.full_like(proj.u, h * w, dtype=torch.int64))
        proj.pix_width = w
    return proj.pix


def project(points: PointSet, camera: Camera) -> Projection:
    """Project ``points`` through ``camera`` (OpenCV axes) in float32 on the points' device."""
    w2c = np.asarray(camera.w2c, np.float64)
    k = np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]], np.float64)
    # K [R | t] of the local frame (the translation: w2c applied to the origin, in float64)
    m = (k @ w2c[:3, :3]).tolist()
    t = (k @ (w2c[:3, :3] @ points.origin + w2c[:3, 3])).tolist()
    x, y, z = points.rows
    uvz = []
    for r in range(3):
        a = x * m[r][0]
        uvz.append(a.add_(y, alpha=m[r][1]).add_(z, alpha=m[r][2]).add_(t[r]))
    zc = uvz[2]
    zs = torch.where(zc > 0, zc, torch.ones_like(zc))
    u, v = uvz[0].div_(zs), uvz[1].div_(zs)
    keep = (zc > _NEAR * points.extent) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return Projection(u, v, zc, keep, camera.width, camera.height, points.ids)


def raster_sizes(width: int, height: int, scales: int = SCALES) -> list[tuple[int, int]]:
    """(height, width) of each scale's raster: the image padded to a multiple of
    ``2 ** (scales - 1)``, halved per scale."""
    m = 2 ** (scales - 1)
    hp, wp = -(-height // m) * m, -(-width // m) * m
    return [(hp >> s, wp >> s) for s in range(scales)]


def depth_keys(proj: Projection, scales: int = SCALES) -> torch.Tensor:
    """(H_0, W_0) int64 z-buffer at full scale: per pixel the least ``depth_bits << 32 | id`` of
    the points drawn there, ``_EMPTY`` where none (size: the first of :func:`raster_sizes`)."""
    h, w = raster_sizes(proj.width, proj.height, scales)[0]
    dev = proj.u.device
    # a dropped point goes to the spare cell h * w (no compaction of the kept ones first)
    pix = pixel_index(proj, h, w)
    key = proj.z.view(torch.int32).long().bitwise_left_shift_(_ID_BITS)  # positive floats: monotone bits
    key.bitwise_or_(proj.ids if proj.ids is not None else torch.arange(len(key), dtype=torch.int64, device=dev))
    buf = torch.full((h * w + 1,), _EMPTY, dtype=torch.int64, device=dev)
    buf.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)
    return buf[:h * w].view(h, w)


def key_pyramid(keys: torch.Tensor, scales: int = SCALES) -> list[torch.Tensor]:
    """``scales`` key images from the full-scale one (sides multiples of ``2 ** (scales - 1)``):
    a coarser pixel's winner is the least key of the 2 x 2 finer pixels under it (the minimum
    over a union is the minimum of the minima), so one scatter serves every scale. Two
    ``minimum``s of strided halves (rows, then columns): 40x faster on CPU than ``amin`` over
    the 2 x 2 axes of a view."""
    out = [keys]
    for _ in range(1, scales):
        rows = torch.minimum(out[-1][0::2], out[-1][1::2])
        out.append(torch.minimum(rows[:, 0::2], rows[:, 1::2]))
    return out


def key_ids(keys: torch.Tensor) -> torch.Tensor:
    """The point ids of a key image, -1 where empty."""
    return torch.where(keys == _EMPTY, torch.full_like(keys, -1), keys & ((1 << _ID_BITS) - 1))


def zbuffer(proj: Projection, scales: int = SCALES) -> list[torch.Tensor]:
    """The nearest point's id per pixel at each scale: ``scales`` int64 tensors (H_s, W_s), -1
    where no point falls (sizes :func:`raster_sizes`)."""
    return [key_ids(k) for k in key_pyramid(depth_keys(proj, scales), scales)]


def splat(points: PointSet, camera: Camera, scales: int = SCALES) -> list[torch.Tensor]:
    """:func:`zbuffer` of :func:`project`: per scale, the id of the point each pixel shows, or -1."""
    return zbuffer(project(points, camera), scales)


def cover_box(covered: torch.Tensor, margin: int, multiple: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the ``covered`` (H, W) pixels, ``margin`` more on every side, every
    edge on a multiple of ``multiple`` (H and W are multiples of it) and clipped to the image;
    None if nothing is covered."""
    rows = torch.nonzero(covered.any(1)).squeeze(1)
    if not len(rows):
        return None
    cols = torch.nonzero(covered.any(0)).squeeze(1)
    h, w = covered.shape

    def span(lo: int, hi: int, n: int) -> tuple[int, int]:
        return max(0, (lo - margin) // multiple * multiple), min(n, -(-(hi + 1 + margin) // multiple) * multiple)

    x0, x1 = span(int(cols[0]), int(cols[-1]), w)
    y0, y1 = span(int(rows[0]), int(rows[-1]), h)
    return x0, y0, x1, y1


def splat_box(points: PointSet, camera: Camera, scales: int = SCALES, margin: int | None = None,
              proj: Projection | None = None) -> tuple[list[torch.Tensor], tuple[int, int]] | None:
    """:func:`splat` of only the box around the pixels the cloud covers (``margin`` pixels more,
    default ``2 ** (scales - 1)``, aligned to that multiple so every scale crops to whole cells):
    the per-scale ids of the box and its top-left (x0, y0) in the full-scale raster; None if no
    point is drawn. Each scale equals the same crop of :func:`splat`'s. ``proj``: the points
    already projected through ``camera`` (a caller that needs the projection too)."""
    m = 2 ** (scales - 1)
    keys = depth_keys(project(points, camera) if proj is None else proj, scales)
    box = cover_box(keys != _EMPTY, m if margin is None else int(margin), m)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return [key_ids(k) for k in key_pyramid(keys[y0:y1, x0:x1].contiguous(), scales)], (x0, y0)


def front_box(points: PointSet, camera: Camera, tolerance: float, scales: int = SCALES,
              margin: int | None = None, proj: Projection | None = None
              ) -> tuple[list[torch.Tensor], Front, tuple[int, int]] | None:
    """:func:`splat_box` with the :class:`Front` of the box (its ``pix`` index the box's full
    scale): per-scale ids, the front and the box's top-left; None if no point is drawn."""
    m = 2 ** (scales - 1)
    proj = project(points, camera) if proj is None else proj
    keys = depth_keys(proj, scales)
    box = cover_box(keys != _EMPTY, m if margin is None else int(margin), m)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    fr = front(proj, keys, tolerance, camera.fx, scales)
    w = keys.shape[1]
    py, px = torch.div(fr.pix, w, rounding_mode="floor"), fr.pix % w
    pix = (py - y0) * (x1 - x0) + (px - x0)  # every front pixel is inside the box around the covered ones
    pool = [p[y0 >> s:y1 >> s, x0 >> s:x1 >> s] for s, p in enumerate(fr.pool)]
    ids = [key_ids(k) for k in key_pyramid(keys[y0:y1, x0:x1].contiguous(), scales)]
    return ids, Front(pix, fr.pid, pool), (x0, y0)


def gather(descriptors: torch.Tensor, ids: torch.Tensor, padded: bool = False) -> torch.Tensor:
    """Per-pixel descriptors: ``descriptors`` (N, C) at ``ids`` (..., H, W) (-1 = empty, zeros)
    as (..., C, H, W) (channels-last memory). ``padded``: ``descriptors`` already has the zero
    row first (N + 1, C) (:func:`pad_descriptors`; made once for all scales, not once per
    scale). One ``index_select`` (5x faster than advanced indexing on CPU, and its backward
    is an ``index_add_``)."""
    pad = descriptors if padded else pad_descriptors(descriptors)
    out = pad.index_select(0, (ids + 1).reshape(-1)).view(*ids.shape, pad.shape[1])  # (..., H, W, C)
    return out.movedim(-1, -3)


def pad_descriptors(descriptors: torch.Tensor) -> torch.Tensor:
    """(N + 1, C): a zero row (empty pixels) and then ``descriptors``."""
    return torch.cat([descriptors.new_zeros(1, descriptors.shape[1]), descriptors], 0)


# -- averaging the front surface's points (``Front``) -------------------------------------------
#
# The z-buffer shows one point per pixel: in a cloud of several points per pixel, which one wins
# is a matter of chance, so the image is a random sample of the surface inside each pixel rather
# than its mean (a per-pixel noise the U-Net cannot remove: it does not know where the winner lies
# inside its pixel). ``front`` keeps every point within a depth tolerance of the pixel's nearest
# one, and :func:`front_rasters` draws their mean: a box filter over the visible surface, as a
# photo's pixel integrates it.


def key_depths(keys: torch.Tensor) -> torch.Tensor:
    """The depth of each key's point (float32, same shape), +inf where the key is empty."""
    bits = (keys >> _ID_BITS).to(torch.int32)  # the float32 bits of a positive depth
    return torch.where(keys == _EMPTY, torch.full_like(keys, 0x7F800000, dtype=torch.int32), bits).view(torch.float32)


@dataclass(eq=False)
class Front:
    """The points that make up each pixel's visible surface, at full scale and, by pooling, the
    coarser ones.

    ``pix`` (E,) int64 flat index of the entry's pixel in the full-scale raster (H_0 x W_0, or B x
    H_0 x W_0 for a batch), ``pid`` (E,) int64 the entry's point; ``pool[s - 1]`` (..., H_{s-1},
    W_{s-1}) bool for s = 1 .. scales - 1: the finer pixels whose surface is the front one of the
    coarser pixel above them (a pixel of a surface further back under the same coarse pixel is
    left out of its mean, as the z-buffer leaves it out of the nearest)."""

    pix: torch.Tensor
    pid: torch.Tensor
    pool: list[torch.Tensor]


def front(proj: Projection, keys: torch.Tensor, tolerance: float, fx: float, scales: int = SCALES) -> Front:
    """The front surface of every pixel of a full-scale key image (:func:`depth_keys` of
    ``proj``): the kept points whose depth is within ``tolerance`` pixel footprints (a footprint:
    depth / ``fx``, the width a pixel covers at that depth) of the nearest point drawn there, and
    the pooling masks of the coarser scales (a footprint doubles per scale)."""
    h, w = keys.shape
    zmin = key_depths(keys)
    pix = pixel_index(proj, h, w)
    # the spare cell of the dropped points holds -inf: no depth passes its test (one compaction)
    limit = torch.cat([zmin.reshape(-1), zmin.new_full((1,), -float("inf"))])
    limit.mul_(1.0 + float(tolerance) / max(float(fx), 1e-12))
    idx = torch.nonzero(proj.z <= limit.index_select(0, pix)).squeeze(1)
    pool = []
    fine = zmin
    for s in range(1, scales):
        rows = torch.minimum(fine[0::2], fine[1::2])
        coarse = torch.minimum(rows[:, 0::2], rows[:, 1::2])
        hc, wc = coarse.shape
        lim = (coarse * (1.0 + float(tolerance) * (1 << s) / max(float(fx), 1e-12)))[:, None, :, None]
        pool.append((fine.view(hc, 2, wc, 2) <= lim).view(hc * 2, wc * 2))  # an empty fine pixel: inf, out
        fine = coarse
    return Front(pix.index_select(0, idx), idx, pool)


def front_rasters(values: torch.Tensor, fr: Front, batch: int, height: int, width: int,
                  scales: int) -> list[torch.Tensor]:
    """Per scale (B, H_s, W_s, C + 1): the mean of ``values`` (N, C) over each pixel's front
    points (zeros where none) and the coverage (1 where any). The full scale by one
    ``index_add`` of the entries' values (channels first) and a ``bincount`` of their pixels; each coarser scale
    adds the 2 x 2 finer sums (strided halves, as :func:`key_pyramid`) of the pixels its pooling
    mask keeps."""
    c = values.shape[1]
    n = batch * height * width
    # channels first: an index_add along the last dim adds whole runs of one channel, and runs
    # on two threads 4x faster than along dim 0 (10.3 -> 2.5 ms for 190 k entries into 256²,
    # where the rows' scatter slows down with a second thread)
    acc = values.new_zeros(c, n).index_add(1, fr.pix, values.index_select(0, fr.pid).t())
    cnt = torch.bincount(fr.pix, minlength=n).to(values.dtype)
    sums = [torch.cat([acc.t(), cnt[:, None]], 1).view(batch, height, width, c + 1)]
    for s in range(1, scales):
        a = sums[-1] * fr.pool[s - 1].to(values.dtype)[..., None]
        rows = a[:, 0::2] + a[:, 1::2]
        sums.append(rows[:, :, 0::2] + rows[:, :, 1::2])
    out = []
    for a in sums:
        k = a[..., c:]
        out.append(torch.cat([a[..., :c] / k.clamp(min=1.0), (k > 0).to(values.dtype)], -1))
    return out

def pixel_share(proj: Projection, height: int, width: int, k: int) -> torch.Tensor:
    """(height, width) float32: the share of each pixel's k x k sub-cells that some kept point
    projects into (the padded raster's size; cells past the image stay 0).

    A photo's pixel on a silhouette blends the object with the background by how much of the
    pixel the object covers; the z-buffer only says that some point fell in the pixel. This is
    the points' analogue of DNR's pixel coverage from k x k raster samples: in a cloud of a
    few points per sub-cell, where along a pixel the surface ends."""
    kw, n = width * k, height * k * width * k
    su = (proj.u * k).long().clamp_(0, kw - 1)  # (a kept point's u * k can round up to the edge)
    sv = (proj.v * k).long().clamp_(0, height * k - 1)
    # a dropped point marks one spare cell past the raster (no boolean compaction: 2x faster)
    idx = torch.where(proj.keep, sv.mul_(kw).add_(su), torch.full_like(su, n))
    occ = torch.zeros(n + 1, dtype=torch.float32, device=proj.u.device)
    occ[idx] = 1.0
    return occ[:n].view(height, k, width, k).sum((1, 3)).mul_(1.0 / (k * k))
