"""The modules neural renderers are made of: a Laplacian-pyramid texture sampled through uv maps,
the real spherical-harmonic basis of view directions, and a small 2D U-Net.

Image tensors are (B, C, H, W) with row 0 at the TOP of the image. Texture coordinates follow
:class:`~viewer.model.geometry.Mesh`: u to the right, v UP, origin at the texture's bottom-left;
texture levels are stored row 0 at the TOP (like ``Mesh.texture``), so texel row = (1 - v) S.
Bilinear sampling matches ``grid_sample(..., align_corners=False, padding_mode="border")`` but
is done as one ``embedding_bag`` over all levels (4 corners x levels weighted rows, summed):
3-10x faster than ``grid_sample`` per level on CPU, forward and backward, and only the pixels
the mesh covers are sampled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["sh_basis", "LaplacianTexture", "UNet2D", "pad_to_multiple", "scatter_pixels", "Lobes", "float32"]

# real spherical harmonics, bands 0-2 (the usual constants: Y00, Y1m, Y2m with Condon-Shortley
# signs dropped, as graphics code uses them)
_C0, _C1 = 0.28209479177387814, 0.4886025119029199
_C2, _C3, _C4 = 1.0925484305920792, 0.31539156525252005, 0.5462742152960396


def sh_basis(dirs: torch.Tensor) -> torch.Tensor:
    """The 9 real SH basis functions (bands 0, 1, 2) of unit directions.

    Parameters
    ----------
    dirs : (N, 3) unit vectors (x, y, z) in one fixed frame (the renderers use world).

    Returns
    -------
    (N, 9): Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22.
    """
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    return torch.stack([
        torch.full_like(x, _C0), _C1 * y, _C1 * z, _C1 * x,
        _C2 * x * y, _C2 * y * z, _C3 * (3.0 * z * z - 1.0), _C2 * x * z, _C4 * (x * x - y * y),
    ], dim=1)


class LaplacianTexture(nn.Module):
    """A texture stored as a Laplacian pyramid: levels of halving size, each sampled bilinearly,
    summed (Thies et al. 2019, sec. 4). Coarse levels get gradients from many pixels, so texels no
    photo saw still take a smooth value from the coarser levels.

    All levels live in one parameter ``table`` (sum of S_l^2 rows, ``channels`` columns), level l's
    texel (row r, column c) at row ``offset_l + r * S_l + c``, row 0 at the top of the texture.

    Parameters
    ----------
    size : edge of the finest level in texels (levels ``size, size/2, ...``, at least 2 each).
    levels : number of levels.
    channels : features per texel (3 for an RGB texture).
    init : (channels,) start value of the coarsest level (the finer ones start at 0).
    noise : std of the normal noise every level starts with.

    Examples
    --------
    >>> tex = LaplacianTexture(64, levels=3, channels=16)
    >>> tex(torch.rand(100, 2)).shape
    torch.Size([100, 16])
    """

    def __init__(self, size: int, levels: int, channels: int, init: torch.Tensor | None = None,
                 noise: float = 0.0) -> None:
        super().__init__()
        if size < 2 or levels < 1 or channels < 1:
            raise ValueError("a texture needs size >= 2, levels >= 1 and channels >= 1")
        self.sizes = [max(2, int(size) >> i) for i in range(int(levels))]
        self.channels = int(channels)
        offsets = [0]
        for s in self.sizes:
            offsets.append(offsets[-1] + s * s)
        self.offsets = offsets
        table = torch.randn(offsets[-1], self.channels) * noise
        if init is not None:
            table[offsets[-2]:] += torch.as_tensor(init, dtype=torch.float32).view(1, -1)
        self.table = nn.Parameter(table)

    def corners(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and bilinear weights of the 4 x levels texels under each uv.

        Parameters
        ----------
        uv : (N, 2) texture coordinates in 0..1, origin bottom-left.

        Returns
        -------
        rows (N, 4 L) int64 into ``table`` and weights (N, 4 L) float (each level's 4 sum to 1).
        """
        s = torch.tensor(self.sizes, dtype=uv.dtype, device=uv.device)  # (L,)
        off = torch.tensor(self.offsets[:-1], dtype=torch.long, device=uv.device)
        si = s.long()
        # texel-centre coordinates; border padding = clamp the sample point into the texture
        px = torch.minimum((uv[:, :1] * s - 0.5).clamp_(min=0.0), s - 1.0)  # (N, L)
        py = torch.minimum(((1.0 - uv[:, 1:2]) * s - 0.5).clamp_(min=0.0), s - 1.0)
        x0, y0 = px.floor(), py.floor()
        fx, fy = px - x0, py - y0
        x0, y0 = x0.long(), y0.long()
        dx = (x0 < si - 1).long()
        dy = (y0 < si - 1).long() * si
        r00 = off + y0 * si + x0
        rows = torch.stack([r00, r00 + dx, r00 + dy, r00 + dy + dx], 2)  # (N, L, 4)
        gx, gy = 1.0 - fx, 1.0 - fy
        w = torch.stack([gx * gy, fx * gy, gx * fy, fx * fy], 2)
        k = 4 * len(self.sizes)
        return rows.reshape(len(uv), k), w.reshape(len(uv), k)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        """Sample the summed pyramid at ``uv`` (N, 2) (origin bottom-left); (N, channels)."""
        rows, w = self.corners(uv)
        return _BilinearBag.apply(self.table, rows, w)

    def level(self, i: int) -> torch.Tensor:
        """Level ``i`` as an image (channels, S, S), row 0 at the top."""
        s = self.sizes[i]
        return self.table[self.offsets[i]:self.offsets[i + 1]].t().reshape(self.channels, s, s)

    def image(self) -> torch.Tensor:
        """The summed texture at the finest size, (channels, S, S), row 0 at the top."""
        s = self.sizes[0]
        out = torch.zeros(self.channels, s, s, dtype=self.table.dtype, device=self.table.device)
        for i in range(len(self.sizes)):
            out = out + F.interpolate(self.level(i)[None], size=(s, s), mode="bilinear",
                                      align_corners=False)[0]
        return out


