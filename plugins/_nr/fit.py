"""The fitting loop every neural renderer shares: Adam on L1 between the composited render and
the photo over the scene's background, a few random crops per step, a wall-clock budget and an
iteration cap, held-out PSNR every ``val_every`` steps, the best checkpoint (by held-out PSNR) on
disk while fitting, cancel and Ctrl-C honoured, DistributedDataParallel under torchrun (the budget,
cancel, the weights kept and the ranks are :class:`viewer.plugins.training.TrainingRun`'s).

Held-out frames: the scene's val split if it has one, else its test split, else up to
``val_views`` training frames (said so in the metrics). During fitting at most ``val_views`` of
them, evenly spaced, are scored; at the end the kept weights are scored on all of them. Only a
val split chooses the checkpoint (the best by its PSNR): a test split is watched, for the curves
and the preview, but the checkpoint kept is then the latest one, so ``evaluate --split test``
scores weights the test views never chose.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from viewer.analysis.images import psnr, to_uint8
from viewer.jobs.progress import ImagePreview, Progress
from viewer.model.camera import Camera
from viewer.model.geometry import Mesh
from viewer.model.viewset import Frame, ViewSet
from viewer.plugins.precision import autocast, grad_scaler, precision_name
from viewer.plugins.training import TrainingRun

from .checkpoint import mesh_digest, read_cached_mesh, save_checkpoint
from .data import ViewData, full_batch, photos_blend_edges, prepare_views, random_batch
from .model import NRModel, composite

__all__ = ["fit_renderer", "fit_geometry", "FitGeometry", "split_views", "orbit_defaults", "ensure_uv"]


LOSS_EVERY = 25  # steps between points of the training-loss curve (held-out PSNR: val_every)


def split_views(views: ViewSet | Sequence[Frame], val_views: int,
                val_fraction: float = 0.0) -> tuple[list[Frame], list[Frame], str]:
    """(training frames, held-out frames, where the held-out frames come from).

    A ViewSet trains on its "train" split (all frames if it has no split called so) and holds out
    "val", else "test"; a plain list of frames trains on all and holds out a few of them. With
    ``val_fraction`` > 0, that share of the training frames (evenly spaced, at least one, never
    all) is carved out of training as the val split, whatever splits the scene has.
    """
    if val_fraction > 0:
        train, _, _ = split_views(views, val_views)
        if len(train) >= 2:
            n = min(len(train) - 1, max(1, int(round(len(train) * float(val_fraction)))))
            idx = set(np.unique(np.linspace(0, len(train) - 1, n).round().astype(int)).tolist())
            return ([f for i, f in enumerate(train) if i not in idx], [train[i] for i in sorted(idx)],
                    "val (carved out of train)")
    if isinstance(views, ViewSet):
        train = views.split("train") or ([] if views.split("val") or views.split("test") else list(views.frames))
        for name in ("val", "test"):
            held = views.split(name)
            if held:
                return train, held, name
        frames = train
    else:
        frames = train = list(views)
    if not frames:
        return [], [], "none"
    n = max(1, min(len(frames), int(val_views) or 4))
    idx = np.unique(np.linspace(0, len(frames) - 1, n).round().astype(int))
    return train, [frames[i] for i in idx], "train (no held-out split: scored on training frames)"


def ensure_uv(mesh: Mesh) -> Mesh:
    """The mesh itself if it has uv, else an xatlas parametrisation of it."""
    if mesh.uv is not None:
        return mesh
    from viewer.geometry.uvatlas import parametrize

    return parametrize(mesh)


def orbit_defaults(mesh: Any, cameras: Sequence[Camera]) -> dict[str, Any]:
    """Where an orbit around the mesh (or point cloud) should fly, from the training cameras: centre (bounding-box
    centre, world), radius (median camera distance), up (mean of the cameras' up vectors, i.e.
    -y in OpenCV axes), vertical view angle (degrees) and elevation (median, degrees)."""
    b = np.asarray(mesh.bounds(), float).reshape(3, 2)
    center = b.mean(1)
    if not cameras:
        return {"center": center.tolist(), "radius": float(2.5 * np.linalg.norm(b[:, 1] - b[:, 0]) / 2 + 1e-9),
                "up": [0.0, 0.0, 1.0], "view_angle": 40.0, "elevation": 20.0}
    up = np.mean([-c.c2w[:3, 1] for c in cameras], axis=0)
    up = up / np.linalg.norm(up) if np.linalg.norm(up) > 1e-6 else np.array([0.0, 0.0, 1.0])
    offs = np.array([c.center - center for c in cameras])
    dist_ = np.linalg.norm(offs, axis=1)
    elev = np.degrees(np.arcsin(np.clip((offs @ up) / np.maximum(dist_, 1e-12), -1, 1)))
    fov = [np.degrees(2 * np.arctan(c.height / 2 / c.fy)) for c in cameras]
    return {"center": center.tolist(), "radius": float(np.median(dist_)), "up": up.tolist(),
            "view_angle": float(np.median(fov)), "elevation": float(np.clip(np.median(elev), -80, 80))}


@dataclass(eq=False)
class FitGeometry:
    """What the fitting loop needs of a renderer's geometry (:func:`fit_renderer` makes the mesh's,
    ``plugins/_points`` a point cloud's).

    Attributes
    ----------
    kind : "mesh" or "points": the checkpoint entry and the ``sources`` keys.
    data : the Mesh (with uv) or PointCloud the checkpoint stores.
    digest : SHA-256 of ``data`` as stored.
    prepare : (frames, size, background, report) -> per-frame views at the training size, each
        with ``name``, ``camera``, ``shape``, ``target`` (H, W, 3) and ``covered`` (flat indices).
    random_batch : (views, n, crop, rng, device) -> (batch, target (B, 3, h, w)).
    full_batch : (view, device) -> a batch of the whole frame.
    init : what ``build`` gets beside the photo statistics (e.g. the number of points).
    empty : why fitting cannot start when the geometry covers no training pixel.
    """

    kind: str
    data: Any
    digest: str
    prepare: Callable[..., list]
    random_batch: Callable[..., tuple[Any, torch.Tensor]]
    full_batch: Callable[..., Any]
    init: dict[str, Any] = field(default_factory=dict)
    empty: str = "the geometry covers no pixel of any training view"


def _score(net: torch.nn.Module, views: Sequence[ViewData], background, device: str,
           preview: bool = False, batch: Callable[..., Any] = full_batch,
           amp: bool = False) -> tuple[list[float], ImagePreview | None]:
    """PSNR of each held-out view at the training size (in the precision the renderer draws in);
    the first view's render beside its photo."""
    net.eval()
    scores, first = [], None
    with torch.inference_mode():
        for v in views:
            with autocast(device, amp):
                rgb, alpha, _ = net(batch(v, device))
            img = composite(rgb.float(), alpha.float(), background)[0].permute(1, 2, 0).clamp(0, 1).cpu()
            scores.append(psnr(img, v.target))
            if preview and first is None:
                first = ImagePreview(view=v.name, image=to_uint8(img.numpy()), target=to_uint8(v.target.numpy()))
    net.train()
    return scores, first


