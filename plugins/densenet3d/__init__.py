"""3D DenseNet121 (MONAI, a small width) classifier from image labels alone, Grad-CAM saliency.

The issue's baseline recipe for 3D classification, kept as a method to compare with: trained on
whole images by their labels (cross-entropy), whatever boxes the manifest holds; saliency by
``monai.visualize.GradCAM`` at the second transition's activation (1/8 of the input: the last
block's is one voxel of a 32^3 crop), upsampled to the input's exact grid. On small data it is
outperformed by ``heatmap3d`` (docs/PERFORMANCE.md), which is the default. Checkpoints share ``plugins/heatmap3d``'s format (``"network": "densenet121"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from plugins.heatmap3d import Config as _HeatConfig, HeatmapClassifier
from viewer.jobs.progress import Progress
from viewer.plugins import ImageCase, TrainedModel

__all__ = ["Config", "DenseNetClassifier", "PLUGIN"]


@dataclass
class Config(_HeatConfig):
    """The heat-map classifier's settings; the supervision is always the labels."""

    mode: str = field(default="labels", metadata={"help": "supervision: labels (a DenseNet learns from image labels alone)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (poly decay over the budget)"})

    def validate(self) -> None:
        super().validate()
        if self.mode != "labels":
            raise ValueError(f"mode: a DenseNet learns from labels alone, got {self.mode!r}")


class DenseNetClassifier(HeatmapClassifier):
    name = "densenet3d"
    priority = 0  # below heatmap3d: measured worse on small data
    description = "3D DenseNet121 (MONAI, small width) on image labels alone; Grad-CAM saliency"
    Config = Config

    def train(self, cases: Sequence[ImageCase], config: Any, progress: Progress, *,
              checkpoint_dir: str | Path | None = None,
              sources: Sequence[Mapping[str, str]] = ()) -> TrainedModel:
        from plugins.heatmap3d.train import train_heatmap

        return train_heatmap(list(cases), config, progress, plugin=self.name, kind=self.kind,
                             checkpoint_dir=checkpoint_dir, sources=[dict(s) for s in sources], network="densenet121")


PLUGIN = DenseNetClassifier()
