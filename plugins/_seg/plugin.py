"""The plugin object patch-trained 3D segmenters share: train, predict, check_volume, save, load
and owns_checkpoint around one network builder.

A segmenter plugin is then a ``Config`` and ``build_network(in_channels, n_classes, config)``;
see ``plugins/unet3d``. Light: torch, MONAI and the training code load on the first call that
needs them, so listing plugins costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

from viewer.jobs.progress import Progress
from viewer.model import LabelMap, Volume
from viewer.plugins import Case, SegmenterBase, TrainedModel

__all__ = ["FORMAT", "PatchSegmenterPlugin"]

FORMAT = "lucid3d-segmenter"  # config.json's "format": a segmenter checkpoint of this machinery


class PatchSegmenterPlugin(SegmenterBase):
    """The segmenter contract of :mod:`viewer.plugins` around :meth:`build_network`.

    Subclasses set ``name``, ``description``, ``Config`` and implement :meth:`build_network`.
    """

    Config: ClassVar[type]

    def build_network(self, in_channels: int, n_classes: int, config: Any) -> Any:
        """The empty network (a torch module) for ``config`` (a Config): (B, in_channels, I, J, K)
        patches in, (B, n_classes, I, J, K) logits out."""
        raise NotImplementedError

    def segment_function(self) -> Callable[..., Any] | None:
        """How a whole normalised canonical volume is segmented, with the signature of
        :func:`plugins._seg.infer.segment_array`; None (the default): that function, MONAI's
        sliding windows. Called inside train and predict, so it may import torch."""
        return None

    def train(self, cases: Sequence[Case], config: Any, progress: Progress, *,
              checkpoint_dir: str | Path | None = None,
              sources: Sequence[Mapping[str, str]] = ()) -> TrainedModel:
        from .train import train_segmenter

        return train_segmenter(list(cases), config, progress, plugin=self.name, build=self.build_network,
                               checkpoint_dir=checkpoint_dir, sources=[dict(s) for s in sources],
                               segment=self.segment_function())

    def predict(self, model: TrainedModel, volume: Volume, progress: Progress, *,
                tta: bool = False, settings: Mapping[str, Any] | None = None) -> tuple[LabelMap, Volume | None]:
        from .predict import predict_volume

        if settings:
            self._check_settings(model, settings)
        return predict_volume(model, volume, progress, tta=tta, segment=self.segment_function(),
                              settings=dict(settings or {}))

    def _check_settings(self, model: TrainedModel, settings: Mapping[str, Any]) -> None:
        """ValueError ``"field: problem"`` for a setting this Config lacks or refuses, checked
        with the checkpoint's other settings."""
        names = set(getattr(self.Config, "__dataclass_fields__", {}))
        for key in settings:
            if key not in names:
                raise ValueError(f"{key}: the {self.name} segmenter has no such setting")
        stored = self._stored_settings(model.config)
        check = getattr(self.Config(**{**stored, **settings}), "validate", None)
        if check is not None:
            check()

    def check_volume(self, model: TrainedModel, volume: Volume) -> str | None:
        from .checkpoint import check_prediction_grid

        return check_prediction_grid(model, volume.shape, volume.affine)

    def save(self, model: TrainedModel, path: str | Path) -> Path:
        from .checkpoint import save_checkpoint

        return save_checkpoint(model, path)

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel:
        from .checkpoint import load_checkpoint

        return load_checkpoint(path, self._builder(), device, config_cls=self.Config)

    def owns_checkpoint(self, folder: Path) -> bool:
        from viewer.plugins.checkpoint import stored_config

        return super().owns_checkpoint(folder) and (stored_config(folder) or {}).get("format") == FORMAT

    def _stored_settings(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """A checkpoint's stored config as this Config's fields: derived extras dropped, settings
        it predates filled in as they were then (:func:`.checkpoint.with_legacy`)."""
        from .checkpoint import with_legacy

        names = set(getattr(self.Config, "__dataclass_fields__", {}))
        return {k: v for k, v in with_legacy(self.Config, dict(stored)).items() if k in names}

    def _builder(self) -> Callable[[dict], Any]:
        """config.json -> the empty network it describes."""

        def build(cfg_json: dict) -> Any:
            config = self.Config(**self._stored_settings(cfg_json.get("config", {})))
            return self.build_network(int(cfg_json.get("in_channels", 1)), int(cfg_json["n_classes"]), config)

        return build
