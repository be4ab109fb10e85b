"""3D fully connected CRF post-processing of a segmenter's probabilities (Krähenbühl & Koltun 2011,
in 3D as DeepMedic's: Kamnitsas et al. 2017), mean-field in torch on the tensors' own device.

Energy: unary ``-log p`` (the network's softmax) and two Gaussian pairwise kernels with Potts
compatibility,

    k(i, j) = w_a exp(-|x_i - x_j|² / 2θα² - (I_i - I_j)² / 2θβ²)    appearance
            + w_s exp(-|x_i - x_j|² / 2θγ²)                           smoothness

with positions ``x`` in millimetres (so anisotropic voxels are honoured) and ``I`` the normalised
intensity (z-score units). Each kernel's message is *normalised*, as in the reference
implementation (``densecrf``'s normalised kernels): the kernel-weighted mean of the
neighbours' Q, so a weight ``w`` is comparable to a log-probability and does not grow with θ.
A mean-field step is then ``Q = softmax(log p + w_a·M_a(Q) + w_s·M_s(Q))``.

Approximations (there is no N² anything; cost and memory are linear in the voxels):

* Spatial Gaussians are separable 1D Gaussians per axis, σ in voxels = θ / spacing, truncated at
  3σ. Where σ ≥ 2 voxels an axis is first box-averaged by ``s = floor(σ)``, filtered at that
  coarser step with the variance that is left, and trilinearly interpolated back, the box's and
  the interpolation's variance subtracted so that the total matches σ² (averaged over where a
  voxel falls in its box: within 10 % of σ for any one voxel, tested; the shape is a Gaussian
  convolved with a box and a tent, close to Gaussian). Voxels outside the
  volume count for nothing: each message is divided by the same filter applied to the weights.
* The appearance (bilateral) kernel is the piecewise-linear bilateral filter of Durand & Dorsey
  (2002): at intensity levels ``v_b`` spaced ``θβ`` apart over the volume's intensity range, the
  spatial filter of ``exp(-(I - v_b)²/2θβ²)·Q`` (and of the weights alone) is computed, and each
  voxel takes the linear interpolation between the two levels that bracket its own intensity.
  It is exact for voxels whose intensity is a level, and within a few per cent of the exact
  dense message elsewhere (tests/plugins/test_crf.py compares it with a brute-force N² sum on a
  small volume). Levels are capped at ``MAX_LEVELS``; past that the spacing widens (the range
  kernel stays θβ) and accuracy drops, which only a volume spanning > 48 θβ reaches.

Cost: about ten float32 values per voxel and class beside the inputs; measured on the 2-core
box with one torch thread (random probabilities, intensities over 12 θβ, the defaults, 1 mm
voxels): 256³ with 2 classes 27 s of CPU and 0.7 GB above the inputs; 128³ with 5 classes 8 s
and 0.3 GB. The
last class's message is 1 minus the others' (every message is a normalised mean of a Q that
sums to 1), so 2 classes filter one channel per level.
Light: torch is imported inside the functions, so a Config may import this module for its
settings without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from viewer.plugins import Range

if TYPE_CHECKING:
    import torch

__all__ = ["CRF_BOUNDS", "crf_field", "crf_settings", "dense_crf", "gaussian_blur", "crf_refiner", "MAX_LEVELS"]

MAX_LEVELS = 48

# the Config fields a segmenter offers for this post-processing (defaults, help), one place for all
_FIELDS: dict[str, tuple[Any, str]] = {
    "crf": (False, "3D fully connected CRF after the network (mean-field; smooths speckle, follows intensity edges)"),
    "crf_iterations": (5, "CRF mean-field iterations"),
    "crf_appearance_mm": (4.0, "CRF appearance kernel: spatial width θα, mm"),
    "crf_appearance_intensity": (0.5, "CRF appearance kernel: intensity width θβ, in normalised (z-score) units"),
    "crf_appearance_weight": (3.0, "CRF appearance kernel weight (0 = off)"),
    "crf_smoothness_mm": (2.0, "CRF smoothness kernel width θγ, mm"),
    "crf_smoothness_weight": (2.0, "CRF smoothness kernel weight (0 = off)"),
}

CRF_BOUNDS: dict[str, Range] = {
    "crf_iterations": Range(1, 50), "crf_appearance_mm": Range(0, 200, lo_open=True),
    "crf_appearance_intensity": Range(0, 100, lo_open=True), "crf_appearance_weight": Range(0, 100),
    "crf_smoothness_mm": Range(0, 200, lo_open=True), "crf_smoothness_weight": Range(0, 100),
}
"""Bounds of the CRF fields, for :func:`viewer.plugins.validate_config`."""


def crf_field(name: str) -> Any:
    """The dataclass field of the CRF setting ``name`` (its default and help), for a Config."""
    default, help_ = _FIELDS[name]
    return field(default=default, metadata={"help": help_})


def crf_settings(config: Any) -> dict[str, Any] | None:
    """The CRF keyword arguments of a Config or a stored config dict, or None when the CRF is off
    (or the config has no CRF fields)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    if not get("crf", False):
        return None
    return {"iterations": int(get("crf_iterations", _FIELDS["crf_iterations"][0])),
            **{k[4:]: float(get(k, _FIELDS[k][0])) for k in _FIELDS if k not in ("crf", "crf_iterations")}}


