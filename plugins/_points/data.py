"""Training data of the point renderers: per frame, the ids of the points each pixel shows at
every scale (:mod:`.splat`, computed once for the whole fit), the photo composited over the
background, and the camera for per-pixel view directions; random crops of a few frames per step.

Crops are aligned to the coarsest scale (their corner and size are multiples of
``2 ** (scales - 1)`` pixels), so every scale's raster crops to exactly the cells under the
crop. Rasters cover the frame padded to that multiple (:func:`~.splat.raster_sizes`); the padding
shows no point and its target is the background.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from plugins._nr.data import ViewData, evenly_spaced, resize_image, training_camera
from viewer.model.camera import Camera
from viewer.model.viewset import Frame

from .splat import Front, PointSet, Projection, depth_keys, front, key_ids, key_pyramid, pixel_share, project

__all__ = ["PointView", "PointBatch", "prepare_point_views", "point_batch", "full_point_batch",
           "random_point_batch", "ray_dirs", "view_rasters", "crop_front", "interior_fill"]


@dataclass(eq=False)
class PointView(ViewData):
    """One frame at the training size (a :class:`~plugins._nr.data.ViewData` without uv or
    normals): ``ids`` per scale (H_s, W_s) int32 (-1 = no point) of the padded frame; ``mask``
    the frame's pixels a point is drawn in (full scale); ``target`` (H, W, 3) float32 photo over
    the background."""

    ids: list[torch.Tensor] = field(default_factory=list)
    front: Front | None = None  # the front points of each pixel (a renderer that averages them)
    share: torch.Tensor | None = None  # (H_0, W_0) float32: :func:`~.splat.pixel_share` (a renderer that reads it)


@dataclass(eq=False)
class PointBatch:
    """What a point renderer's network sees: ``ids`` per scale (B, H_s, W_s) int64 on the
    device, unit world view ``dirs`` (B, 3, H_0, W_0) (camera -> scene), and ``shape`` (B, H, W)
    of the images it returns (the top-left of the rasters' full scale); ``front`` (its ``pix``
    into B x H_0 x W_0) when the renderer draws the mean of each pixel's front points."""

    ids: list[torch.Tensor]
    dirs: torch.Tensor
    shape: tuple[int, int, int]
    front: Front | None = None
    share: torch.Tensor | None = None  # (B, 1, H_0, W_0): each pixel's covered share, when the renderer reads it


def view_rasters(points: PointSet, camera: Camera, scales: int, average: float | None = None,
                 keep: torch.Tensor | None = None, proj: Projection | None = None
                 ) -> tuple[list[torch.Tensor], Front | None]:
    """Per-scale ids (int32) of one camera, and with ``average`` (a depth tolerance in pixel
    footprints) the :class:`~.splat.Front` (int32 indices), ``keep`` (N,) bool: only these points;
    ``proj``: the points already projected through ``camera``."""
    proj = project(points, camera) if proj is None else proj
    if keep is not None:
        proj.keep &= keep
    keys = depth_keys(proj, scales)
    ids = [key_ids(k).to(torch.int32) for k in key_pyramid(keys, scales)]
    if average is None:
        return ids, None
    fr = front(proj, keys, average, camera.fx, scales)
    return ids, Front(fr.pix.to(torch.int32), fr.pid.to(torch.int32), fr.pool)


def prepare_point_views(frames: Sequence[Frame], points: PointSet, size: int, background: Sequence[float],
                        scales: int, report: Callable[[int, int], None] | None = None,
                        average: float | None = None, share: int = 0) -> list[PointView]:
    """Splat every frame once at the training size (longer side ``size``); ``average``: keep
    each pixel's front points too (:func:`view_rasters`); ``share`` > 0: each pixel's covered
    share of ``share`` x ``share`` sub-cells (:func:`~.splat.pixel_share`)."""
    out = []
    for i, f in enumerate(frames):
        cam = training_camera(f.camera, size)
        w, h = cam.width, cam.height
        proj = project(points, cam)  # one projection for the rasters and the share
        ids, fr = view_rasters(points, cam, scales, average, proj=proj)
        ids = [t.to("cpu") for t in ids]
        if fr is not None:
            fr = Front(fr.pix.cpu(), fr.pid.cpu(), [p.cpu() for p in fr.pool])
        target = torch.from_numpy(resize_image(f.rgb(background), w, h))
        sh = pixel_share(proj, *ids[0].shape, share).cpu() if share else None
        out.append(PointView(f.name or f.camera.name, cam, uv=None, mask=ids[0][:h, :w] >= 0, target=target, ids=ids,
                             front=fr, share=sh))
        if report is not None:
            report(i + 1, len(frames))
    return out


