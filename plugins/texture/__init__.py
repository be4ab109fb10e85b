"""The classical baseline: one RGB texture on the mesh's uv atlas, fitted to the photos by
gradient descent through the rasterized uv maps (bilinear sampling, L1 on the composite).

The texture is a Laplacian pyramid (``levels`` >= 2): texels no photo saw take the value of the
coarser levels, smooth, instead of staying at their initial colour, which helps held-out views.
With ``levels = 1`` it is a plain texture. It has no view dependence: highlights are averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugins._nr.config import FitConfig, check_texture, validate_fit_config
from plugins._nr.plugin import NeuralRendererPlugin
from viewer.plugins import Range

__all__ = ["BOUNDS", "Config", "TexturePlugin", "PLUGIN"]

BOUNDS = {"texture_size": Range(0, 8192), "levels": Range(1, 12)}


@dataclass
class Config(FitConfig):
    """Settings of the fitted RGB texture."""

    texture_size: int = field(default=0, metadata={"help": "texture edge in texels (0 = sized to the data: about "
                                                              "16 training pixels per texel)"})
    levels: int = field(default=4, metadata={"help": "Laplacian pyramid levels (1 = a plain texture)"})
    batch: int = field(default=4, metadata={"help": "random crops (of different frames) per step"})
    lr_texture: float = field(default=2e-2, metadata={"help": "Adam learning rate of the texture"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_fit_config(self, BOUNDS)
        check_texture(self.texture_size, self.levels, 3)


class TexturePlugin(NeuralRendererPlugin):
    name = "texture"
    description = "plain RGB texture (Laplacian pyramid) fitted through the mesh's uv maps: the classical baseline"
    Config = Config

    def build(self, config: dict[str, Any], init: dict[str, Any]) -> Any:
        """A :class:`~plugins.texture.network.TextureNet` (torch loads here, on first use)."""
        from .network import TextureNet

        cfg = self.config_for(config, init)
        return TextureNet(cfg.texture_size, cfg.levels, init.get("mean_rgb"))


PLUGIN = TexturePlugin()
