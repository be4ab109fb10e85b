"""Pretraining NPBG++ across scenes, the pretrained weights on disk, and what a per-scene fit
starts from (the descriptors aggregated from the scene's training photos).

A pretraining step picks a scene and one of its training views as the target, ``sources``
other training views as the photos, aggregates the descriptors of the points those views see
(:func:`~.network.aggregate`, with gradients), renders a random crop of the target through the
z-buffer rasters and fits L1 + SSIM to the photo: the encoder learns what to take from the
photos, the renderer how to draw it, with no per-scene parameters.

Pretrained weights: a folder with ``config.json`` (``"format": "lucid3d-npbgpp-pretrained"``, the
settings the networks are built from, metrics) and ``model.safetensors`` (float16, hash in the
config), written atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from plugins._nr.data import resize_image, training_camera
from plugins._nr.model import composite
from plugins._points.data import prepare_point_views, random_point_batch
from plugins._points.network import image_loss
from plugins._points.splat import PointSet
from viewer.analysis.images import psnr
from viewer.jobs.progress import Progress
from viewer.model.errors import LoadError
from viewer.plugins import Range, check_json_object, of_type, read_checkpoint_json
from viewer.plugins.checkpoint import load_weights, write_checkpoint
from viewer.plugins.precision import autocast, grad_scaler, precision_name

from .network import Observation, Pretrained, aggregate, observe

__all__ = ["PRETRAINED_FORMAT", "ARCH_KEYS", "average_of", "SceneData", "prepare_scene", "pretrain", "save_pretrained",
           "load_pretrained", "scene_descriptors", "shipped_pretrained"]

PRETRAINED_FORMAT = "lucid3d-npbgpp-pretrained"
ARCH_KEYS = ("channels", "unet_base", "unet_levels", "encoder_base", "multiscale", "view_dirs", "splat_average",
             "splat_depth")
# what weights stored before a key existed were trained with
_ARCH_LEGACY = {"splat_average": False, "splat_depth": 1.5}
_ARCH = {"channels": Range(1, 64), "unet_base": Range(1, 256), "unet_levels": Range(2, 6),
         "encoder_base": Range(1, 256)}


def unet_for(arch: dict[str, Any]) -> tuple[int, ...]:
    b = int(arch["unet_base"])
    return tuple(b * min(4, 2 ** max(0, i - 1)) for i in range(int(arch["unet_levels"])))


def build_pretrained(arch: dict[str, Any]) -> Pretrained:
    return Pretrained(int(arch["channels"]), unet_for(arch), int(arch["encoder_base"]), bool(arch["multiscale"]),
                      bool(arch["view_dirs"]), average_of(arch))


def average_of(arch: dict[str, Any]) -> float | None:
    """The renderer's ``average`` (a depth tolerance, or None for the nearest point) of ``arch``."""
    return float(arch["splat_depth"]) if arch.get("splat_average") else None


@dataclass(eq=False)
class SceneData:
    """A scene ready for aggregation and training: its points, the training views' observations
    (encoder inputs and visible points) and z-buffer views (targets)."""

    name: str
    points: PointSet
    observations: list[Observation]
    views: list  # PointView per training frame


def prepare_scene(frames: Sequence, cloud, size: int, background: Sequence[float], scales: int,
                  device: str = "cpu", name: str = "", average: float | None = None) -> SceneData:
    pts = PointSet.from_numpy(cloud.points, device)
    obs = []
    for f in frames:
        cam = training_camera(f.camera, size)
        obs.append(observe(pts, cam, resize_image(f.rgb(background), cam.width, cam.height), device))
    views = prepare_point_views(frames, pts, size, background, scales, average=average)
    return SceneData(name, pts, obs, views)


def scene_descriptors(pre: Pretrained, scene: SceneData) -> torch.Tensor:
    """(N, channels * 9) descriptors of every point from all the scene's training photos."""
    with torch.no_grad():
        return aggregate(pre.encoder, pre.renderer.basis, scene.observations, scene.points.n,
                         pre.renderer.channels)