def interior_fill(frames: Sequence[Frame], points: PointSet, size: int, k: int, sample: int = 8) -> float:
    """The mean share of k x k sub-cells a point falls in, over the pixels inside the drawn object
    (a point in the pixel and in its eight neighbours) of up to ``sample`` frames at the training
    size. Near 1 when the cloud is dense enough for each pixel's covered share to trace a
    silhouette; well below it the share is the cloud's sampling noise over the whole surface."""
    fills = []
    for f in evenly_spaced(frames, sample):
        cam = training_camera(f.camera, size)
        share = pixel_share(project(points, cam), cam.height, cam.width, k)
        drawn = (share > 0).to(torch.float32)[None, None]
        inside = F.avg_pool2d(drawn, 3, 1, 1)[0, 0] > 0.999
        if inside.any():
            fills.append(float(share[inside].mean()))
    return float(np.mean(fills)) if fills else 0.0


def _dropped(view: PointView, points: PointSet, dropout: float, rng: np.random.Generator,
             average: float | None = None) -> PointView:
    """``view`` with its rasters splatted from a random ``1 - dropout`` of the points."""
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    keep = torch.rand(points.n, generator=gen) >= dropout
    ids, fr = view_rasters(points, view.camera, len(view.ids), average, keep.to(points.device))
    return replace(view, ids=ids, front=fr)


def ray_dirs(cams: Sequence[Camera], x0: Sequence[int], y0: Sequence[int], h: int, w: int,
             device) -> torch.Tensor:
    """(B, 3, h, w) unit world directions through the pixel centres of crops whose top-left
    pixels are (x0, y0) in their cameras' images (channels-last memory, as the U-Net runs)."""
    k = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cams], dtype=torch.float32, device=device)
    r = torch.tensor(np.stack([c.c2w[:3, :3] for c in cams]), dtype=torch.float32, device=device)
    xs = torch.arange(w, dtype=torch.float32, device=device)[None] + torch.tensor(x0, device=device)[:, None] + 0.5
    ys = torch.arange(h, dtype=torch.float32, device=device)[None] + torch.tensor(y0, device=device)[:, None] + 0.5
    dx = ((xs - k[:, 2:3]) / k[:, 0:1])[:, None, :]  # (B, 1, w)
    dy = ((ys - k[:, 3:4]) / k[:, 1:2])[:, :, None]  # (B, h, 1)
    # the camera ray (dx, dy, 1) normalised first (a rotation keeps its length): one image-sized
    # rsqrt instead of a vector norm of the rotated image (6 ms at 256² on one CPU thread)
    inv = torch.rsqrt(dx * dx + dy * dy + 1.0)  # (B, h, w)
    # world = R (camera ray), one multiply-add image per output channel (no K=3 matmul: slow on CPU)
    rows = [(r[:, j, 0, None, None] * dx + r[:, j, 1, None, None] * dy + r[:, j, 2, None, None]) * inv
            for j in range(3)]
    return torch.stack(rows, -1).permute(0, 3, 1, 2)


def point_batch(ids: list[torch.Tensor], cams: Sequence[Camera], x0: Sequence[int], y0: Sequence[int],
                out_hw: tuple[int, int], device, front: Front | None = None,
                share: torch.Tensor | None = None) -> PointBatch:
    """A PointBatch from stacked per-scale ids (B, H_s, W_s) of crops at (x0, y0) (and their
    front points, ``pix`` into B x H_0 x W_0, pooling masks (B, H_s, W_s))."""
    ids = [t.to(device, torch.int64) for t in ids]
    h0, w0 = ids[0].shape[-2:]
    if front is not None:
        front = Front(front.pix.to(device, torch.int64), front.pid.to(device, torch.int64),
                      [p.to(device) for p in front.pool])
    if share is not None:
        share = share.to(device, torch.float32)[:, None]
    return PointBatch(ids, ray_dirs(cams, x0, y0, h0, w0, device), (ids[0].shape[0], *out_hw), front, share)


