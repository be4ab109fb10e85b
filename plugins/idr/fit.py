"""IDR's fitting loop: random rays of the training views each step, sphere tracing, and the
paper's three losses (colour L1 on rays inside the mask that hit the surface, the soft mask loss
on the others, the eikonal loss), Adam with an exponentially decaying learning rate; the budget,
cancel and the weights kept are :class:`viewer.plugins.training.TrainingRun`'s.

Held-out frames: the val split, else the test split (watched, never choosing the checkpoint), else
a few training frames; every ``val_every`` steps ``val_views`` of them are rendered and scored.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from viewer.analysis.images import psnr, to_uint8
from viewer.jobs.progress import ImagePreview, Progress
from viewer.model.camera import Camera
from viewer.model.viewset import Frame, ViewSet
from viewer.plugins.training import TrainingRun

from . import resolved
from .checkpoint import save_checkpoint
from .hull import check_in_view, common_volume
from .model import IDRModel, cpu_threads, render_image, trace_settings
from .network import IDRNet, gradient, rodrigues
from .tracing import differentiable_points, min_sdf_points, sphere_bounds, sphere_trace

__all__ = ["fit_idr", "has_mask", "normalisation", "build_net", "pose_corrections"]

LOSS_EVERY = 25  # steps between points of the loss curves
HULL_MARGIN = 1.1  # the unit sphere is this much larger than the visual hull's bounding sphere


def has_mask(frame: Frame) -> bool:
    """A mask file, or an alpha channel that is not everywhere opaque."""
    return frame.mask is not None or bool((frame.rgba[..., 3] < 255).any())


def normalisation(views: ViewSet | Sequence[Frame], frames: Sequence[Frame]) -> tuple[np.ndarray, float, str]:
    """(centre, scale, how): world = centre + scale * x puts the object inside the unit sphere.
    A ``cameras.npz`` scale matrix (``meta["normalization"]``) is used as it is; otherwise the
    sphere around the visual hull of the masks, a little larger."""
    norm = views.meta.get("normalization") if isinstance(views, ViewSet) else None
    if norm:
        centre = np.asarray(norm["center"], float)
        check_in_view([f.camera for f in frames], centre, "the centre of the scale matrix")
        return centre, float(norm["scale"]), "scale matrix"
    centre, radius = common_volume([(f.camera, f.alpha >= 0.5) for f in frames])
    return centre, radius * HULL_MARGIN, "visual hull"


def build_net(config: Mapping[str, Any], n_views: int) -> IDRNet:
    """The networks a (resolved) Config dict describes; ``n_views`` pose corrections (0 = none)."""
    return IDRNet(int(config["sdf_width"]), int(config["sdf_layers"]), int(config["sdf_freqs"]),
                  int(config["feature"]), int(config["render_width"]), int(config["render_layers"]),
                  int(config["view_freqs"]), float(config["init_radius"]), n_views)


def _split(views: ViewSet | Sequence[Frame], val_views: int) -> tuple[list[Frame], list[Frame], str]:
    if not isinstance(views, ViewSet):
        frames = list(views)
        pick = np.unique(np.linspace(0, len(frames) - 1, max(1, min(len(frames), val_views or 4))).round().astype(int))
        return frames, [frames[i] for i in pick] if frames else [], "train (no held-out split)"
    train = views.split("train")
    for name in ("val", "test"):
        if views.split(name):
            return train, views.split(name), name
    return _split(train, val_views)[0:2] + ("train (no held-out split)",)


def _at_size(frame: Frame, size: int, background: Sequence[float]) -> tuple[Camera, torch.Tensor, torch.Tensor]:
    """(camera, rgb (H, W, 3) over the background, coverage (H, W) in 0..1) at the training size."""
    cam = frame.camera
    w, h = cam.width, cam.height
    if size and max(w, h) > size:
        s = size / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
        cam = cam.scaled(w, h)
    img = np.concatenate([frame.rgb(background), frame.alpha[..., None]], axis=-1)
    t = torch.from_numpy(np.ascontiguousarray(img, np.float32)).permute(2, 0, 1)[None]
    if t.shape[-2:] != (h, w):
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    t = t[0].permute(1, 2, 0).clamp(0, 1)
    return cam, t[..., :3].contiguous(), t[..., 3].contiguous()


@dataclass
class _Rays:
    """Every training pixel whose ray meets the unit sphere, and the training cameras."""

    k: torch.Tensor       # (V, 4) fx, fy, cx, cy
    rot: torch.Tensor     # (V, 3, 3) camera-to-world rotations
    centre: torch.Tensor  # (V, 3) camera centres, normalised frame
    view: torch.Tensor    # (P,) view index
    xy: torch.Tensor      # (P, 2) pixel centres
    rgb: torch.Tensor     # (P, 3)
    mask: torch.Tensor    # (P,) bool

    def rays(self, idx: torch.Tensor, delta: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Origins and unit directions of pixels ``idx``, through the corrected poses."""
        b = self.view[idx]
        k = self.k[b]
        dc = torch.stack([(self.xy[idx, 0] - k[:, 2]) / k[:, 0], (self.xy[idx, 1] - k[:, 3]) / k[:, 1],
                          torch.ones_like(k[:, 0])], 1)
        rot, o = self.rot[b], self.centre[b]
        if delta is not None:
            dv = delta[b]
            rot = rodrigues(dv[:, :3]) @ rot
            o = o + dv[:, 3:]
        return o, F.normalize(torch.einsum("nij,nj->ni", rot, dc), dim=-1)


