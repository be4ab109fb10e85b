"""A point renderer fitted and drawn: the point cloud as the shared fitting loop's geometry
(:class:`plugins._nr.fit.FitGeometry`), the checks a cloud must pass first, and rendering a
camera with a fitted model."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from plugins._nr.checkpoint import MAX_CLOUD_POINTS, points_digest
from plugins._nr.data import photos_blend_edges
from plugins._nr.fit import FitGeometry, fit_geometry, split_views
from plugins._nr.model import NRModel, composite
from viewer.jobs.progress import Progress
from viewer.model.camera import Camera
from viewer.model.geometry import PointCloud
from viewer.model.viewset import Frame, ViewSet
from viewer.plugins import GeometryError
from viewer.plugins.precision import autocast

from .data import full_point_batch, interior_fill, point_batch, prepare_point_views, random_point_batch
from .splat import PointSet, front_box, pixel_share, project, raster_sizes, splat_box

__all__ = ["check_cloud", "fit_points", "render_points", "point_set"]


def check_cloud(cloud: Any, cameras: Sequence[Camera]) -> None:
    """GeometryError (a ValueError, one line) for a cloud a point renderer cannot fit: not a point cloud, empty,
    over :data:`MAX_CLOUD_POINTS`, NaN or infinite coordinates, no point in any camera's view."""
    if not isinstance(cloud, PointCloud) or cloud.n_points == 0:
        raise GeometryError("a point renderer needs a point cloud with at least one point")
    if cloud.n_points > MAX_CLOUD_POINTS:
        raise GeometryError(f"the point cloud has {cloud.n_points:,} points; at most {MAX_CLOUD_POINTS:,} are supported "
                         "(subsample it first)")
    if not np.all(np.isfinite(cloud.points)):
        bad = int((~np.isfinite(cloud.points).all(1)).sum())
        raise GeometryError(f"the point cloud has {bad} points with NaN or infinite coordinates")
    pts = PointSet.from_numpy(cloud.points)
    if not any(bool(project(pts, c).keep.any()) for c in cameras):
        raise GeometryError("no point of the cloud is in any training camera's view: is it in the cameras' world "
                         "frame and units?")


def point_set(model: NRModel) -> PointSet:
    """The model's cloud on its device (made once, kept in the model's meta)."""
    key = ("_points", id(model.points), str(model.device))
    cached = model.meta.get("_point_set")
    if not (isinstance(cached, tuple) and cached[0] == key):
        cached = model.meta["_point_set"] = (key, PointSet.from_numpy(model.points.points, model.device))
    return cached[1]


def fit_points(views: ViewSet | Sequence[Frame], cloud: PointCloud, cfg: Any, progress: Progress, *,
               plugin: str, build: Callable[[dict, dict], torch.nn.Module],
               checkpoint_dir: str | os.PathLike | None = None, sources: Mapping[str, str] | None = None,
               extra_loss: Callable | None = None, init: Mapping[str, Any] | None = None) -> NRModel:
    """Fit ``build`` (a :class:`~.network.PointRendererNet`) to the photos of ``views`` drawn from
    ``cloud``; see :func:`plugins._nr.fit.fit_renderer` for the loop, the held-out views and
    the checkpoint. ``init`` goes to ``build`` (beside n_points, colours and the photo mean)."""
    train, _, _ = split_views(views, cfg.val_views, getattr(cfg, "val_fraction", 0.0))
    check_cloud(cloud, [f.camera for f in train])
    scales = int(cfg.unet_levels)
    pts = PointSet.from_numpy(cloud.points)
    background = tuple(float(c) for c in (views.background if isinstance(views, ViewSet) else (1.0, 1.0, 1.0)))
    average = float(cfg.splat_depth) if getattr(cfg, "splat_average", False) else None
    if getattr(cfg, "coverage", 1) == 0:  # decided here from the photos and the cloud, stored as decided
        # the share when the photos blend the silhouette (as DNR's) and the cloud fills the sub-cells
        # inside the object (else the share is its sampling noise: docs/PERFORMANCE.md)
        dense = photos_blend_edges(train, cfg.size) and interior_fill(train, pts, cfg.size, 3) >= _FILL
        cfg = replace(cfg, coverage=3 if dense else 1)
    share = int(cfg.coverage) if getattr(cfg, "coverage", 1) > 1 else 0  # 1: none
    colors = None if cloud.colors is None else torch.from_numpy(np.asarray(cloud.colors, np.float32) / 255.0)
    geo = FitGeometry(
        "points", cloud, points_digest(cloud),
        lambda frames, size, bg, report: prepare_point_views(frames, pts, size, bg, scales, report, average, share),
        partial(random_point_batch, background=background, points=pts,
                dropout=float(getattr(cfg, "point_dropout", 0.0) or 0.0), average=average), full_point_batch,
        init={"n_points": cloud.n_points, "colors": colors, **_normals(cloud, cfg), **(init or {})},
        empty="no point of the cloud is drawn in any training view: is it in the cameras' world frame and units?")
    return fit_geometry(views, geo, cfg, progress, plugin=plugin, build=build, checkpoint_dir=checkpoint_dir,
                        sources=sources, extra_loss=extra_loss)