def fit_renderer(views: ViewSet | Sequence[Frame], mesh: Mesh, cfg: Any, progress: Progress, *,
                 plugin: str, build: Callable[[dict, dict], torch.nn.Module],
                 checkpoint_dir: str | os.PathLike | None = None,
                 sources: Mapping[str, str] | None = None) -> NRModel:
    """Fit ``build(config_dict, init)`` (a :class:`~plugins._nr.model.RendererNet`) to the photos.

    Parameters
    ----------
    views : a ViewSet (train split fitted, val/test held out) or a list of frames.
    mesh : the scene's mesh (world frame of the cameras); parametrized with xatlas if it has no uv,
        unless ``checkpoint_dir`` holds an earlier fit's parametrization of the same mesh file
        (``sources["mesh_sha256"]``).
    cfg : the plugin's Config; fields used: size, minutes, iters, batch, crop, lr, lr_texture,
        lr_decay, val_every, val_views, seed, device.
    progress : reports (update, metrics with loss and psnr, a held-out ImagePreview) and cancel.
    plugin : the plugin's name (stored in the checkpoint).
    build : makes the network from the config dict and ``init`` ({"mean_rgb": (3,)}).
    checkpoint_dir : folder the kept checkpoint is written to while fitting (by rank 0 only).
    sources : {"mesh": path, "mesh_sha256": hex, "scene": path}, stored as provenance.

    Returns
    -------
    NRModel with the kept weights (the best by val PSNR, else the latest) and metrics.
    """
    sources = dict(sources or {})
    if mesh.uv is None and checkpoint_dir:
        mesh = read_cached_mesh(checkpoint_dir, sources.get("mesh_sha256")) or mesh
    if mesh.uv is None:
        progress.update(0, 0, "parametrizing the mesh")
    mesh = ensure_uv(mesh)
    if getattr(cfg, "coverage", 1) == 0:  # "from the photos": decided here, stored as decided
        train_frames = split_views(views, cfg.val_views, getattr(cfg, "val_fraction", 0.0))[0]
        cfg = replace(cfg, coverage=3 if photos_blend_edges(train_frames, cfg.size) else 1)
    geo = FitGeometry("mesh", mesh, mesh_digest(mesh),
                      lambda frames, size, background, report: prepare_views(
                          frames, mesh, size, background, report, coverage=int(getattr(cfg, "coverage", 1))),
                      random_batch, full_batch,
                      empty="the mesh covers no pixel of any training view: is it in the cameras' world frame and units?")
    return fit_geometry(views, geo, cfg, progress, plugin=plugin, build=build, checkpoint_dir=checkpoint_dir,
                        sources=sources)