def _training_rays(cams: list[Camera], rgbs: list[torch.Tensor], masks: list[torch.Tensor], centre: np.ndarray,
                   scale: float, device: str) -> _Rays:
    views, xys, cols, ms = [], [], [], []
    for i, (cam, rgb, m) in enumerate(zip(cams, rgbs, masks)):
        o, d = cam.pixel_rays()
        o = torch.tensor((o - centre) / scale, dtype=torch.float32).expand(cam.width * cam.height, 3)
        _, _, meets = sphere_bounds(o, torch.tensor(d.reshape(-1, 3), dtype=torch.float32))
        idx = torch.nonzero(meets).squeeze(1)
        ys, xs = idx // cam.width, idx % cam.width
        views.append(torch.full((len(idx),), i, dtype=torch.long))
        xys.append(torch.stack([xs, ys], 1).float() + 0.5)
        cols.append(rgb.reshape(-1, 3)[idx])
        ms.append(m.reshape(-1)[idx] >= 0.5)
    k = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cams], dtype=torch.float32)
    rot = torch.tensor(np.stack([c.c2w[:3, :3] for c in cams]), dtype=torch.float32)
    cc = torch.tensor(np.stack([(c.center - centre) / scale for c in cams]), dtype=torch.float32)
    return _Rays(k.to(device), rot.to(device), cc.to(device), torch.cat(views).to(device),
                 torch.cat(xys).to(device), torch.cat(cols).to(device), torch.cat(ms).to(device))


