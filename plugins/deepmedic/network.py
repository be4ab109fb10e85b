"""DeepMedic's network (Kamnitsas et al., Medical Image Analysis 2017), hand-written in torch.

Pathways of eight unpadded 3³ convolutions each read the same voxels: the normal pathway at
full resolution, each low-resolution pathway the same image averaged over f×f×f blocks (×f wider
context at the same cost; the paper has one, f = 3; ``factors=(3, 5)`` adds a ×5 one). The
text below describes the paper's network; with a ×5 pathway the context is 8 × 5 = 40 voxels
per side instead of 24, and blocks are multiples of 15. Every 3³ layer trims one voxel per side,
so a pathway's output is 16 voxels narrower than its input. The low-resolution output is upsampled ×3 by repetition,
concatenated with the normal output, and classified voxel by voxel by 1³ convolutions (the
paper's "fully connected" layers).

The network takes ONE input: the full context, ``out + 2 * CONTEXT`` voxels per axis around the
``out``³ block it predicts (``out`` a multiple of 3). The normal pathway reads its centre
``out + 16``; the low-resolution pathway all of it, averaged to ``out / 3 + 16``. For the paper's
training segment: a 25³ normal input and 57³ of context predict a 9³ block.

Layers are pre-activation as in the paper's later version (BatchNorm, PReLU, then the
convolution; the first layer sees the normalised image directly), with residual connections into
layers 4, 6 and 8 from the output of the layer two before, cropped by 2 voxels per side and
zero-padded in channels where the layer is wider.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FACTOR", "LAYERS", "CONTEXT", "DeepMedic", "pathway_widths", "input_size",
           "output_size", "geometry"]

from . import CONTEXT, FACTOR, LAYERS, geometry  # ×3 subsampling, 8 layers per pathway, 24 voxels of context per side

RESIDUAL_INTO = (3, 5, 7)  # 0-based: layers 4, 6, 8 add the output of layers 2, 4, 6


def pathway_widths(channels: int) -> list[int]:
    """Feature maps of the eight layers, in the paper's proportions (30, 30, 40 ×4, 50 ×2 for 30)."""
    c = int(channels)
    return [c, c] + [c + c // 3] * 4 + [c + 2 * c // 3] * 2


def input_size(out: int, factors: Sequence[int] = (FACTOR,)) -> int:
    """Context edge (voxels) the network reads to predict an ``out`` edge block."""
    return int(out) + 2 * geometry(factors)[0]


def output_size(size: int, factors: Sequence[int] = (FACTOR,)) -> int:
    """Edge of the block predicted from an input of edge ``size``; ValueError if none fits."""
    context, unit = geometry(factors)
    out = int(size) - 2 * context
    if out < unit or out % unit:
        raise ValueError(f"an input of {size} voxels does not suit DeepMedic: it must be {2 * context} + a "
                         f"positive multiple of {unit} (the block it predicts)")
    return out


class Pathway(nn.Module):
    """Eight unpadded 3³ convolutions, pre-activation, residual connections (see the module)."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        chans = [in_channels, *widths]
        self.convs = nn.ModuleList(nn.Conv3d(chans[i], chans[i + 1], 3) for i in range(len(widths)))
        # layer 1 reads the normalised image itself: no norm or activation before it
        self.norms = nn.ModuleList(nn.BatchNorm3d(chans[i]) for i in range(1, len(widths)))
        self.acts = nn.ModuleList(nn.PReLU(chans[i]) for i in range(1, len(widths)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        h = x
        for i, conv in enumerate(self.convs):
            if i:
                h = self.acts[i - 1](self.norms[i - 1](h))
            h = conv(h)
            if i in RESIDUAL_INTO:
                h = h + _fit(outs[i - 2], h)
            outs.append(h)
        return h


def _fit(skip: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``skip`` cropped to ``like``'s spatial size (centred) and zero-padded to its channels."""
    trim = [(a - b) // 2 for a, b in zip(skip.shape[2:], like.shape[2:])]
    skip = skip[:, :, trim[0]:trim[0] + like.shape[2], trim[1]:trim[1] + like.shape[3],
                trim[2]:trim[2] + like.shape[4]]
    extra = like.shape[1] - skip.shape[1]
    return F.pad(skip, (0, 0, 0, 0, 0, 0, 0, extra)) if extra > 0 else skip[:, :like.shape[1]]


def _head_layer(cin: int, cout: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = [nn.BatchNorm3d(cin), nn.PReLU(cin)]
    if dropout > 0:
        parts.append(nn.Dropout3d(dropout))
    parts.append(nn.Conv3d(cin, cout, 1))
    return nn.Sequential(*parts)


class DeepMedic(nn.Module):
    """(B, in_channels, S, S', S'') context -> (B, n_classes, S - 2 * context, ...) logits.

    ``factors``: the subsampling of each low-resolution pathway, (3,) as in the paper; (3, 5) adds
    a ×5 pathway (85 voxels of receptive field at ×5 cost of context), as the DeepMedic release
    allows. ``context`` (8 × the largest factor: 24 for the paper's) is what the segmentation
    machinery reads around each training block; ``unit`` (the factors' least common multiple)
    divides every block edge (:func:`output_size`).
    """

    def __init__(self, in_channels: int, n_classes: int, channels: int = 12, fc_channels: int = 48,
                 low_channels: int | None = None, dropout: float = 0.0,
                 factors: Sequence[int] = (FACTOR,)) -> None:
        super().__init__()
        self.factors = tuple(int(f) for f in factors)
        self.context, self.unit = geometry(self.factors)
        normal = pathway_widths(channels)
        low = pathway_widths(low_channels or channels)
        self.normal = Pathway(in_channels, normal)
        self.low = Pathway(in_channels, low)  # the first factor's (the name older checkpoints use)
        self.wider = nn.ModuleList(Pathway(in_channels, low) for _ in self.factors[1:])
        fused = normal[-1] + low[-1] * len(self.factors)
        self.fc1 = _head_layer(fused, fc_channels, 0.0)
        self.fc2 = _head_layer(fc_channels, fc_channels, dropout)
        self.classifier = _head_layer(fc_channels, n_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [output_size(n, self.factors) for n in x.shape[2:]]
        fused = [self.normal(self._centre(x, LAYERS, out))]
        for f, pathway in zip(self.factors, [self.low, *self.wider]):
            # the context a ×f pathway reads: out / f + 16 of its voxels, f × f × f each
            low = pathway(F.avg_pool3d(self._centre(x, LAYERS * f, out), f))
            for axis in (2, 3, 4):  # back to full resolution: each low-resolution voxel repeated f³ times
                low = low.repeat_interleave(f, dim=axis)
            fused.append(low)
        h = self.fc1(torch.cat(fused, dim=1))
        h = self.fc2(h)
        return self.classifier(h)

    def _centre(self, x: torch.Tensor, margin: int, out: list[int]) -> torch.Tensor:
        """The ``out + 2 * margin`` voxels of ``x`` centred on the predicted block."""
        a = self.context - margin
        return x[:, :, a:a + out[0] + 2 * margin, a:a + out[1] + 2 * margin, a:a + out[2] + 2 * margin]