def crf_refiner(image: Any, spacing: Sequence[float], settings: dict[str, Any], device: str = "cpu",
                progress: Callable[[int, int], None] | None = None) -> Callable[[Any], Any]:
    """``prob (C, I, J, K) -> labels (I, J, K)`` for a segment function: the CRF over ``image``
    (the normalised (I', J', K') volume the network saw, I' ≥ I: padding beyond is cropped off),
    on ``device``; ``progress(done, total)`` after each mean-field iteration."""
    import numpy as np
    import torch

    def refine(prob: Any) -> Any:
        p = torch.as_tensor(prob).to(device=device, dtype=torch.float32)
        shape = tuple(p.shape[1:])
        img = torch.as_tensor(np.ascontiguousarray(np.asarray(image)[: shape[0], : shape[1], : shape[2]]),
                              dtype=torch.float32).to(device)
        q = dense_crf(p, img, spacing, **settings, progress=progress)
        return q.argmax(0).to(torch.uint8 if q.shape[0] <= 256 else torch.int16).cpu().numpy()

    return refine


def dense_crf(prob: "torch.Tensor", image: "torch.Tensor", spacing: Sequence[float], *, iterations: int = 5,
              appearance_mm: float = 4.0, appearance_intensity: float = 0.5, appearance_weight: float = 3.0,
              smoothness_mm: float = 2.0, smoothness_weight: float = 2.0,
              progress: Callable[[int, int], None] | None = None) -> "torch.Tensor":
    """Mean-field inference of the fully connected CRF (module docstring) on ``prob``'s device.

    Parameters
    ----------
    prob : (C, I, J, K) class probabilities (summing to 1 over C).
    image : (I, J, K) normalised intensities on the same grid.
    spacing : voxel size in mm per axis.
    progress : called with (iterations done, iterations) before and after each iteration.

    Returns
    -------
    (C, I, J, K) float32 marginals Q; ``Q.argmax(0)`` are the labels.
    """
    import torch

    if prob.dim() != 4 or tuple(image.shape) != tuple(prob.shape[1:]):
        raise ValueError(f"prob (C, I, J, K) and image (I, J, K) must share a grid, got {tuple(prob.shape)} "
                         f"and {tuple(image.shape)}")
    with torch.no_grad():
        logp = prob.to(torch.float32).clamp_min(1e-6).log_()
        q = torch.softmax(logp, dim=0)
        if q.shape[0] < 2:
            return q  # one class: nothing to decide
        sig_a = [appearance_mm / float(s) for s in spacing]
        sig_s = [smoothness_mm / float(s) for s in spacing]
        app = _Bilateral(image.to(device=prob.device, dtype=torch.float32), sig_a, appearance_intensity) \
            if appearance_weight > 0 else None
        smooth_norm = gaussian_blur(torch.ones_like(image, dtype=torch.float32, device=prob.device)[None],
                                    sig_s)[0].clamp_min_(1e-6) if smoothness_weight > 0 else None
        for it in range(int(iterations)):
            if progress is not None:
                progress(it, int(iterations))
            energy = logp.clone()
            # every message is a normalised mean of Q, and Q sums to 1 over the classes: so do
            # the messages, and the last class's is 1 - the others' (one filtering less per level)
            if app is not None:
                _add_message(energy, app.message(q[:-1]), float(appearance_weight))
            if smooth_norm is not None:
                _add_message(energy, gaussian_blur(q[:-1], sig_s).div_(smooth_norm), float(smoothness_weight))
            q = torch.softmax(energy, dim=0)
            del energy
        if progress is not None:
            progress(int(iterations), int(iterations))
    return q


def _add_message(energy: "torch.Tensor", head: "torch.Tensor", weight: float) -> None:
    """energy += weight · message, from the message of all classes but the last."""
    energy[:-1].add_(head, alpha=weight)
    energy[-1].add_(head.sum(0).neg_().add_(1.0), alpha=weight)


