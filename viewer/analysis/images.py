"""Image metrics of rendered views (torch is imported only for tensors given and for SSIM): PSNR and SSIM on images in 0..1, and the 8-bit quantisation
every written PNG goes through (``evaluate`` scores exactly what ``render`` writes)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_uint8", "psnr", "ssim", "evaluate_views"]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(H, W, C) float in 0..1 -> uint8, rounding half up (what the PNG files hold)."""
    return (np.clip(np.asarray(img, np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _numpy(x: Any) -> np.ndarray:
    """An array from a numpy array or a torch tensor (on any device), as float64."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


def psnr(pred: Any, target: Any) -> float:
    """PSNR in dB of images in 0..1 (data range 1), over all pixels and channels, in float64."""
    a, b = _numpy(pred), _numpy(target)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range
    1, valid window positions, channels averaged) of (H, W, 3) images in 0..1, by MONAI's
    ``SSIMMetric`` (scikit-image is not installed here; MONAI is a dependency)."""
    import torch
    from monai.metrics import SSIMMetric

    a = torch.as_tensor(np.asarray(pred, np.float32)).permute(2, 0, 1)[None]
    b = torch.as_tensor(np.asarray(target, np.float32)).permute(2, 0, 1)[None]
    win = min(11, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2  # odd
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, kernel_type="gaussian", win_size=win, kernel_sigma=1.5)
    return float(metric(a, b).mean())


def evaluate_views(plugin, model, frames, background) -> dict[str, Any]:
    """PSNR and SSIM per frame of the 8-bit render against the photo, both over ``background``."""
    views = []
    for f in frames:
        pred = to_uint8(plugin.render(model, f.camera, background)).astype(np.float64) / 255.0
        gt = f.rgb(background)
        views.append({"name": f.name, "psnr": psnr(pred, gt), "ssim": ssim(pred, gt)})
    return {"psnr": float(np.mean([v["psnr"] for v in views])), "ssim": float(np.mean([v["ssim"] for v in views])),
            "views": views}