def full_point_batch(view: PointView, device="cpu") -> PointBatch:
    """The whole frame as a batch of one."""
    fr = None if view.front is None else Front(view.front.pix, view.front.pid, [p[None] for p in view.front.pool])
    sh = None if view.share is None else view.share[None]
    return point_batch([t[None] for t in view.ids], [view.camera], [0], [0], view.shape, device, fr, sh)


def crop_front(fr: Front, width: int, x0: int, y0: int, ch: int, cw: int, index: int) -> Front:
    """The entries of ``fr`` (a frame ``width`` pixels wide) inside the crop (x0, y0, cw, ch),
    their ``pix`` into the crop as item ``index`` of a batch; the pooling masks cropped."""
    py = torch.div(fr.pix, width, rounding_mode="floor")
    px = fr.pix - py * width
    sel = (py >= y0) & (py < y0 + ch) & (px >= x0) & (px < x0 + cw)
    pix = (index * ch + (py[sel] - y0)) * cw + (px[sel] - x0)
    pool = [p[y0 >> s:(y0 + ch) >> s, x0 >> s:(x0 + cw) >> s] for s, p in enumerate(fr.pool)]
    return Front(pix, fr.pid[sel], pool)


def random_point_batch(views: Sequence[PointView], n: int, crop: int, rng: np.random.Generator,
                       device="cpu", background: Sequence[float] = (1.0, 1.0, 1.0), points: PointSet | None = None,
                       dropout: float = 0.0, average: float | None = None) -> tuple[PointBatch, torch.Tensor]:
    """``n`` random crops (aligned, see the module docstring) of about ``crop`` pixels, each on a
    random drawn pixel 90 % of the time; the batch and the targets (B, 3, c, c).

    ``dropout`` > 0 (with ``points``): each crop's frame is splatted afresh without a random
    ``dropout`` share of the points. In a cloud of several points per pixel, the z-buffer's
    winners are otherwise the same few per training view, whose descriptors can then learn that
    view alone (its highlights, its noise): a fit that memorises the training views."""
    scales = len(views[0].ids)
    m = 2 ** (scales - 1)
    picks = [views[int(i)] for i in rng.integers(0, len(views), size=n)]
    if dropout > 0 and points is not None:
        picks = [_dropped(v, points, dropout, rng, average) for v in picks]
    c = max(m, -(-int(crop or 1 << 30) // m) * m)
    ch = min([c] + [v.ids[0].shape[0] for v in picks])
    cw = min([c] + [v.ids[0].shape[1] for v in picks])
    ids: list[list[torch.Tensor]] = [[] for _ in range(scales)]
    targets, xs, ys, fronts, shares = [], [], [], [], []
    bg = torch.tensor(background, dtype=torch.float32)
    for v in picks:
        hp, wp = v.ids[0].shape
        h, w = v.shape
        cov = v.covered
        if len(cov) and rng.random() < 0.9:
            yc, xc = divmod(int(cov[int(rng.integers(0, len(cov)))]), w)
        else:
            yc, xc = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0 = int(np.clip((yc - ch // 2) // m * m, 0, hp - ch))
        x0 = int(np.clip((xc - cw // 2) // m * m, 0, wp - cw))
        for s in range(scales):
            ids[s].append(v.ids[s][y0 >> s:(y0 + ch) >> s, x0 >> s:(x0 + cw) >> s])
        if v.front is not None:
            fronts.append(crop_front(v.front, wp, x0, y0, ch, cw, len(fronts)))
        if v.share is not None:
            shares.append(v.share[y0:y0 + ch, x0:x0 + cw])
        t = bg.expand(ch, cw, 3).clone()
        th, tw = max(0, min(ch, h - y0)), max(0, min(cw, w - x0))
        t[:th, :tw] = v.target[y0:y0 + th, x0:x0 + tw]
        targets.append(t)
        xs.append(x0)
        ys.append(y0)
    fr = None
    if fronts:
        fr = Front(torch.cat([f.pix.long() for f in fronts]), torch.cat([f.pid.long() for f in fronts]),
                   [torch.stack([f.pool[s] for f in fronts]) for s in range(scales - 1)])
    batch = point_batch([torch.stack(t) for t in ids], [v.camera for v in picks], xs, ys, (ch, cw), device, fr,
                        torch.stack(shares) if shares else None)
    target = torch.stack(targets).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).to(device)
    return batch, target

