"""Settings every neural renderer shares, and their bounds (light: no torch).

A renderer's ``Config`` is a :class:`FitConfig` with its own fields; its ``validate()`` calls
:func:`validate_fit_config` with its own bounds, and :func:`check_texture` for its texture. A
checkpoint's stored config is checked against the same bounds before anything is built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.plugins import SEED_MAX, Range, validate_config

__all__ = ["FitConfig", "FIT_BOUNDS", "TEXTURE_BUDGET", "validate_fit_config", "check_texture", "texture_size_for"]


@dataclass
class FitConfig:
    """Settings every neural renderer has; the defaults fit on 2 CPU cores in 10 minutes."""

    size: int = field(default=256, metadata={"help": "training image size: frames whose longer side is larger are "
                                                     "scaled down to it, with their cameras (0 = their own size)"})
    minutes: float = field(default=10.0, metadata={"help": "wall-clock budget (0 = none); the best checkpoint "
                                                           "is kept"})
    iters: int = field(default=100000, metadata={"help": "optimisation steps at most (0 = until the time budget)"})
    batch: int = field(default=2, metadata={"help": "random crops (of different frames) per step"})
    crop: int = field(default=128, metadata={"help": "crop edge in pixels (0 = whole frames)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the network"})
    lr_texture: float = field(default=1e-2, metadata={"help": "Adam learning rate of the texture"})
    lr_decay: float = field(default=0.1, metadata={"help": "learning rates fall exponentially to this fraction "
                                                           "by the end of the budget"})
    val_every: int = field(default=250, metadata={"help": "score the held-out views every N steps"})
    val_views: int = field(default=8, metadata={"help": "held-out views scored while fitting (all at the end)"})
    val_fraction: float = field(default=0.0, metadata={"help": "share of the training views carved out as the "
                                                                "val split that chooses the kept checkpoint (0 = "
                                                                "the scene's own splits)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    amp: bool = field(default=True, metadata={"help": "mixed precision where the device has it natively: "
                                                      "float16 on CUDA, bfloat16 on CPUs with AMX (about twice "
                                                      "as fast there); off: float32 everywhere"})


# Bounds of the settings every renderer shares; each plugin's Config.validate() adds its own.
FIT_BOUNDS = {
    "size": Range(0, 4096), "minutes": Range(0, 100_000), "iters": Range(0, 100_000_000), "batch": Range(1, 64),
    "crop": Range(0, 4096), "lr": Range(0, 1, lo_open=True), "lr_texture": Range(0, 10, lo_open=True),
    "lr_decay": Range(0, 1, lo_open=True), "val_every": Range(1, 100_000_000), "val_views": Range(0, 100_000),
    "val_fraction": Range(0, 0.9),
    "seed": Range(0, SEED_MAX),
    "device": lambda v: None if v in ("cpu", "cuda") or v.startswith("cuda:") else f"must be cpu or cuda, got {v!r}",
}
# Texture elements (texels of every pyramid level x channels): 2^29 float32 is 2 GB, and Adam
# keeps two more of it while fitting. A 2048 DNR texture (16 channels) is 89 M.
TEXTURE_BUDGET = 1 << 29


def validate_fit_config(config: Any, bounds: dict) -> None:
    """The shared settings plus ``bounds``; a fit with no step limit and no time limit never ends."""
    validate_config(config, {**FIT_BOUNDS, **bounds})
    if config.iters == 0 and config.minutes == 0:
        raise ValueError("iters: 0 (no step limit) with minutes 0 (no time limit) would never stop")


def check_texture(size: int, levels: int, channels: int) -> None:
    """ValueError if a Laplacian texture of this finest edge, levels and channels is over budget."""
    texels = sum(max(2, int(size) >> i) ** 2 for i in range(int(levels)))
    if texels * channels > TEXTURE_BUDGET:
        raise ValueError(f"texture_size: {size} x {levels} levels x {channels} channels is "
                         f"{texels * channels * 4 / 2**30:.1f} GB of texture (at most {TEXTURE_BUDGET * 4 / 2**30:.0f})")


def texture_size_for(covered_pixels: int, lo: int = 64, hi: int = 2048) -> int:
    """A texture edge sized to the data: about 16 covered training pixels per texel of the finest
    level (the nearest power of two, within ``lo..hi``).

    Each texel needs several observations to generalise. Measured (DNR, 100 views of a specular
    globe, 2 CPU cores, 2 minutes): at 128x128 a 512 texture (3 pixels per texel) over-fits, 28.6 dB held
    out, where 256 and 128 reach 34 dB; at 256x256, 256 and 512 are within 0.2 dB.
    """
    s = np.sqrt(max(1, covered_pixels) / 16.0)
    return int(np.clip(2 ** int(np.round(np.log2(s))), lo, hi))