class _BilinearBag(torch.autograd.Function):
    """out[n] = sum_k w[n, k] table[rows[n, k]]: ``embedding_bag`` forward, and a backward by one
    ``index_add_`` per corner (embedding_bag's own backward with per-sample weights is 2-10x slower
    on CPU, and one index_add_ over all corners at once 1.5x slower)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows, w)
        ctx.n_rows = table.shape[0]
        return F.embedding_bag(rows, table, per_sample_weights=w, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, w = ctx.saved_tensors
        out = grad.new_zeros(ctx.n_rows, grad.shape[1])
        for k in range(rows.shape[1]):
            out.index_add_(0, rows[:, k], grad * w[:, k:k + 1])
        return out, None, None


def scatter_pixels(values: torch.Tensor, pix: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Covered pixels' values (N, C) into a zero image (B, C, H, W) (channels-last memory).

    ``pix`` (N,) are flat indices into B x H x W.
    """
    b, h, w = shape
    out = values.new_zeros(b * h * w, values.shape[1])
    out = out.index_put((pix,), values)
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, int, int]:
    """Pad (B, C, H, W) at the bottom/right by replication to multiples of ``m``; returns the
    padded tensor and the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


class UNet2D(nn.Module):
    """A light U-Net: one 3x3 conv per level on the way down (2x2 average pooling between levels),
    one on the way up after bilinear upsampling and concatenation with the skip (no transposed
    convolutions, so no checkerboard artefacts), no normalisation (crops and whole frames see the
    same network). Any H, W (padded inside to a multiple of ``2**(levels-1)``). Run it on
    channels-last tensors: 1.7x faster on CPU.

    Parameters
    ----------
    in_channels, out_channels : channels in and out.
    channels : feature maps per level, finest first (its length is the number of levels).

    Examples
    --------
    >>> net = UNet2D(17, 4, (16, 16, 32, 64, 64))
    >>> net(torch.zeros(1, 17, 70, 50)).shape
    torch.Size([1, 4, 70, 50])
    """

    def __init__(self, in_channels: int, out_channels: int, channels: tuple[int, ...], convs: int = 1,
                 extra: tuple[int, ...] = ()) -> None:
        super().__init__()
        ch = [int(c) for c in channels]
        # channels concatenated onto levels 1, 2, ... after pooling (NPBG's multi-scale rasters)
        ex = [int(e) for e in extra] + [0] * (len(ch) - 1 - len(extra))
        if len(ch) < 2:
            raise ValueError("the U-Net needs at least 2 levels")
        if convs < 1:
            raise ValueError("the U-Net needs at least 1 convolution per level")

        def block(cin: int, cout: int) -> nn.Sequential:
            if convs == 1:  # the state-dict keys of checkpoints from before ``convs`` existed
                return _conv(cin, cout)
            return nn.Sequential(_conv(cin, cout), *[_conv(cout, cout) for _ in range(convs - 1)])

        self.down = nn.ModuleList([block(in_channels, ch[0])] + [block(ch[i - 1] + ex[i - 1], ch[i])
                                                                 for i in range(1, len(ch))])
        self.bottom = _conv(ch[-1], ch[-1])
        self.up = nn.ModuleList([block(ch[i + 1] + ch[i], ch[i]) for i in range(len(ch) - 1)])
        self.head = nn.Conv2d(ch[0], out_channels, 1)
        self.multiple = 2 ** (len(ch) - 1)

    def forward(self, x: torch.Tensor, extra: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W); ``extra[i - 1]`` (B, extra[i - 1],
        H_p / 2^i, W_p / 2^i) joins level i (H_p, W_p: H, W padded to the multiple)."""
        x, h, w = pad_to_multiple(x, self.multiple)
        skips = []
        for i, conv in enumerate(self.down):
            if i:
                x = F.avg_pool2d(x, 2)
                if extra is not None and i - 1 < len(extra):
                    x = torch.cat([x, extra[i - 1]], dim=1)
            x = conv(x)
            skips.append(x)
        x = self.bottom(x)
        for i in range(len(self.up) - 1, -1, -1):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], dim=1))
        return self.head(x)[..., :h, :w]


