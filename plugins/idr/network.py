"""IDR's two networks (Yariv et al. 2020), in the scene's normalised frame (the object inside the
unit sphere):

* :class:`SDFNet` f(x) -> (signed distance, feature z): an MLP on the positional encoding of x
  with a skip connection halfway, softplus (beta 100) activations and the geometric initialisation
  of Atzmon & Lipman (SAL): at the start f is close to the signed distance of a sphere of radius
  ``radius`` (positive outside), whatever the width and depth.
* :class:`RenderNet` M(x, n, v, z) -> colour: an MLP on the point, its normal (the SDF's gradient),
  the encoded view direction and the SDF's feature vector; a sigmoid keeps colours in 0..1.
* :class:`IDRNet` holds both and, with camera refinement, a learnable rotation (axis-angle) and
  translation per training view, zero at the start.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["encode", "SDFNet", "RenderNet", "IDRNet", "rodrigues", "gradient"]


def encode(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """NeRF positional encoding: x and sin/cos(2^k x) for k < ``freqs`` (x first)."""
    if freqs <= 0:
        return x
    scales = 2.0 ** torch.arange(freqs, dtype=x.dtype, device=x.device)
    xs = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(xs), torch.cos(xs)], dim=-1)


class SDFNet(nn.Module):
    """f(x): ``layers`` hidden layers of ``width``, output 1 + ``feature`` (distance first)."""

    def __init__(self, width: int = 128, layers: int = 4, freqs: int = 6, feature: int = 64,
                 radius: float = 0.6) -> None:
        super().__init__()
        self.freqs = int(freqs)
        d_in = 3 + 6 * self.freqs
        self.skip = layers // 2 if layers >= 4 else -1
        dims = [d_in] + [width] * layers + [1 + feature]
        self.lins = nn.ModuleList()
        for i in range(len(dims) - 1):
            out = dims[i + 1] - (d_in if i + 1 == self.skip else 0)
            lin = nn.Linear(dims[i], out)
            self._geometric_init(lin, i, len(dims) - 2, d_in, radius)
            self.lins.append(lin)
        self.act = nn.Softplus(beta=100)
        self._centre_on_sphere(radius)

    @torch.no_grad()
    def _centre_on_sphere(self, radius: float) -> None:
        """Shift the output so that f averages 0 on the sphere of ``radius``: softplus is not
        ReLU (softplus(0) = ln 2 / beta), and the small offset it adds per unit adds up over the
        layers (measured: f(0) = -0.45 instead of -0.6 at width 128)."""
        k = torch.arange(256, dtype=torch.float32) + 0.5
        z = 1 - 2 * k / 256
        phi = torch.pi * (1 + 5 ** 0.5) * k
        r = torch.sqrt(1 - z * z)
        u = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], 1)
        self.lins[-1].bias[0] -= self.forward(radius * u)[:, 0].mean()

    def _geometric_init(self, lin: nn.Linear, i: int, last: int, d_in: int, radius: float) -> None:
        """SAL's initialisation: ReLU-like layers, the last one a mean of |h| minus ``radius``; the
        encoding's sin/cos inputs start at zero weight (IDR's), so f starts as |x| - radius."""
        out, fan_in = lin.weight.shape
        with torch.no_grad():
            if i == last:
                nn.init.normal_(lin.weight, mean=math.sqrt(math.pi) / math.sqrt(fan_in), std=1e-4)
                nn.init.constant_(lin.bias, -radius)
                return
            nn.init.constant_(lin.bias, 0.0)
            nn.init.normal_(lin.weight, 0.0, math.sqrt(2) / math.sqrt(out))
            if i == 0 and self.freqs > 0:
                lin.weight[:, 3:] = 0.0
            elif i == self.skip and self.freqs > 0:
                lin.weight[:, -(d_in - 3):] = 0.0  # the encoding part of the skip input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = encode(x, self.freqs)
        h = inp
        for i, lin in enumerate(self.lins):
            if i == self.skip:
                h = torch.cat([h, inp], dim=-1) / math.sqrt(2)
            h = lin(h)
            if i < len(self.lins) - 1:
                h = self.act(h)
        return h

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """The signed distance alone, (N,)."""
        return self.forward(x)[..., 0]


def gradient(net: SDFNet, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x) with its feature (N, 1 + F), ∇f(x) (N, 3)); with ``create_graph`` the gradient is
    itself differentiable (the eikonal loss, and normals that train the geometry)."""
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = net(x)
        g = torch.autograd.grad(out[:, 0].sum(), x, create_graph=create_graph)[0]
    return out, g


class RenderNet(nn.Module):
    """M(x, n, v, z) -> rgb in 0..1; v is encoded with ``view_freqs`` frequencies."""

    def __init__(self, feature: int = 64, width: int = 128, layers: int = 3, view_freqs: int = 4) -> None:
        super().__init__()
        self.view_freqs = int(view_freqs)
        d_in = 3 + 3 + 3 + 6 * self.view_freqs + feature
        dims = [d_in] + [width] * layers + [3]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor, n: torch.Tensor, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, n, encode(v, self.view_freqs), z], dim=-1)
        for i, lin in enumerate(self.lins):
            h = lin(h)
            if i < len(self.lins) - 1:
                h = F.relu(h)
        return torch.sigmoid(h)


def rodrigues(w: torch.Tensor) -> torch.Tensor:
    """(B, 3) axis-angle -> (B, 3, 3) rotations, smooth at zero (first-order there)."""
    theta2 = (w * w).sum(-1, keepdim=True)[..., None]
    theta = torch.sqrt(theta2 + 1e-12)
    k = torch.zeros(w.shape[0], 3, 3, dtype=w.dtype, device=w.device)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    k = k - k.transpose(1, 2)
    a = torch.where(theta2 < 1e-8, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(theta2 < 1e-8, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(k)
    return eye + a * k + b * (k @ k)


class IDRNet(nn.Module):
    """The SDF and rendering networks, and per-view pose corrections (``n_views`` > 0)."""

    def __init__(self, sdf_width: int, sdf_layers: int, sdf_freqs: int, feature: int, render_width: int,
                 render_layers: int, view_freqs: int, radius: float, n_views: int = 0) -> None:
        super().__init__()
        self.sdf = SDFNet(sdf_width, sdf_layers, sdf_freqs, feature, radius)
        self.render = RenderNet(feature, render_width, render_layers, view_freqs)
        if n_views > 0:  # rotation (axis-angle, world frame) and camera-centre shift per view
            self.pose_delta = nn.Parameter(torch.zeros(n_views, 6))
        else:
            self.register_parameter("pose_delta", None)