class _Bilateral:
    """The appearance kernel's normalised message, by intensity levels (module docstring)."""

    def __init__(self, image: "torch.Tensor", sigma_vox: Sequence[float], sigma_intensity: float) -> None:
        import torch

        self.image, self.sigma = image, list(sigma_vox)
        lo, hi = float(image.min()), float(image.max())
        step = float(sigma_intensity)
        count = int(math.floor((hi - lo) / step)) + 2
        if count > MAX_LEVELS:
            count, step = MAX_LEVELS, (hi - lo) / (MAX_LEVELS - 1)
        levels = [lo + b * step for b in range(count)]
        # a level no voxel's intensity is within one step of is interpolated by none: skipped
        bins = torch.histc(image, bins=count - 1, min=lo, max=lo + (count - 1) * step) if count > 1 else None
        used = [True] * count if bins is None else \
            [bool(bins[max(b - 1, 0):b + 1].sum() > 0) for b in range(count)]
        self.levels = [v for v, u in zip(levels, used) if u]
        self.step, self.range_sigma = step, float(sigma_intensity)
        # the denominator does not depend on Q: once
        self.norm = torch.zeros_like(image)
        for v in self.levels:
            w = self._range_weight(v)
            self.norm.add_(gaussian_blur(w[None], self.sigma)[0].mul_(self._hat(v)))
        self.norm.clamp_min_(1e-6)

    def _range_weight(self, level: float) -> "torch.Tensor":
        return (self.image - level).square_().mul_(-0.5 / self.range_sigma ** 2).exp_()

    def _hat(self, level: float) -> "torch.Tensor":
        # linear interpolation weight of this level for each voxel's own intensity
        return (self.image - level).abs_().mul_(-1.0 / self.step).add_(1.0).clamp_min_(0.0)

    def message(self, q: "torch.Tensor") -> "torch.Tensor":
        """(C, I, J, K): per class, the appearance-weighted mean of the neighbours' Q."""
        import torch

        out = None
        for v in self.levels:
            hat = self._hat(v)
            filtered = gaussian_blur(q * self._range_weight(v), self.sigma)
            out = filtered.mul_(hat) if out is None else out.addcmul_(filtered, hat)
            del filtered
        return out.div_(self.norm) if out is not None else torch.zeros_like(q)


def gaussian_blur(x: "torch.Tensor", sigma_vox: Sequence[float]) -> "torch.Tensor":
    """Separable Gaussian filter of (M, I, J, K) with standard deviation ``sigma_vox`` voxels per
    axis; outside the volume counts as zero. Wide axes (σ ≥ 2) are filtered at a coarser step
    (module docstring): linear cost whatever σ."""
    import torch
    import torch.nn.functional as F

    shape = tuple(x.shape[1:])
    # (a step past the axis's length would only pad it: one coarse cell is the whole axis)
    factors = [min(max(1, int(math.floor(s))), n) if s >= 2 else 1 for s, n in zip(sigma_vox, shape)]
    y = x.to(torch.float32)[None]  # (1, M, I, J, K)
    if any(f > 1 for f in factors):
        pad = [(-n) % f for n, f in zip(shape, factors)]
        if any(pad):
            y = F.pad(y, (0, pad[2], 0, pad[1], 0, pad[0]))
        # a box average of f samples, then a tent back: their variances come off the Gaussian's
        y = F.avg_pool3d(y, kernel_size=factors, stride=factors)
    m = y.shape[1]
    for axis, (s, f) in enumerate(zip(sigma_vox, factors)):
        var = s * s - ((f * f - 1) / 12.0 + (f * f / 6.0 if f > 1 else 0.0))
        sd = math.sqrt(max(var, 0.0)) / f
        if sd < 0.05:
            continue
        full = max(1, int(math.ceil(3 * sd)))
        radius = min(full, y.shape[2 + axis])  # taps past the volume's length only ever meet zeros
        t = torch.arange(-full, full + 1, dtype=torch.float32, device=x.device)
        k = torch.exp(-0.5 * (t / sd) ** 2)
        k = (k / k.sum())[full - radius: full + radius + 1]
        k = k.view(1, 1, -1, 1, 1).permute(*_kernel_axes(axis)).repeat(m, 1, 1, 1, 1)
        padding = [0, 0, 0]
        padding[axis] = radius
        y = F.conv3d(y, k, padding=tuple(padding), groups=m)
    if any(f > 1 for f in factors):
        y = F.interpolate(y, scale_factor=None, size=[n * f for n, f in zip(y.shape[2:], factors)],
                          mode="trilinear", align_corners=False)
        y = y[:, :, : shape[0], : shape[1], : shape[2]]
    return y[0]


def _kernel_axes(axis: int) -> tuple[int, ...]:
    """The permutation putting a (1, 1, k, 1, 1) kernel along spatial ``axis``."""
    return {0: (0, 1, 2, 3, 4), 1: (0, 1, 3, 2, 4), 2: (0, 1, 3, 4, 2)}[axis]