def _losses(net: IDRNet, rays: _Rays, idx: torch.Tensor, cfg: dict, alpha: float) -> dict[str, torch.Tensor]:
    """The three losses of one batch of rays (IDR's normalisation: sums over the batch size)."""
    o, d = rays.rays(idx, net.pose_delta)
    rgb_t, mask_t = rays.rgb[idx], rays.mask[idx]
    n = len(idx)
    near, far, _ = sphere_bounds(o.detach(), d.detach())
    t, hit = sphere_trace(net.sdf.sdf, o, d, near, far, **trace_settings(cfg))
    surf = hit & mask_t
    zero = o.new_zeros(())
    rgb_loss, eik_pts = zero, []
    if surf.any():
        x = differentiable_points(net.sdf.sdf, lambda p: gradient(net.sdf, p, create_graph=False)[1],
                                  o[surf], d[surf], t[surf])
        out, g = gradient(net.sdf, x, create_graph=True)
        rgb = net.render(x, F.normalize(g, dim=-1), d[surf], out[:, 1:])
        rgb_loss = (rgb - rgb_t[surf]).abs().sum() / n
        eik_pts.append(x.detach())
    rest = ~surf
    mask_loss = zero
    if rest.any():
        tmin = min_sdf_points(net.sdf.sdf, o[rest], d[rest], near[rest], far[rest], int(cfg["samples"]))
        s = net.sdf.sdf(o[rest] + tmin[:, None] * d[rest])
        mask_loss = F.binary_cross_entropy_with_logits(-alpha * s, mask_t[rest].float(), reduction="sum") / (alpha * n)
    eik_pts.append(torch.rand(n, 3, device=o.device) * 2 - 1)
    _, g = gradient(net.sdf, torch.cat(eik_pts), create_graph=True)
    eik = ((g.norm(dim=-1) - 1) ** 2).mean()
    total = rgb_loss + float(cfg["mask_weight"]) * mask_loss + float(cfg["eikonal_weight"]) * eik
    return {"loss": total, "rgb": rgb_loss, "mask": mask_loss, "eikonal": eik,
            "surface_rays": surf.float().mean(), "mask_rays": mask_t.float().mean()}


def pose_corrections(model: IDRModel) -> list[dict[str, Any]]:
    """Per training view: the learned rotation (degrees) and centre shift (world units)."""
    delta = model.net.pose_delta
    if delta is None:
        return []
    names = model.meta.get("train_views") or [str(i) for i in range(len(delta))]
    out = []
    for name, dv in zip(names, delta.detach().cpu().numpy().astype(float)):
        out.append({"name": name, "rotation_deg": float(np.degrees(np.linalg.norm(dv[:3]))),
                    "translation": float(np.linalg.norm(dv[3:]) * model.scale)})
    return out


def corrected_camera(model: IDRModel, camera: Camera, i: int) -> Camera:
    """Training view ``i``'s camera with its learned correction applied (world frame)."""
    if model.net.pose_delta is None:
        return camera
    dv = model.net.pose_delta.detach().cpu()[i:i + 1]
    c2w = camera.c2w.copy()
    c2w[:3, :3] = rodrigues(dv[:, :3])[0].numpy().astype(float) @ c2w[:3, :3]
    c2w[:3, 3] = c2w[:3, 3] + dv[0, 3:].numpy().astype(float) * model.scale
    return Camera(camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height, c2w, camera.name)


def _orbit(centre: np.ndarray, cams: Sequence[Camera]) -> dict[str, Any]:
    up = np.mean([-c.c2w[:3, 1] for c in cams], axis=0)
    up = up / np.linalg.norm(up) if np.linalg.norm(up) > 1e-6 else np.array([0.0, 0.0, 1.0])
    offs = np.array([c.center - centre for c in cams])
    dist = np.linalg.norm(offs, axis=1)
    elev = np.degrees(np.arcsin(np.clip(offs @ up / np.maximum(dist, 1e-12), -1, 1)))
    fov = [np.degrees(2 * np.arctan(c.height / 2 / c.fy)) for c in cams]
    return {"center": [float(v) for v in centre], "radius": float(np.median(dist)), "up": up.tolist(),
            "view_angle": float(np.median(fov)), "elevation": float(np.clip(np.median(elev), -80, 80))}


SURFACE_PREVIEW_RESOLUTION = 64  # grid of the surface reported while fitting (export-mesh: 128 and up)


def fit_idr(views: ViewSet | Sequence[Frame], cfg: Any, progress: Progress, *, plugin: str,
            checkpoint_dir: str | os.PathLike | None = None,
            sources: Mapping[str, str] | None = None) -> IDRModel:
    """Fit IDR to the masked photos of ``views``; the kept model (best by val PSNR, else latest).

    Raises ValueError (one line) for views without masks, cameras that do not look at a common
    volume, or no training frames.
    """
    with cpu_threads(int(cfg.threads) if not str(cfg.device).startswith("cuda") else 0):
        return _fit(views, cfg, progress, plugin, checkpoint_dir, dict(sources or {}))


