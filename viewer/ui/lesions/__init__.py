"""The Lesions panel, in parts: ``panel`` (the dock's widget: cases on top, two tabs), ``cases``
(the ``cases.json`` manifest or demo cases, read in a job), ``task`` (what classification and
detection share: method, model, training, checkpoints, the Run tab's image), ``classify`` (label,
probabilities, saliency overlay) and ``detect`` (boxes layer, the table that jumps to each box)."""

from .panel import LesionsPanel

__all__ = ["LesionsPanel"]
