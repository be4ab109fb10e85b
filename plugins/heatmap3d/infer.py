"""The heat map of a scan, and what is read from it: a class's probability (its smoothed
maximum), the saliency map on the scan's own grid, and boxes (connected components)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage, special

from plugins._seg.preprocess import Normalisation
from viewer.model import Volume

from .checkpoint import HeatModel
from .data import Prepared, back_to_grid, prepare

__all__ = ["heat_map", "class_maps", "maps_of", "classify", "saliency", "detect", "smoothed", "boxes_from_heat"]

_FLOOR = 0.05
# Grad-CAM's layer in the DenseNet: the second transition's activation, at 1/8 of the input
# (the last block's is 1/32: a single voxel for a 32^3 crop, one number and no map)
GRAD_CAM_LAYER = "features.transition2.relu"  # heat below this joins no detection, whatever min_score asks for


def _norm(model: HeatModel) -> Normalisation:
    return Normalisation(**model.normalisation)


@torch.no_grad()
def _logits(model: HeatModel, p: Prepared) -> np.ndarray:
    """(C, I, J, K) logits on the network's grid: sliding windows of the training patch (MONAI
    pads a scan smaller than one)."""
    x = torch.from_numpy(np.ascontiguousarray(p.image))[None, None].to(model.device)
    model.net.eval()
    out = sliding_window_inference(x, tuple(int(v) for v in model.patch), 4, model.net, overlap=0.25, mode="gaussian")
    return out[0].float().cpu().numpy()


def smoothed(heat: np.ndarray, sigma: float, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """Gaussian smoothing of ``sigma`` voxels (along ``axes``, default all)."""
    return ndimage.gaussian_filter(heat, sigma, mode="nearest", axes=axes) if sigma > 0 else heat


def class_maps(model: HeatModel, volume: Volume) -> tuple[Prepared, np.ndarray, np.ndarray]:
    """(the prepared scan, per-class probabilities (C,), the map of each class (C, I, J, K)) on
    the network's grid. "boxes": the positive class's map is the smoothed sigmoid heat and its
    probability that map's maximum. "labels": each class's map is the per-voxel softmax over
    the class maps; the class logits are their smooth maxima (log-sum-exp pooling)."""
    p = prepare(volume, model.spacing, _norm(model))
    probs, maps = maps_of(model, p)
    return p, probs, maps


def _padded(model: HeatModel, p: Prepared) -> torch.Tensor:
    """The scan padded (edge values) to at least the training images' common shape, as training
    padded them: (1, 1, I, J, K) on the model's device."""
    pad = [(0, max(0, w - n)) for n, w in zip(p.image.shape, model.patch)]
    return torch.from_numpy(np.ascontiguousarray(np.pad(p.image, pad, mode="edge")))[None, None].to(model.device)