def _fit(views: ViewSet | Sequence[Frame], cfg: Any, progress: Progress, plugin: str,
         checkpoint_dir: str | os.PathLike | None, sources: dict) -> IDRModel:
    train_frames, held_frames, held_from = _split(views, int(cfg.val_views))
    if not train_frames:
        raise ValueError("no training frames")
    bare = [f for f in train_frames if not has_mask(f)]
    if bare:
        raise ValueError(f"{len(bare)} of {len(train_frames)} training views have no mask (first: "
                         f"{bare[0].name or bare[0].camera.name}); IDR needs the object's silhouette: RGBA "
                         "photos whose alpha is the mask, mask_path in transforms.json, or a mask/ folder")
    background = tuple(float(c) for c in (views.background if isinstance(views, ViewSet) else (1.0, 1.0, 1.0)))
    progress.update(0, 0, "finding the object (visual hull of the masks)")
    centre, scale, norm_from = normalisation(views, train_frames)
    config = asdict(cfg)
    for key in ("sdf_width", "sdf_layers", "feature", "render_width", "render_layers", "rays", "samples"):
        config[key] = resolved(cfg, key)
    max_steps = int(cfg.iters) if cfg.iters else None
    run = TrainingRun(progress, minutes=cfg.minutes, device=cfg.device, seed=cfg.seed, max_steps=max_steps)
    device = run.device
    train = [_at_size(f, cfg.size, background) for f in train_frames]
    held = [_at_size(f, cfg.size, background) for f in held_frames]
    rays = _training_rays([c for c, _, _ in train], [r for _, r, _ in train], [m for _, _, m in train],
                          centre, scale, device)
    if not bool(rays.mask.any()):
        raise ValueError("no masked pixel lies inside the object's bounding sphere")
    net = build_net(config, len(train) if cfg.refine_cameras else 0).to(device)
    groups = [{"params": [p for n, p in net.named_parameters() if n != "pose_delta"], "lr": cfg.lr, "base_lr": cfg.lr}]
    if net.pose_delta is not None:
        groups.append({"params": [net.pose_delta], "lr": cfg.lr_cameras, "base_lr": cfg.lr_cameras})
    opt = torch.optim.Adam(groups)
    model = IDRModel(net=net, plugin=plugin, config=config, centre=centre, scale=scale, background=background,
                     train_size=(train[0][0].width, train[0][0].height), device=device,
                     meta={"orbit": _orbit(centre, [f.camera for f in train_frames]), "scene": sources.get("scene"),
                           "camera_centres": [[float(v) for v in f.camera.center] for f in train_frames],
                           "train_views": [f.name or f.camera.name for f in train_frames], "normalised_by": norm_from})
    run.choose_best = held_from == "val"
    n_val = max(1, min(len(held), int(cfg.val_views) or len(held))) if held else 0
    val = [held[i] for i in np.unique(np.linspace(0, len(held) - 1, n_val).round().astype(int))] if held else []
    history: list[dict[str, Any]] = []
    curve: list[dict[str, float]] = []
    window: dict[str, float] = {}
    rng = torch.Generator(device="cpu").manual_seed(int(cfg.seed))

    def validate() -> None:
        with run.validation():
            scores, preview = _score(model, val, held_frames, background, supersample=1)
        mean = float(np.mean(scores)) if scores else float("nan")
        history.append({"step": run.step, "seconds": round(run.elapsed(), 2), "psnr": mean})
        if preview is not None:
            run.report(progress.preview, preview)
        run.report(progress.metrics, run.step, psnr=mean)
        if run.keep(mean if scores else -math.inf, net, run.step) and checkpoint_dir:
            model.metrics = _metrics(run, history, curve, "in progress", held_from, None, model)
            save_checkpoint(model, checkpoint_dir, state=run.best_state)

    surface_at = 0.0  # run time of the last surface reported

    def report_surface(resolution: int = SURFACE_PREVIEW_RESOLUTION) -> None:
        """The surface so far as a mesh in the world frame, for the window to show (a coarse grid:
        about a second on a CPU, timed as a validation)."""
        nonlocal surface_at
        from viewer.jobs.progress import MeshPreview

        from .surface import extract_mesh

        with run.validation():
            mesh = extract_mesh(model, resolution)
        surface_at = run.elapsed()
        if mesh is not None:
            mesh.name = f"{plugin} surface"
            run.report(progress.preview, MeshPreview(f"{plugin} surface (step {run.step})", mesh))

    run.begin()
    net.train()
    with run.loop():
        while True:
            run.check()
            frac = run.fraction()
            _schedule(opt, float(cfg.lr_decay) ** frac)
            alpha = float(cfg.alpha_init) * 2.0 ** min(int(frac * (cfg.alpha_doublings + 1)), cfg.alpha_doublings)
            idx = torch.randint(0, len(rays.view), (int(config["rays"]),), generator=rng).to(device)
            parts = _losses(net, rays, idx, config, alpha)
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt.step()
            run.step += 1
            for k, v in parts.items():
                window[k] = window.get(k, 0.0) + float(v.detach())
            window["n"] = window.get("n", 0.0) + 1
            if run.step % LOSS_EVERY == 0 or run.step == 1:
                point = {k: v / window["n"] for k, v in window.items() if k != "n"}
                curve.append({"step": run.step, "alpha": alpha, **point})
                run.report(progress.metrics, run.step, loss=point["loss"], mask_loss=point["mask"])
                run.report(progress.update, frac * 1000, 1000, f"step {run.step}")
                window = {}
            if val and run.step % max(1, int(cfg.val_every)) == 0:
                validate()
            if cfg.surface_minutes > 0 and run.elapsed() - surface_at >= 60.0 * float(cfg.surface_minutes):
                report_surface()
    if val and (run.best_at is None or (history and history[-1]["step"] != run.step)):
        validate()
    run.restore(net)
    net.eval()
    report_surface()  # the kept model's surface
    scores = _score(model, held, held_frames, background, preview=False)[0] if held else []
    model.metrics = _metrics(run, history, curve, run.stopped_by, held_from, (held_frames, scores), model)
    if checkpoint_dir:
        save_checkpoint(model, checkpoint_dir)
    return model