def fit_geometry(views: ViewSet | Sequence[Frame], geo: FitGeometry, cfg: Any, progress: Progress, *,
                 plugin: str, build: Callable[[dict, dict], torch.nn.Module],
                 checkpoint_dir: str | os.PathLike | None = None,
                 sources: Mapping[str, str] | None = None,
                 extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 optimise: bool = True) -> NRModel:
    """:func:`fit_renderer` on any geometry: ``geo`` says how frames become training data;
    ``extra_loss(image, target)`` (both (B, 3, h, w), composited) is added to the L1. With
    ``optimise`` False the network ``build`` makes is only scored and written (a method whose
    network comes ready, e.g. NPBG++ with no per-scene fitting)."""
    sources = dict(sources or {})
    iters = int(cfg.iters) if cfg.iters and cfg.iters > 0 else 10**9
    if optimise and not (cfg.minutes and cfg.minutes > 0) and iters >= 10**9:
        raise ValueError("give a time budget (minutes) or a number of iterations")
    run = TrainingRun(progress, minutes=cfg.minutes, device=cfg.device, seed=cfg.seed, max_steps=iters)
    device = run.device
    rng = np.random.default_rng(cfg.seed + 1000 * run.rank)

    train_frames, held_frames, held_from = split_views(views, cfg.val_views, getattr(cfg, "val_fraction", 0.0))
    if not train_frames:
        raise ValueError("no training frames")
    background = tuple(float(c) for c in (views.background if isinstance(views, ViewSet) else (1.0, 1.0, 1.0)))
    progress.update(0, 0, "rasterizing the views")
    n_all = len(train_frames) + len(held_frames)
    train = geo.prepare(train_frames, cfg.size, background,
                        lambda i, n: progress.update(i, n_all, "rasterizing the views"))
    held = geo.prepare(held_frames, cfg.size, background,
                       lambda i, n: progress.update(len(train) + i, n_all, "rasterizing the views"))
    n_val = max(1, min(len(held), int(cfg.val_views) or len(held)))
    val = [held[i] for i in np.unique(np.linspace(0, len(held) - 1, n_val).round().astype(int))]
    covered = torch.cat([v.target.reshape(-1, 3)[v.covered] for v in train])
    if len(covered) == 0:
        raise ValueError(geo.empty)
    mean_rgb = covered.mean(0)

    config = asdict(cfg)
    net = build(config, {"mean_rgb": mean_rgb, "covered_pixels": int(len(covered)), **geo.init}).to(device)
    dense = int(config.get("dense", 0) or 0) if hasattr(net, "dense_colour") else 0
    # every covered training pixel's uv: pixels for the network's cheap direct loss (``dense``)
    pool_uv = torch.cat([v.uv.reshape(-1, 2)[v.covered] for v in train]) if dense > 0 else None
    if device == "cpu":
        net = net.to(memory_format=torch.channels_last)
    step_net = run.parallel(net)
    tex = [p for n, p in net.named_parameters() if n.startswith("texture.")]
    rest = [p for n, p in net.named_parameters() if not n.startswith("texture.")]
    groups = [{"params": tex, "lr": cfg.lr_texture, "base_lr": cfg.lr_texture}]
    if rest:
        groups.append({"params": rest, "lr": cfg.lr, "base_lr": cfg.lr})
    opt = torch.optim.Adam(groups, fused=device == "cpu" or device.startswith("cuda"))
    aux_weight = float(config.get("aux_weight", 0.0))
    amp = bool(config.get("amp", False))  # bf16 on CPUs with AMX, fp16 on CUDA (viewer.plugins.precision)
    scaler = grad_scaler(device, amp)

    k = geo.kind
    meta = {f"{k}_source": sources.get(k), f"{k}_source_sha256": sources.get(f"{k}_sha256"), f"{k}_sha256": geo.digest,
            "orbit": orbit_defaults(geo.data, [f.camera for f in train_frames]), "scene": sources.get("scene")}
    model = NRModel(net=net, plugin=plugin, config=config, mesh=geo.data if k == "mesh" else None,
                    background=background, train_size=(train[0].shape[1], train[0].shape[0]), meta=meta,
                    device=device, points=geo.data if k == "points" else None)
    # only a val split may choose among checkpoints; a watched test split must not
    run.choose_best = held_from.startswith("val")
    history: list[dict[str, float]] = []
    running, n_running, last_report = 0.0, 0, 0.0
    window_loss, window_n = 0.0, 0  # the loss curve gets a point every LOSS_EVERY steps

    def validate() -> None:
        with run.validation():
            scores, preview = _score(net, val, background, device, preview=True, batch=geo.full_batch, amp=amp)
        mean = float(np.mean(scores))
        entry = {"step": run.step, "seconds": round(run.elapsed(), 2), "psnr": mean,
                 "loss": running / max(1, n_running)}
        history.append(entry)
        if preview is not None:
            progress.preview(preview)
        run.report(progress.metrics, run.step, loss=entry["loss"], psnr=mean)
        if run.keep(mean, net, run.step) and checkpoint_dir:
            model.metrics = _metrics(run, history, "in progress", held_from, val, None)
            save_checkpoint(model, checkpoint_dir, state=run.best_state)

    net.train()
    run.begin()
    with run.loop():
        while optimise:
            run.check()
            lr_scale = float(cfg.lr_decay) ** run.fraction()
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * lr_scale
            batch, target = geo.random_batch(train, int(cfg.batch), int(cfg.crop), rng, device)
            with autocast(device, amp):
                rgb, alpha, feats = step_net(batch)
            # the losses in float32 (the network's convolutions ran in reduced precision)
            rgb, alpha = rgb.float(), alpha.float()
            feats = feats.float() if feats is not None else None
            image = composite(rgb, alpha, background)
            loss = (image - target).abs().mean()
            if extra_loss is not None:
                loss = loss + extra_loss(image, target)
            if pool_uv is not None:
                # the texture's colour gets many more pixels than the U-Net can afford a step, at
                # the cost of a texture lookup each (what makes the plain texture converge fast)
                pick = torch.from_numpy(rng.integers(0, len(pool_uv), dense))
                loss = loss + (net.dense_colour(pool_uv[pick].to(device)) - covered[pick].to(device)).abs().mean()
            if aux_weight > 0 and feats is not None:
                tpix = target.permute(0, 2, 3, 1).reshape(-1, 3)[batch.pix]
                loss = loss + aux_weight * (feats - tpix).abs().mean()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            run.step += 1
            loss_value = float(loss.detach())
            running += loss_value
            n_running += 1
            window_loss += loss_value
            window_n += 1
            if run.leader:
                if window_n >= LOSS_EVERY:
                    run.report(progress.metrics, run.step, loss=window_loss / window_n)
                    window_loss, window_n = 0.0, 0
                if run.elapsed() - last_report >= 0.25:  # a bar, not a flood of redraws
                    last_report = run.elapsed()
                    run.report(progress.update, run.fraction() * 1000, 1000, f"step {run.step}")
                if run.step % max(1, int(cfg.val_every)) == 0:
                    validate()
                    running, n_running = 0.0, 0
    if run.leader and (run.best_at is None or (history and history[-1]["step"] != run.step)):
        validate()  # the weights since the last validation may be the best
    run.restore(net)
    ddp = run.share_weights(net)
    all_scores = _score(net, held, background, device, batch=geo.full_batch, amp=amp)[0] if run.leader else []
    model.metrics = _metrics(run, history, run.stopped_by, held_from, val, (held, all_scores))
    model.metrics["precision"] = precision_name(device, amp)
    if ddp is not None:
        model.metrics["ddp"] = {k: v for k, v in ddp.items() if k != "checksums"}
    if run.leader and checkpoint_dir:
        save_checkpoint(model, checkpoint_dir)
    net.eval()
    return model


def _metrics(run: TrainingRun, history: list[dict], stop_reason: str, held_from: str, val: list[ViewData],
             final: tuple | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "best_heldout_psnr": run.best_score, "best_step": run.best_at or 0, "steps": run.step,
        "seconds": round(run.elapsed(), 1), "stopped_by": stop_reason,
        "heldout_from": held_from, "validation_views": [v.name for v in val], "history": history,
        "kept": "best by val PSNR" if held_from.startswith("val") else "latest (held-out views watched, not used to choose)",
    }
    if final is not None:
        held, scores = final
        out["heldout_psnr"] = float(np.mean(scores)) if scores else None
        out["heldout_views"] = [{"name": v.name, "psnr": s} for v, s in zip(held, scores)]
    return out