_CUT = -14.0  # lobe exponents below this give 0 (see Lobes.forward)
# what an exponent clamped to the cut gives, with room for float32 exp's last-bit differences (a
# plain number: this module may first be imported where torch makes tensors on the meta device)
_EXP_CUT = math.exp(_CUT) * (1.0 + 1e-5)


def float32(like: torch.Tensor):
    """Autocast off (on ``like``'s device) for per-pixel products of a few inputs: under bfloat16
    autocast a (pixels x 9) matrix product ran 8x slower than in float32 on the CPU (DNR's shading
    network: 45 against 29 ms a training step), and a lobe's exponent (sharpness up to ~60)
    needs float32's precision. Call with float32 inputs."""
    return torch.autocast(like.device.type, enabled=False)


class Lobes(nn.Module):
    """The shading network: spherical Gaussians of the mirror direction r, ``exp(s (r . l - 1))``,
    the shape of a highlight under a light fixed in the world (a lobe around the light's mirror
    direction). ``k`` channels = ``k // 3`` learned unit directions ``l_i``, each at three
    widths (a learned sharpness ``s_i`` times 1, 4 and 16): the broad lobe gives every direction
    a gradient that turns ``l_i`` towards a light, the sharp ones draw the highlight (a
    highlight a tenth of a sphere's radius across needs a sharpness near 50, far from where one
    lobe could start and still learn where to go). Directions start spread over the sphere (a
    Fibonacci spiral), sharpness at 4. Both are stored scaled (directions of length 0.1,
    log-sharpness / 10) so that Adam at the network's learning rate turns and sharpens them ten
    times faster than it moves the U-Net's weights."""

    _SCALE = 10.0
    _WIDTHS = (1.0, 4.0, 16.0)

    def __init__(self, k: int, sharpness: float = 4.0) -> None:
        super().__init__()
        n = max(1, int(k) // len(self._WIDTHS))
        i = torch.arange(n, dtype=torch.float32) + 0.5
        z = 1.0 - 2.0 * i / n
        a = i * 2.399963229728653  # the golden angle
        rho = torch.sqrt((1.0 - z * z).clamp(min=0.0))
        self.k = int(k)
        self.dirs = nn.Parameter(torch.stack([rho * torch.cos(a), rho * torch.sin(a), z], 1) / self._SCALE)
        self.log_sharpness = nn.Parameter(torch.full((n,), math.log(float(sharpness)) / self._SCALE))
        self.register_buffer("_widths", torch.tensor(self._WIDTHS), persistent=False)

    def _exponents(self, mirror: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(r, w, b)``: every channel's exponent is ``r @ w + b``, (P, 3 n), direction-major.
        r (P, 3) the mirror directions (``mirror`` (..., 3) flattened); channel ``3 i + j`` is
        ``s_i W_j (r . l_i - 1)``, so ``w`` (3, 3 n) holds the directions scaled by their
        sharpness and ``b`` (3 n,) minus the sharpness: one matrix product makes all channels
        in their final order (exponentials made per width and interleaved afterwards cost 35 ms
        a 256² frame, mostly in the interleaving)."""
        r = mirror.reshape(-1, 3)
        s = ((self.log_sharpness * self._SCALE).exp()[:, None] * self._widths.to(r)).reshape(-1)
        w = F.normalize(self.dirs, dim=1).repeat_interleave(len(self._WIDTHS), 0) * s[:, None]
        return r, w.t(), -s

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(..., 9) :func:`shade_inputs` -> (..., k) lobe values in 0..1 (direction-major)."""
        with float32(inputs):
            return self._forward(inputs.float())

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        n = self.dirs.shape[0]
        r, w, b = self._exponents(inputs[..., 6:9])
        # exponents below the cut give exactly 0 (and gradient 0): sharp lobes far from their
        # direction would otherwise be denormal floats, which the CPU computes on (here, and in the
        # U-Net's first convolution) tens of times slower (106 against 30 ms a frame at 256²).
        # Clamped before the exponential, zeroed after: exp of a very negative or infinite
        # argument takes a slow path too (10-100x)
        out = F.threshold(torch.addmm(b, r, w).clamp(min=_CUT).exp(), _EXP_CUT, 0.0)
        out = out.view(*inputs.shape[:-1], len(self._WIDTHS) * n)
        if out.shape[-1] < self.k:  # k not a multiple of the widths: the rest are the broadest lobes
            out = torch.cat([out, out[..., :self.k - out.shape[-1]]], -1)
        return out[..., :self.k]

    def fill(self, mirror: torch.Tensor, out: torch.Tensor) -> None:
        """:meth:`forward` without gradients, of the mirror directions alone (..., 3) (what
        :meth:`forward` reads from ``inputs[..., 6:9]``), written into ``out`` (..., k), a view
        whose leading axes flatten into one (rows of any stride, as a slice of the channels of a
        channels-last buffer); ``k`` a multiple of the three widths. 5-7 ms a 256² frame."""
        with float32(mirror):
            r, w, b = self._exponents(mirror.float())
            y = out.view(-1, out.shape[-1])
            torch.addmm(b, r, w, out=y)
        y.clamp_(min=_CUT).exp_()
        F.threshold_(y, _EXP_CUT, 0.0)
