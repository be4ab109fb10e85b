"""Small structures: whether a training set's labels are small, decided from their volumes.

Segmenters choose some defaults from this (the U-Net's depth, DeepMedic's low-resolution width
and batch Dice) when training starts, and store the decision in the checkpoint. The threshold
sits between the small-structure sets of ``bench/seg_peer.py`` (1.5-10 mL: the phantom's
gallbladder, adrenals and pancreas, MNI152's caudate, putamen and thalamus, the frog's organs)
and the phantom's smallest large organ (29 mL); grey and white matter are hundreds of mL.
Light: no torch, no MONAI.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["SMALL_ML", "label_volumes_ml", "has_small_labels"]

SMALL_ML = 15.0  # a label under this many mL, in any training case, makes the set "small structures"


def label_volumes_ml(cases: Sequence[Any]) -> dict[int, float]:
    """Each label value's volume in mL, the smallest over the cases that hold it (their own grids)."""
    out: dict[int, float] = {}
    for case in cases:
        for v, ml in case.labels.volumes_ml().items():
            out[v] = min(out.get(v, math.inf), ml)
    return out


def has_small_labels(cases: Sequence[Any], threshold_ml: float = SMALL_ML) -> bool:
    """True when some label holds under ``threshold_ml`` mL in some training case."""
    volumes = label_volumes_ml(cases)
    return bool(volumes) and min(volumes.values()) < threshold_ml