def _normals(cloud: PointCloud, cfg: Any) -> dict[str, torch.Tensor]:
    """{"normals": (N, 3)} for a renderer with a shading network (``cfg.shade`` > 0), else {}:
    the cloud's own (``cfg.cloud_normals`` and a file that carries them), else estimated."""
    if int(getattr(cfg, "shade", 0) or 0) <= 0:
        return {}
    from .normals import cloud_normals

    return {"normals": torch.from_numpy(cloud_normals(cloud, bool(getattr(cfg, "cloud_normals", True))))}


_FILL = 0.9  # interior fill of 3 x 3 sub-cells from which NPBG's default takes the share


def render_points(model: NRModel, camera: Camera, background: Sequence[float] | None = None) -> np.ndarray:
    """(H, W, 3) float32 image in 0..1 of ``camera`` at its own size (row 0 at the top).

    Only the box around the pixels the cloud covers (a margin of one coarsest cell, aligned to
    it, as the training crops are) goes through the network; elsewhere the image is the
    background, as the fit taught the network to draw far from every point (2-3x faster for an
    object that fills part of the frame, as DNR's renderer does for a mesh)."""
    net = model.net.module if hasattr(model.net, "module") else model.net
    bg = [float(c) for c in (model.background if background is None else background)]
    out = np.empty((camera.height, camera.width, 3), np.float32)
    out[:] = bg
    with torch.inference_mode():
        average = getattr(net, "average", None)
        share = int(getattr(net, "share", 0))
        pts = point_set(model)
        proj = project(pts, camera) if share else None  # one projection for the splat and the share
        if average is None:
            found = splat_box(pts, camera, net.scales, proj=proj)
            fr = None
        else:
            found = front_box(pts, camera, average, net.scales, proj=proj)
            if found is not None:
                ids, fr, xy = found
                found = ids, xy
                fr.pool = [p[None] for p in fr.pool]
        if found is None:
            return out
        ids, (x0, y0) = found
        h, w = min(camera.height - y0, ids[0].shape[0]), min(camera.width - x0, ids[0].shape[1])
        sh = None
        if share:  # the covered share of the box's pixels
            hp, wp = raster_sizes(camera.width, camera.height, net.scales)[0]
            sh = pixel_share(proj, hp, wp, share)[y0:y0 + ids[0].shape[0], x0:x0 + ids[0].shape[1]][None]
        batch = point_batch([t[None] for t in ids], [camera], [x0], [y0], (h, w), model.device, fr, sh)
        with autocast(model.device, bool(model.config.get("amp", False))):  # as it was scored
            rgb, alpha, _ = net(batch)
        img = composite(rgb.float(), alpha.float(), bg)
        out[y0:y0 + h, x0:x0 + w] = img[0].permute(1, 2, 0).clamp(0.0, 1.0).to("cpu", torch.float32).numpy()
    return out