def pretrain(scenes: Sequence[SceneData], arch: dict[str, Any], progress: Progress, *, minutes: float,
             iters: int, sources: int, crop: int, lr: float, seed: int, background: Sequence[float],
             device: str = "cpu", start: Pretrained | None = None,
             amp: bool = False) -> tuple[Pretrained, dict[str, Any]]:
    """Train the encoder and renderer across ``scenes`` (module docstring); returns the network
    and metrics (steps, seconds, the loss curve, the precision). ``start``: weights to continue
    from (of ``arch``), else new ones. ``amp``: the forward in the device's native mixed precision
    (:mod:`viewer.plugins.precision`); weights, optimiser and loss stay float32."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = (build_pretrained(arch) if start is None else start).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    scaler = grad_scaler(device, amp)
    loss_extra = image_loss(0.2, 0.0, "", device)
    t0, step, curve, window = time.perf_counter(), 0, [], []
    limit = iters if iters > 0 else 10**9
    while step < limit and (minutes <= 0 or time.perf_counter() - t0 < 60 * minutes):
        if progress.cancelled:
            break
        s = scenes[int(rng.integers(len(scenes)))]
        t = int(rng.integers(len(s.views)))
        others = [i for i in range(len(s.views)) if i != t] or [t]
        pick = rng.choice(others, size=min(sources, len(others)), replace=False)
        batch, target = random_point_batch([s.views[t]], 1, crop, rng, device, background)
        with autocast(device, amp):
            desc = aggregate(net.encoder, net.renderer.basis, [s.observations[i] for i in pick], s.points.n,
                             net.renderer.channels)
            rgb, alpha, _ = net.renderer(batch, desc)
        image = composite(rgb.float(), alpha.float(), background)
        loss = (image - target).abs().mean() + loss_extra(image, target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        window.append(float(loss.detach()))
        if len(window) == 25:
            curve.append({"step": step, "loss": float(np.mean(window))})
            progress.metrics(step, loss=curve[-1]["loss"])
            window = []
        progress.update(step, limit if iters > 0 else 0, f"step {step}")
    net.eval()
    return net, {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "history": curve,
                 "scenes": [s.name for s in scenes], "precision": precision_name(device, amp)}


def heldout_psnr(net: Pretrained, scene: SceneData, frames: Sequence, size: int,
                 background: Sequence[float]) -> float:
    """Mean PSNR of ``frames`` rendered from ``scene``'s aggregated descriptors."""
    from plugins._points.data import full_point_batch

    desc = scene_descriptors(net, scene)
    views = prepare_point_views(frames, scene.points, size, background, len(net.renderer.unet.down),
                                average=net.renderer.average)
    scores = []
    with torch.no_grad():
        for v in views:
            rgb, alpha, _ = net.renderer(full_point_batch(v, desc.device), desc)
            img = composite(rgb, alpha, background)[0].permute(1, 2, 0).clamp(0, 1).cpu()
            scores.append(psnr(img, v.target))
    return float(np.mean(scores))


def save_pretrained(net: Pretrained, arch: dict[str, Any], metrics: dict[str, Any], folder: str | Path) -> Path:
    """The folder format of the module docstring (weights in float16)."""
    state = {k: v.detach().to("cpu", torch.float16) for k, v in net.state_dict().items()}
    return write_checkpoint(folder, state, {"format": PRETRAINED_FORMAT, "version": 1,
                                            "config": {k: arch[k] for k in ARCH_KEYS}, "metrics": metrics},
                            metadata={"format": PRETRAINED_FORMAT})


def load_pretrained(folder: str | Path, device: str = "cpu") -> tuple[Pretrained, dict[str, Any]]:
    """(network, its architecture settings); LoadError (one line) for anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(folder, "NPBG++ pretrained weights are a folder (config.json, model.safetensors)")
    cfg = read_checkpoint_json(folder / "config.json") if (folder / "config.json").is_file() else None
    if not isinstance(cfg, dict) or cfg.get("format") != PRETRAINED_FORMAT:
        raise LoadError(folder, "not NPBG++ pretrained weights (made by `main.py pretrain npbgpp`)")
    schema = {k: (lambda v, r=r: of_type(int)(v) or r.problem(v)) for k, r in _ARCH.items()}
    schema.update({"multiscale": of_type(bool), "view_dirs": of_type(bool), "splat_average": of_type(bool),
                   "splat_depth": lambda v: of_type(float)(v) or Range(0, 100).problem(v)})
    try:
        check_json_object(cfg.get("config"), schema, optional=tuple(_ARCH_LEGACY))
    except (ValueError, TypeError) as exc:
        raise LoadError(folder / "config.json", " ".join(str(exc).split())) from None
    arch = {**_ARCH_LEGACY, **cfg["config"]}
    net = load_weights(folder, cfg, lambda: build_pretrained(arch), device)
    return net.float(), arch


def shipped_pretrained() -> Path:
    """The pretrained weights shipped in ``resources/npbgpp`` (installed as ``viewer._resources``)."""
    from importlib.util import find_spec

    try:
        spec = find_spec("viewer._resources")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(loc) / "npbgpp" / "config.json").is_file():
            return Path(loc) / "npbgpp"
    return Path(__file__).resolve().parents[2] / "resources" / "npbgpp"
