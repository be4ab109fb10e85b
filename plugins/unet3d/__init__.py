"""3D U-Net segmentation (MONAI's UNet with residual units), trained on image/label volumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugins._seg.crf import CRF_BOUNDS, crf_field
from plugins._seg.plugin import PatchSegmenterPlugin
from viewer.plugins import SEED_MAX, Range, validate_config

__all__ = ["Config", "UNet3D", "PLUGIN", "BOUNDS", "WINDOW_BUDGET", "build_network"]

# Feature-map elements at the first level for one network call (patch^3 x base channels x windows
# or patches per call): 2^29 float32 is 2 GB per map, so a config someone edited (a 400^3 patch)
# is refused before it allocates 16 GB; every default and GPU preset sits well below it.
WINDOW_BUDGET = 1 << 29

BOUNDS = {
    "patch_size": Range(16, 256), "base_channels": Range(1, 128), "levels": Range(2, 7),
    "res_units": Range(0, 8), "sampling": ("posneg", "classes"), "affine_prob": Range(0, 1),
    "batch_size": Range(1, 256), "learning_rate": Range(0, 1, lo_open=True), "max_epochs": Range(1, 1_000_000),
    "iters_per_epoch": Range(1, 1_000_000), "val_every": Range(1, 1_000_000), "minutes": Range(0, 100_000),
    "val_fraction": Range(0, 1, hi_open=True), "overlap": Range(0, 0.95), "sw_batch_size": Range(1, 64),
    "seed": Range(0, SEED_MAX), "val_share": Range(0, 1),
    "device": lambda v: None if v in ("cpu", "cuda") or v.startswith("cuda:") else f"must be cpu or cuda, got {v!r}",
    **CRF_BOUNDS,
}


def check_patch(patch: tuple[int, ...], levels: int, base: int, per_call: int) -> str | None:
    """Why a patch (voxels per axis) does not suit the network, or None: each edge a multiple of
    2^(levels-1) (every level halves it), and the first-level maps within WINDOW_BUDGET."""
    step = 2 ** (levels - 1)
    if any(p % step for p in patch):
        return f"{list(patch)} is not a multiple of {step} (2^(levels-1), levels={levels})"
    elements = base * per_call
    for p in patch:
        elements *= p
    if elements > WINDOW_BUDGET:
        return (f"{list(patch)} with {base} channels and {per_call} per call needs {elements * 4 / 2**30:.0f} GB "
                f"per feature map (at most {WINDOW_BUDGET * 4 / 2**30:.0f})")
    return None


@dataclass
class Config:
    """Settings of the 3D U-Net; the defaults learn in minutes on 2 CPU cores."""

    patch_size: int = field(default=64, metadata={"help": "edge of the cubic training patch, voxels"})
    base_channels: int = field(default=16, metadata={"help": "feature maps at the first level (doubled per level)"})
    levels: int = field(default=5, metadata={"help": "resolution levels of the U-Net"})
    res_units: int = field(default=2, metadata={"help": "residual units per level"})
    sampling: str = field(default="classes", metadata={"help": "patch centres: posneg (half foreground, half background) or classes (evenly over every label)"})
    affine_prob: float = field(default=0.0, metadata={"help": "chance of a small random rotation/scaling of a training patch"})
    mirror: str = field(default="auto", metadata={"help": "axes a training patch is mirrored along (and test-time flips): auto (left-right, unless a label lies on one side of the body), lr, all or none"})
    batch_size: int = field(default=2, metadata={"help": "patches per step"})
    learning_rate: float = field(default=3e-3, metadata={"help": "AdamW learning rate (poly decay)"})
    max_epochs: int = field(default=400, metadata={"help": "epochs at most"})
    iters_per_epoch: int = field(default=25, metadata={"help": "steps per epoch; validation after each"})
    val_every: int = field(default=2, metadata={"help": "validate every N epochs"})
    val_share: float = field(default=0.1, metadata={"help": "largest share of the training time validation may take"})
    minutes: float = field(default=10.0, metadata={"help": "wall-clock budget (0 = none); the best checkpoint is kept"})
    val_fraction: float = field(default=0.25, metadata={"help": "share of cases held out for validation Dice"})
    overlap: float = field(default=0.25, metadata={"help": "sliding-window overlap at inference"})
    sw_batch_size: int = field(default=4, metadata={"help": "windows per network call at inference"})
    tta: bool = field(default=True, metadata={"help": "flip test-time augmentation (gives the uncertainty map)"})
    crf: bool = crf_field("crf")
    crf_iterations: int = crf_field("crf_iterations")
    crf_appearance_mm: float = crf_field("crf_appearance_mm")
    crf_appearance_intensity: float = crf_field("crf_appearance_intensity")
    crf_appearance_weight: float = crf_field("crf_appearance_weight")
    crf_smoothness_mm: float = crf_field("crf_smoothness_mm")
    crf_smoothness_weight: float = crf_field("crf_smoothness_weight")
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    amp: bool = field(default=True, metadata={"help": "mixed precision where the device has it natively: float16 on CUDA, bfloat16 on CPUs with AMX (about twice as fast there); off: float32 everywhere"})

    # derived at training time and stored beside the settings in a checkpoint's config
    STORED_EXTRA = {"mirror_axes": lambda v: None if isinstance(v, list) and len(set(v)) == len(v) and all(
        a in (0, 1, 2) and a is not True and a is not False for a in v) else f"must be distinct axes 0, 1, 2, got {v!r}"}

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_config(self, BOUNDS)
        p = self.patch_size
        problem = check_patch((p, p, p), self.levels, self.base_channels, max(self.batch_size, self.sw_batch_size))
        if problem:
            raise ValueError(f"patch_size: {problem}")

    def patch_problem(self, patch: tuple[int, ...]) -> str | None:
        """Why a stored inference patch (voxels per axis) does not suit this network, or None."""
        return check_patch(tuple(patch), self.levels, self.base_channels, self.sw_batch_size)


def build_network(in_channels: int, n_classes: int, cfg: Any):
    """MONAI's UNet: channels base·2^l, stride-2 downsampling, residual units, instance norm."""
    from monai.networks.nets import UNet

    levels = int(getattr(cfg, "levels", 5))
    base = int(getattr(cfg, "base_channels", 16))
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=n_classes,
                channels=tuple(base * 2**i for i in range(levels)), strides=(2,) * (levels - 1),
                num_res_units=int(getattr(cfg, "res_units", 2)), norm="instance")


class UNet3D(PatchSegmenterPlugin):
    """The plugin object (the contract: :mod:`viewer.plugins`; the machinery: ``plugins/_seg``)."""

    name = "unet3d"
    priority = 10  # the default segmenter: the best measured (docs/PERFORMANCE.md)
    description = "3D U-Net (MONAI), Dice + cross-entropy, half-foreground patches, sliding windows"
    Config = Config

    def build_network(self, in_channels: int, n_classes: int, config: Any):
        return build_network(in_channels, n_classes, config)


PLUGIN = UNet3D()