def maps_of(model: HeatModel, p: Prepared) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`class_maps` of a scan already on the network's grid (training's validation); a
    DenseNet's maps are None (its saliency is Grad-CAM's, :func:`saliency`)."""
    if model.network != "unet":
        model.net.eval()
        with torch.no_grad():
            logits = model.net(_padded(model, p))[0].float()
        return torch.softmax(logits, 0).cpu().numpy().astype(float), None
    logits = _logits(model, p)
    sigma = float(model.config.get("smooth_sigma", 1.0))
    if model.mode == "boxes":
        heat = smoothed(special.expit(logits[0]), sigma)  # the logistic, without overflow
        top = float(np.clip(heat.max(), 0.0, 1.0))
        pos = model.classes.index(model.positive)
        probs = np.full(len(model.classes), (1.0 - top) / max(len(model.classes) - 1, 1))
        probs[pos] = top
        maps = np.zeros((len(model.classes),) + heat.shape, np.float32)
        maps[pos] = heat
        maps[[i for i in range(len(model.classes)) if i != pos]] = 1.0 - heat
        return probs, maps
    t = torch.from_numpy(logits)
    pooled = torch.logsumexp(t.flatten(1), dim=1) - np.log(t[0].numel())
    probs = torch.softmax(pooled, 0).numpy()
    maps = smoothed(torch.softmax(t, 0).numpy(), sigma, axes=(1, 2, 3))
    return probs.astype(float), maps.astype(np.float32)


def classify(model: HeatModel, volume: Volume) -> dict[str, Any]:
    _, probs, _ = class_maps(model, volume)
    probs = probs / probs.sum()
    best = int(np.argmax(probs))
    return {"label": model.classes[best], "probabilities": {c: float(v) for c, v in zip(model.classes, probs)}}


def saliency(model: HeatModel, volume: Volume) -> Volume:
    """The map of the class to look for (the boxed class; with labels alone, the class chosen) on
    ``volume``'s exact grid: float32 in 0..1, same shape and affine."""
    p, probs, maps = class_maps(model, volume)
    k = model.classes.index(model.positive) if model.mode == "boxes" else int(np.argmax(probs))
    if maps is None:
        maps = {k: _grad_cam(model, p, k)}
    heat = back_to_grid(maps[k], p).astype(np.float32)
    return Volume(heat, np.asarray(volume.affine, float).copy(), modality="", name=f"{volume.name or 'image'} saliency",
                  meta={"format": "saliency", "class": model.classes[k]})


def _grad_cam(model: HeatModel, p: Prepared, k: int) -> np.ndarray:
    """MONAI's Grad-CAM of class ``k`` at :data:`GRAD_CAM_LAYER`, upsampled to the
    (padded) input and cut back to the scan: 0..1 on the network's grid."""
    from monai.visualize import GradCAM

    model.net.eval()
    cam = GradCAM(nn_module=model.net, target_layers=GRAD_CAM_LAYER)
    with torch.enable_grad():
        out = cam(x=_padded(model, p), class_idx=k)
    i, j, l = p.image.shape
    return np.clip(out[0, 0, :i, :j, :l].detach().float().cpu().numpy(), 0.0, 1.0)


def heat_map(model: HeatModel, volume: Volume) -> tuple[Prepared, np.ndarray]:
    """The positive class's smoothed heat on the network's grid (boxes mode)."""
    p, _, maps = class_maps(model, volume)
    return p, maps[model.classes.index(model.positive)] if model.positive in model.classes else maps.max(0)


def boxes_from_heat(heat: np.ndarray, affine: np.ndarray, min_score: float, share: float = 0.5) -> list[dict]:
    """Connected components of ``heat`` above a floor, each scored by its maximum and boxed by
    its voxels above ``share`` of that maximum (voxel faces, RAS mm); best first."""
    comps, n = ndimage.label(heat >= max(_FLOOR, min(min_score, 1.0) * share))
    if n == 0:
        return []
    peaks = ndimage.maximum(heat, comps, index=np.arange(1, n + 1))
    found = []
    objects = ndimage.find_objects(comps)
    for k, (peak, sl) in enumerate(zip(peaks, objects), start=1):
        if peak < min_score or sl is None:
            continue
        sub = (comps[sl] == k) & (heat[sl] >= share * peak)
        idx = np.argwhere(sub) + np.array([s.start for s in sl])
        lo, hi = idx.min(0) - 0.5, idx.max(0) + 0.5
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        ras = corners @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]
        box = [float(round(v, 3)) for v in np.concatenate([ras.min(0), ras.max(0)])]
        found.append({"box": box, "score": float(round(float(peak), 6))})
    return sorted(found, key=lambda d: -d["score"])


def detect(model: HeatModel, volume: Volume, min_score: float = 0.5) -> list[dict[str, Any]]:
    p, heat = heat_map(model, volume)
    return boxes_from_heat(heat, p.affine, float(min_score), float(model.config.get("threshold", 0.5)))
