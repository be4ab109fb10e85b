"""DeepMedic's inference: dense output blocks tiled over the volume, each read with its context.

The volume is padded by the network's context (24 voxels per side, with its lowest value, as in
training) and cut into blocks that partition it exactly; each block is predicted from the
``block + 48`` voxels around it, in one network call per ``sw_batch_size`` blocks. Nothing
overlaps, so nothing is blended: only the blocks' labels (uint8) and, with test-time flips, their
entropy are kept, and memory stays at a few blocks whatever the volume's size.

Block origins are multiples of 3 (of every subsampling factor) apart in the padded volume, so
the low-resolution pathways average the same voxel groups in every tiling: the labels do not depend on the block size
(up to floating-point summation order), and one block over the whole volume gives the same
answer as many small ones.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
import torch

from plugins._seg.infer import tta_flips
from viewer.plugins.precision import autocast

from .network import CONTEXT, FACTOR

__all__ = ["segment_tiles", "tile_blocks"]


def tile_blocks(shape: tuple[int, ...], block: int, unit: int = FACTOR) -> list[int]:
    """Block edge per axis: the fewest blocks of at most ``block`` (rounded down to a multiple of
    ``unit``, 3 for the paper's network) that cover the axis, made as even as multiples of the
    unit allow, so that the last block does not overshoot the volume by up to a whole block."""
    b = max(unit, int(block) // unit * unit)
    edges = []
    for n in shape:
        count = math.ceil(n / b)
        edges.append(min(b, math.ceil(math.ceil(n / count) / unit) * unit))
    return edges


def segment_tiles(net: torch.nn.Module, image: np.ndarray, n_classes: int, roi: tuple[int, int, int],
                  overlap: float = 0.0, sw_batch_size: int = 4, tta: bool = False, device: str = "cpu",
                  amp: bool = False, slab_bytes: int = 1 << 30, flip_axes=(0, 1, 2),
                  progress: Callable[[float, float], None] | None = None,
                  block: int | None = None,
                  refine: Callable[[torch.Tensor], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and, with ``tta``, entropy of the mean flipped softmax) of a normalised volume.

    The signature of :func:`plugins._seg.infer.segment_array`; ``overlap`` and ``slab_bytes``
    are not needed (blocks do not overlap, and no buffer spans the volume).

    Parameters
    ----------
    image : (I, J, K) float32 normalised intensities, canonical orientation.
    roi : the training block; the output block is ``block``, else the network's ``infer_block``,
        else ``roi``.
    refine : ``(C, I, J, K) float32 probabilities -> (I, J, K) labels`` (a CRF) in place of the
        argmax: the blocks' softmax is then kept for the whole volume, C float32 per voxel.

    Returns
    -------
    labels : (I, J, K) uint8 (int16 beyond 256 classes).
    uncertainty : (I, J, K) float32 entropy in nats, or None without ``tta``.
    """
    flips = tta_flips(flip_axes) if tta else ((),)
    shape = tuple(int(n) for n in image.shape)
    blocks = tile_blocks(shape, block or int(getattr(net, "infer_block", 0)) or max(roi),
                         int(getattr(net, "unit", FACTOR)))
    counts = [math.ceil(n / b) for n, b in zip(shape, blocks)]
    context = int(getattr(net, "context", CONTEXT))
    padded = np.full([c * b + 2 * context for c, b in zip(counts, blocks)], float(np.min(image)), np.float32)
    padded[context:context + shape[0], context:context + shape[1], context:context + shape[2]] = image
    labels = np.empty(shape, np.uint8 if n_classes <= 256 else np.int16)
    unc = np.empty(shape, np.float32) if tta else None
    whole = torch.empty((n_classes, *shape), dtype=torch.float32) if refine is not None else None
    origins = list(itertools.product(*(range(0, c * b, b) for c, b in zip(counts, blocks))))
    edges = [b + 2 * context for b in blocks]  # the input read around each block
    step = max(1, int(sw_batch_size))
    with torch.inference_mode():
        for first in range(0, len(origins), step):
            group = origins[first:first + step]
            x = torch.from_numpy(np.stack([padded[o[0]:o[0] + edges[0], o[1]:o[1] + edges[1], o[2]:o[2] + edges[2]]
                                           for o in group]))[:, None].to(device)
            total = None
            for axes in flips:
                with autocast(device, amp):
                    out = net(torch.flip(x, axes) if axes else x).float()
                out = torch.flip(out, axes) if axes else out
                if tta or whole is not None:
                    out = torch.softmax(out, dim=1)
                total = out if total is None else total.add_(out)
            prob = total.cpu()
            if tta:
                prob /= len(flips)
            for k, o in enumerate(group):
                keep = tuple(slice(0, min(b, n - a)) for a, b, n in zip(o, blocks, shape))
                where = tuple(slice(a, a + s.stop) for a, s in zip(o, keep))
                if whole is not None:
                    whole[(slice(None), *where)] = prob[k][(slice(None), *keep)]
                else:
                    labels[where] = prob[k].argmax(0)[keep].numpy()
                if unc is not None:
                    p = prob[k][(slice(None), *keep)].clamp_min(1e-8)
                    unc[where] = (-(p * p.log()).sum(0)).numpy()
            if progress is not None:
                progress(first + len(group), len(origins))
    if whole is not None:
        labels[...] = refine(whole)
    return labels, unc
