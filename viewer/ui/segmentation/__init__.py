"""The Segmentation panel, in parts: ``panel`` (the panel: method, model, training, checkpoints),
``pairs`` (the training pairs from the scene and from folders), ``run`` (the Run tab: prediction,
per-label results, masks) and ``files`` (pairing files in a folder, copying checkpoints; no Qt).
The training bar, curves and preview it shares with the Neural Rendering panel live in
:mod:`viewer.ui.training_bar`."""

from .files import copy_checkpoint, pairs_in_folder, same_grid
from .panel import SegmentationPanel, warm_up

__all__ = ["SegmentationPanel", "warm_up", "pairs_in_folder", "copy_checkpoint", "same_grid"]
