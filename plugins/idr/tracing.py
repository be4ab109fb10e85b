"""Where rays meet the zero level set of an SDF, and the points the losses are taken at.

* :func:`sphere_bounds`: each ray's segment inside the bounding sphere (the object's volume).
* :func:`sphere_trace`: sphere tracing from the near end (step = the SDF value), then, for rays
  that have not converged, the first sign change among ``samples`` points up to the far end, and
  ``secant`` steps of the secant method inside that bracket (IDR's ray tracer, front side only).
* :func:`min_sdf_points`: per ray, the sample of smallest SDF (the mask loss's soft alpha).
* :func:`differentiable_points`: the paper's first-order implicit differentiation of the
  intersection, x = c + t0 v - v / (∇f(x0)·v0) f(c + t0 v; θ), with t0 and the denominator
  detached: exact in value, and its derivative in θ, c and v is that of the true intersection.

All in torch; the SDF is any callable (N, 3) -> (N,).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["sphere_bounds", "sphere_trace", "min_sdf_points", "differentiable_points"]

Sdf = Callable[[torch.Tensor], torch.Tensor]


def sphere_bounds(o: torch.Tensor, d: torch.Tensor, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(near, far, hits) of rays o + t d (d unit) with the sphere |x| = ``radius``; near >= 0."""
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - radius * radius
    disc = b * b - c
    hits = disc > 0
    root = torch.sqrt(disc.clamp_min(0))
    near = (-b - root).clamp_min(0)
    far = (-b + root).clamp_min(0)
    return near, far, hits & (far > near)


def _eval(sdf: Sdf, x: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    if len(x) <= chunk:
        return sdf(x)
    return torch.cat([sdf(x[i:i + chunk]) for i in range(0, len(x), chunk)])


@torch.no_grad()
def sphere_trace(sdf: Sdf, o: torch.Tensor, d: torch.Tensor, near: torch.Tensor, far: torch.Tensor, *,
                 steps: int = 20, eps: float = 5e-4, samples: int = 32, secant: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, hit) per ray o + t d within [near, far].

    ``steps`` of sphere tracing; a ray whose SDF falls below ``eps`` has converged. With
    ``samples`` > 0, the rest are sampled from where tracing stopped to ``far``: the first sample
    inside (SDF < 0) after one outside brackets the surface, refined by ``secant`` secant steps.
    Rays that start inside (SDF < 0 at ``near``) miss (IDR's convention: the camera is outside).
    """
    o, d = o.detach(), d.detach()
    n = len(o)
    t = near.clone()
    hit = torch.zeros(n, dtype=torch.bool, device=o.device)
    active = far > near
    s = torch.full((n,), float("inf"), device=o.device, dtype=o.dtype)
    if n == 0:
        return t, hit
    s[active] = _eval(sdf, o[active] + t[active, None] * d[active])
    active &= s > 0  # starting inside: no front surface
    for _ in range(steps):
        conv = active & (s.abs() < eps)
        hit |= conv
        active &= ~conv
        idx = torch.nonzero(active).squeeze(1)
        if len(idx) == 0:
            break
        t[idx] = t[idx] + s[idx]
        beyond = t[idx] >= far[idx]
        active[idx[beyond]] = False
        idx = idx[~beyond]
        if len(idx):
            s[idx] = _eval(sdf, o[idx] + t[idx, None] * d[idx])
    # the last step may have landed within eps without being counted, or a step may have
    # overshot into the inside (SDF < 0): both end the tracing
    conv = active & (s.abs() < eps)
    hit |= conv
    active &= ~conv
    if samples > 0:
        idx = torch.nonzero(active).squeeze(1)
        if len(idx):
            th, ok = _bracket_and_secant(sdf, o[idx], d[idx], t[idx], far[idx], samples, secant)
            t[idx[ok]] = th[ok]
            hit[idx[ok]] = True
    return t, hit


def _bracket_and_secant(sdf: Sdf, o: torch.Tensor, d: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor,
                        samples: int, secant: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First outside -> inside sign change among ``samples`` points in [t0, t1], then secant
    steps in it; (t, found)."""
    m = len(o)
    u = torch.linspace(0, 1, samples, device=o.device, dtype=o.dtype)
    ts = t0[:, None] + (t1 - t0)[:, None] * u[None]
    vals = _eval(sdf, (o[:, None] + ts[..., None] * d[:, None]).reshape(-1, 3)).reshape(m, samples)
    change = (vals[:, :-1] > 0) & (vals[:, 1:] <= 0)
    found = change.any(1)
    first = torch.argmax(change.to(torch.int8), dim=1)
    rows = torch.arange(m, device=o.device)
    lo, hi = ts[rows, first], ts[rows, first + 1]
    flo, fhi = vals[rows, first], vals[rows, first + 1]
    t = lo
    for _ in range(max(secant, 0)):
        t = lo - flo * (hi - lo) / (fhi - flo).clamp_max(-1e-12)  # flo > 0 >= fhi
        f = _eval(sdf, o + t[:, None] * d)
        inside = f <= 0
        hi, fhi = torch.where(inside, t, hi), torch.where(inside, f, fhi)
        lo, flo = torch.where(inside, lo, t), torch.where(inside, flo, f)
    if secant <= 0:  # no refinement: the sample before the surface
        t = lo
    return t, found


@torch.no_grad()
def min_sdf_points(sdf: Sdf, o: torch.Tensor, d: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
                   samples: int = 32, jitter: bool = True) -> torch.Tensor:
    """(N,) t of the sample with the smallest SDF along each ray (stratified when ``jitter``)."""
    m = len(o)
    if m == 0:
        return near.clone()
    u = (torch.arange(samples, device=o.device, dtype=o.dtype) + 0.5) / samples
    u = u.expand(m, samples)
    if jitter:
        u = u + (torch.rand(m, samples, device=o.device, dtype=o.dtype) - 0.5) / samples
    ts = near[:, None] + (far - near)[:, None] * u
    vals = _eval(sdf, (o.detach()[:, None] + ts[..., None] * d.detach()[:, None]).reshape(-1, 3)).reshape(m, samples)
    return ts[torch.arange(m, device=o.device), vals.argmin(1)]


def differentiable_points(sdf: Sdf, grad_at: Callable[[torch.Tensor], torch.Tensor], o: torch.Tensor,
                          d: torch.Tensor, t0: torch.Tensor) -> torch.Tensor:
    """Surface points x(θ, c, v) whose value is o + t0 d and whose derivative is the implicit one.

    ``o`` and ``d`` may carry gradients (camera refinement); ``t0`` is the traced depth; ``grad_at``
    gives ∇f at points (no graph needed: the denominator is a constant of the formula).
    """
    t0 = t0.detach()
    x0 = o + t0[:, None] * d
    with torch.no_grad():
        n0 = grad_at(x0.detach())
        dot = (n0 * d.detach()).sum(-1)
        # grazing rays: a tiny dot product would blow the step up; its sign is kept
        dot = torch.where(dot.abs() < 1e-3, torch.where(dot < 0, -1e-3, 1e-3), dot)
    f = sdf(x0)
    return x0 - d * (f / dot)[:, None]
