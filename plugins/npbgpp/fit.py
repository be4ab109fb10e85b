"""NPBG++'s fit (aggregate the descriptors from the photos, then optionally fine-tune) and its
pretraining across scenes, around the shared machinery of ``plugins/_nr`` and ``plugins/_points``."""

from __future__ import annotations

import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

from plugins._nr.checkpoint import points_digest
from plugins._nr.fit import FitGeometry, fit_geometry, split_views
from plugins._points.data import full_point_batch, prepare_point_views, random_point_batch
from plugins._points.fit import check_cloud
from viewer.jobs.progress import Progress
from viewer.model.viewset import ViewSet
from viewer.plugins import read_checkpoint_json

from .network import SHRendererNet
from .pretrain import (ARCH_KEYS, average_of, heldout_psnr, load_pretrained, prepare_scene, pretrain, save_pretrained,
                       scene_descriptors, shipped_pretrained, unet_for)

__all__ = ["fit_npbgpp", "pretrain_scenes"]


def _background(views: Any) -> tuple[float, float, float]:
    return tuple(float(c) for c in (views.background if isinstance(views, ViewSet) else (1.0, 1.0, 1.0)))


def _pretrained(cfg: Any):
    folder = Path(cfg.pretrained) if cfg.pretrained else shipped_pretrained()
    if not cfg.pretrained and not (folder / "config.json").is_file():
        raise ValueError("no pretrained NPBG++ weights are installed: run `main.py pretrain npbgpp` and give "
                         "--pretrained CKPT")
    return load_pretrained(folder, cfg.device)


def fit_npbgpp(plugin: Any, views: Any, cloud: Any, cfg: Any, progress: Progress, *,
               checkpoint_dir: str | Path | None = None, sources: Mapping[str, str] | None = None):
    """The descriptors of every point from the training photos with the pretrained encoder, the
    pretrained renderer, a checkpoint; fine-tuned by the shared loop when ``cfg.minutes`` > 0."""
    train, _, _ = split_views(views, cfg.val_views, cfg.val_fraction)
    check_cloud(cloud, [f.camera for f in train])
    t0 = time.perf_counter()
    pre, arch = _pretrained(cfg)
    for k in ARCH_KEYS:  # the architecture is the pretrained weights'
        setattr(cfg, k, arch[k])
    background = _background(views)
    scales = int(cfg.unet_levels)
    progress.update(0, 0, "aggregating the descriptors")
    average = average_of(arch)
    scene = prepare_scene(train, cloud, cfg.size, background, scales, cfg.device, average=average)
    net = SHRendererNet(cloud.n_points, int(cfg.channels), unet_for(arch), bool(cfg.multiscale), bool(cfg.view_dirs),
                        average=average)
    state = {k: v for k, v in pre.renderer.state_dict().items() if not k.startswith("texture.")}
    net.load_state_dict({**state, "texture.descriptors": scene_descriptors(pre, scene).cpu()})
    pts = scene.points
    geo = FitGeometry(
        "points", cloud, points_digest(cloud),
        lambda frames, size, bg, report: prepare_point_views(frames, pts, size, bg, scales, report, average),
        partial(random_point_batch, background=background), full_point_batch,
        init={"n_points": cloud.n_points, "start": net},
        empty="no point of the cloud is drawn in any training view: is it in the cameras' world frame and units?")
    optimise = bool(cfg.minutes and cfg.minutes > 0)
    model = fit_geometry(views, geo, cfg, progress, plugin=plugin.name, build=plugin.build,
                         checkpoint_dir=checkpoint_dir, sources=sources,
                         extra_loss=plugin.extra_loss(cfg) if optimise else None, optimise=optimise)
    if not optimise:
        model.metrics["stopped_by"] = "no per-scene fitting (minutes 0)"
    model.metrics["seconds_total"] = round(time.perf_counter() - t0, 1)
    model.metrics["pretrained"] = str(Path(cfg.pretrained).resolve()) if cfg.pretrained else "shipped"
    if checkpoint_dir:
        plugin.save(model, checkpoint_dir)
    return model


def pretrain_scenes(plugin: Any, scenes: Sequence[tuple[str, Any, Any]], cfg: Any, progress: Progress,
                    out: str | Path, resume: str | Path | None = None) -> dict[str, Any]:
    """``pretrain`` on each scene's training frames; each scene's held-out PSNR (its test split,
    or val, rendered from descriptors aggregated from its training photos) in the metrics; the
    weights written to ``out``. ``resume``: a pretrained folder to continue from (its
    architecture, not ``cfg``'s; its steps and seconds are added to the metrics' totals, its run
    kept under ``resumed_from``)."""
    arch = {k: getattr(cfg, k) for k in ARCH_KEYS}
    start, before = None, None
    if resume:
        start, arch = load_pretrained(resume, cfg.device)
        before = read_checkpoint_json(Path(resume) / "config.json").get("metrics")
    data, held = [], []
    background = None
    for i, (name, views, cloud) in enumerate(scenes):
        train, test, _ = split_views(views, cfg.val_views)
        check_cloud(cloud, [f.camera for f in train])
        bg = _background(views)
        if background is not None and bg != background:
            raise ValueError(f"{name}: its background {bg} differs from the first scene's {background}")
        background = bg
        progress.update(i, len(scenes), f"preparing {name}")
        data.append(prepare_scene(train, cloud, cfg.size, bg, int(cfg.unet_levels), cfg.device, name,
                                  average_of(arch)))
        held.append(test)
    net, metrics = pretrain(data, arch, progress, minutes=float(cfg.minutes), iters=int(cfg.iters),
                            sources=int(cfg.sources), crop=int(cfg.crop), lr=float(cfg.lr), seed=int(cfg.seed),
                            background=background, device=cfg.device, start=start,
                            amp=bool(getattr(cfg, "amp", False)))
    if isinstance(before, dict):  # totals over both runs; the earlier run's record kept as it was
        prior = before.get("resumed_from", [])
        metrics["resumed_from"] = (prior if isinstance(prior, list) else []) + [
            {k: v for k, v in before.items() if k != "resumed_from"}]
        for key in ("steps", "seconds"):
            if isinstance(before.get(key), (int, float)):
                total = metrics[key] + before.get(f"{key}_total", before[key])
                metrics[f"{key}_total"] = round(total, 1) if key == "seconds" else int(total)
    metrics["heldout_psnr"] = {d.name: heldout_psnr(net, d, frames, cfg.size, background)
                               for d, frames in zip(data, held)}
    metrics["config"] = {k: v for k, v in asdict(cfg).items() if k in ("size", "crop", "lr", "sources", "seed")}
    save_pretrained(net, arch, metrics, out)
    return metrics