def _schedule(opt: torch.optim.Optimizer, factor: float) -> None:
    """Every group's learning rate at ``factor`` times its first."""
    for group in opt.param_groups:
        group["lr"] = group["base_lr"] * factor


def _score(model: IDRModel, views: list, frames: Sequence[Frame], background, preview: bool = True,
           supersample: int | None = None) -> tuple[list[float], Any]:
    """PSNR of each view at the training size; the first one's render beside its photo.
    ``supersample`` 1 for the scores while fitting (4x cheaper, they only rank checkpoints)."""
    model.net.eval()
    scores, first = [], None
    for cam, target, _ in views:
        img = render_image(model, cam, background, supersample)
        scores.append(psnr(img, target.numpy()))
        if preview and first is None:
            first = ImagePreview(view=cam.name, image=to_uint8(img), target=to_uint8(target.numpy()))
    model.net.train()
    return scores, first


def _metrics(run: TrainingRun, history: list, curve: list, stopped_by: str, held_from: str, final: tuple | None,
             model: IDRModel) -> dict[str, Any]:
    out: dict[str, Any] = {
        "best_heldout_psnr": run.best_score if math.isfinite(run.best_score) else None,
        "best_step": run.best_at or 0, "steps": run.step, "seconds": round(run.elapsed(), 1),
        "stopped_by": stopped_by, "heldout_from": held_from, "history": history, "losses": curve,
        "normalised_by": model.meta.get("normalised_by"),
    }
    if final is not None:
        frames, scores = final
        out["heldout_psnr"] = float(np.mean(scores)) if scores else None
        out["heldout_views"] = [{"name": f.name, "psnr": s} for f, s in zip(frames, scores)]
        out["pose_corrections"] = pose_corrections(model)
    return out
