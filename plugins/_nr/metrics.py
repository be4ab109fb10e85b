"""Image metrics of rendered views: PSNR and SSIM on images in 0..1, and the 8-bit quantisation
every written PNG goes through (``evaluate`` scores exactly what ``render`` writes)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_uint8", "psnr", "ssim"]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(H, W, C) float in 0..1 -> uint8, rounding half up (what the PNG files hold)."""
    return (np.clip(np.asarray(img, np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def psnr(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """PSNR in dB of images in 0..1 (data range 1), over all pixels and channels, in float64."""
    a = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred, np.float64)
    b = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target, np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range
    1, valid window positions, channels averaged) of (H, W, 3) images in 0..1, by MONAI's
    ``SSIMMetric`` (scikit-image is not installed here; MONAI is a dependency)."""
    from monai.metrics import SSIMMetric

    a = torch.as_tensor(np.asarray(pred, np.float32)).permute(2, 0, 1)[None]
    b = torch.as_tensor(np.asarray(target, np.float32)).permute(2, 0, 1)[None]
    win = min(11, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2  # odd
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, kernel_type="gaussian", win_size=win, kernel_sigma=1.5)
    return float(metric(a, b).mean())
