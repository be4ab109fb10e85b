"""Lesion heat maps from a small 3D U-Net (MONAI): a classifier and a detector on one recipe.

Measured (issue 14, docs/PERFORMANCE.md): on 24 CT crops a DenseNet121 trained on the image
labels alone collapses, while a small U-Net supervised by the boxes (the ellipsoid inscribed in
each box as its target) and scoring a crop by the maximum of its smoothed heat map separates
them. So:

* ``heatmap3d`` (classifier): with boxes on every case, that U-Net; the crop's probability of
  the boxed class is the smoothed maximum of the heat map. With labels alone, the same U-Net with
  one heat map per class, pooled by a smooth maximum (log-sum-exp) into the class logits and
  trained by cross-entropy (multiple-instance learning). Saliency: the heat map itself (of the
  class chosen), on the input's exact grid: no Grad-CAM is needed where the network's output
  already is a map of where the evidence lies.
* ``heatmap3d-detector``: the box-supervised U-Net; boxes from the connected components of the
  smoothed heat map, each scored by its maximum (a Retina U-Net's segmentation branch, without
  its anchor head, which 24 cases do not train).

Light: torch and MONAI load on the first call that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from viewer.jobs.progress import Progress
from viewer.model import Volume
from viewer.plugins import (SEED_MAX, ClassifierBase, DetectorBase, ImageCase, Range, TrainedModel,
                            validate_config)

__all__ = ["Config", "DetectorConfig", "HeatmapClassifier", "HeatmapDetector", "CLASSIFIER", "DETECTOR", "BOUNDS",
           "FORMAT"]

FORMAT = "lucid3d-heatmap"  # config.json's "format"

BOUNDS = {
    "patch_size": Range(16, 128), "base_channels": Range(1, 64), "levels": Range(2, 5), "res_units": Range(0, 4),
    "batch_size": Range(1, 64), "learning_rate": Range(0, 1, lo_open=True), "max_steps": Range(1, 10_000_000),
    "minutes": Range(0, 100_000), "val_fraction": Range(0, 1, hi_open=True), "val_every": Range(1, 1_000_000),
    "lesion_share": Range(0, 1), "smooth_sigma": Range(0, 10), "threshold": Range(0, 1, lo_open=True, hi_open=True),
    "seed": Range(0, SEED_MAX), "mode": ("auto", "boxes", "labels"),
    "device": lambda v: None if v in ("cpu", "cuda") or v.startswith("cuda:") else f"must be cpu or cuda, got {v!r}",
}


@dataclass
class Config:
    """Settings of the heat-map U-Net; the defaults learn 24 crops in 6 CPU minutes."""

    mode: str = field(default="auto", metadata={"help": "supervision: boxes (every case needs them), labels (image labels alone) or auto (boxes when every case has them)"})
    # 24 within 32^3 crops: the patch lands anywhere in the crop (shifts that the 24 crops alone
    # lack) and a step costs 0.4 of a whole crop's: at 6 CPU min the training crops all fit (one kidney
    # lesion did not at 32) and the test AUC rose from 0.94 to 1.00 (bench/classify_detect.py)
    patch_size: int = field(default=24, metadata={"help": "edge of the cubic training patch, voxels (a multiple of 2^(levels-1))"})
    base_channels: int = field(default=8, metadata={"help": "feature maps at the first level (doubled per level)"})
    levels: int = field(default=3, metadata={"help": "resolution levels of the U-Net"})
    res_units: int = field(default=1, metadata={"help": "residual units per level"})
    batch_size: int = field(default=4, metadata={"help": "patches per step"})
    learning_rate: float = field(default=3e-3, metadata={"help": "AdamW learning rate (poly decay over the budget)"})
    max_steps: int = field(default=100_000, metadata={"help": "steps at most"})
    minutes: float = field(default=6.0, metadata={"help": "wall-clock budget (0 = none); the kept checkpoint is on disk throughout"})
    val_fraction: float = field(default=0.0, metadata={"help": "share of cases held out to choose the best weights by (0: train on all, keep the latest)"})
    val_every: int = field(default=100, metadata={"help": "validate every N steps (with held-out cases)"})
    lesion_share: float = field(default=0.5, metadata={"help": "share of training patches placed on a box"})
    smooth_sigma: float = field(default=1.0, metadata={"help": "Gaussian smoothing of the heat map before its maximum, voxels"})
    threshold: float = field(default=0.5, metadata={"help": "heat above which voxels join a detection (share of its peak)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_config(self, BOUNDS)
        step = 2 ** (self.levels - 1)
        if self.patch_size % step:
            raise ValueError(f"patch_size: {self.patch_size} is not a multiple of {step} (2^(levels-1))")


@dataclass
class DetectorConfig(Config):
    """The detector's settings: the classifier's, its supervision always the boxes."""

    mode: str = field(default="boxes", metadata={"help": "supervision: boxes (a detector learns from nothing else)"})
    minutes: float = field(default=8.0, metadata={"help": "wall-clock budget (0 = none); the kept checkpoint is on disk throughout"})

    def validate(self) -> None:
        super().validate()
        if self.mode != "boxes":
            raise ValueError(f"mode: a detector learns from boxes, got {self.mode!r}")


class _Heatmap:
    """What both plugin objects share: training, checkpoints."""

    Config: type

    def train(self, cases: Sequence[ImageCase], config: Any, progress: Progress, *,
              checkpoint_dir: str | Path | None = None,
              sources: Sequence[Mapping[str, str]] = ()) -> TrainedModel:
        from .train import train_heatmap

        return train_heatmap(list(cases), config, progress, plugin=self.name, kind=self.kind,  # type: ignore[attr-defined]
                             checkpoint_dir=checkpoint_dir, sources=[dict(s) for s in sources])

    def save(self, model: TrainedModel, path: str | Path) -> Path:
        from .checkpoint import save_checkpoint

        return save_checkpoint(model, path)  # type: ignore[arg-type]

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel:
        from .checkpoint import load_checkpoint

        return load_checkpoint(path, device, self.Config, kind=self.kind)  # type: ignore[attr-defined]

    def owns_checkpoint(self, folder: Path) -> bool:
        from viewer.plugins.checkpoint import stored_config

        return super().owns_checkpoint(folder) and (stored_config(folder) or {}).get("format") == FORMAT  # type: ignore[misc]


class HeatmapClassifier(_Heatmap, ClassifierBase):
    name = "heatmap3d"
    priority = 10  # the default classifier: the best measured (docs/PERFORMANCE.md)
    description = "3D U-Net heat map (MONAI): box-supervised when boxes are given, else per-class smooth-max pooling"
    Config = Config

    def classify(self, model: TrainedModel, volume: Volume) -> dict[str, Any]:
        from .infer import classify

        return classify(model, volume)  # type: ignore[arg-type]

    def saliency(self, model: TrainedModel, volume: Volume) -> Volume | None:
        from .infer import saliency

        return saliency(model, volume)  # type: ignore[arg-type]


class HeatmapDetector(_Heatmap, DetectorBase):
    name = "heatmap3d-detector"
    priority = 10  # the default detector
    description = "3D U-Net heat map (MONAI) supervised by the boxes; boxes from its connected components"
    Config = DetectorConfig

    def detect(self, model: TrainedModel, volume: Volume, min_score: float = 0.5) -> list[dict[str, Any]]:
        from .infer import detect

        return detect(model, volume, min_score)  # type: ignore[arg-type]


CLASSIFIER = HeatmapClassifier()
DETECTOR = HeatmapDetector()
