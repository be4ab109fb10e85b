"""Two small Lucid3D plugins: a segmenter that learns one intensity threshold, and a renderer that
learns one colour. Nothing here imports torch; checkpoints are a config.json each."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from viewer.io import atomic_path
from viewer.jobs.progress import ImagePreview
from viewer.model import LabelMap, LabelTable, Volume
from viewer.plugins import Range, RendererBase, SegmenterBase, read_checkpoint_json, validate_config


@dataclass
class ThresholdConfig:
    device: str = field(default="cpu", metadata={"help": "unused: thresholds need no GPU"})
    margin: float = field(default=0.5, metadata={"help": "where between the background and foreground means"})

    def validate(self) -> None:
        validate_config(self, {"margin": Range(0, 1)})


@dataclass
class Trained:  # what the contract's TrainedModel asks for, and the plugin's own fields
    plugin: str
    config: dict
    metrics: dict
    values: dict = field(default_factory=dict)


def _write(folder, data: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "config.json") as tmp:  # written whole or not at all
        Path(tmp).write_text(json.dumps(data))
    return folder


def _read(folder, name: str) -> dict:
    data = read_checkpoint_json(Path(folder) / "config.json")
    if data.get("plugin") != name:
        raise ValueError(f"not a {name} checkpoint")
    return data


class Threshold(SegmenterBase):
    name = "threshold"
    description = "one intensity threshold between background and the label (a baseline)"
    Config = ThresholdConfig
    checkpoint_files = ("config.json",)

    def train(self, cases, config, progress, *, checkpoint_dir=None, sources=()):
        config.validate()
        fg = np.concatenate([np.asarray(c.image.array)[np.asarray(c.labels.array) > 0] for c in cases])
        bg = np.concatenate([np.asarray(c.image.array)[np.asarray(c.labels.array) == 0] for c in cases])
        t = float(bg.mean() + config.margin * (fg.mean() - bg.mean()))
        value = int(np.bincount(np.concatenate([np.asarray(c.labels.array).ravel() for c in cases]))[1:].argmax() + 1)
        progress.update(1, 1, "threshold found")
        progress.metrics(1, threshold=t)
        model = Trained(self.name, asdict(config), {"threshold": t}, {"threshold": t, "value": value})
        if checkpoint_dir is not None:
            self.save(model, checkpoint_dir)
        return model

    def predict(self, model, volume, progress, *, tta=False):
        mask = (np.asarray(volume.array) > model.values["threshold"]).astype(np.uint8) * model.values["value"]
        progress.update(1, 1, "thresholded")
        return LabelMap(mask, volume.affine, LabelTable.for_values([model.values["value"]])), None

    def save(self, model, path):
        return _write(path, {"plugin": self.name, "config": model.config, "metrics": model.metrics, **model.values})

    def load(self, path, device="cpu"):
        d = _read(path, self.name)
        return Trained(self.name, d["config"], d["metrics"], {"threshold": float(d["threshold"]), "value": int(d["value"])})


@dataclass
class FlatConfig:  # no settings at all: the command line and the form cope
    pass


class Flat(RendererBase):
    name = "flat"
    description = "every view one colour: the mean of the training photos (a baseline)"
    Config = FlatConfig
    checkpoint_files = ("config.json",)

    def fit(self, views, geometry, config, progress, *, checkpoint_dir=None, sources=None):
        frames = views.split("train")
        colour = np.mean([f.rgb(views.background).reshape(-1, 3).mean(0) for f in frames], axis=0)
        model = Trained(self.name, asdict(config), {"steps": 1}, {"rgb": colour.tolist()})
        cam = frames[0].camera
        progress.preview(ImagePreview(frames[0].name, self._image(model, cam.height, cam.width)))
        if checkpoint_dir is not None:
            self.save(model, checkpoint_dir)
        return model

    def _image(self, model, h, w):
        return np.full((h, w, 3), np.round(np.asarray(model.values["rgb"]) * 255), np.uint8)

    def render(self, model, camera, background=None):
        return np.full((camera.height, camera.width, 3), model.values["rgb"], np.float32)

    def save(self, model, path):
        return _write(path, {"plugin": self.name, "config": model.config, "metrics": model.metrics, **model.values})

    def load(self, path, device="cpu"):
        d = _read(path, self.name)
        return Trained(self.name, d["config"], d["metrics"], {"rgb": [float(v) for v in d["rgb"]]})


SEGMENTER = Threshold()
RENDERER = Flat()
