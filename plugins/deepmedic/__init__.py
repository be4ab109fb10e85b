"""DeepMedic (Kamnitsas et al. 2017): a multi-scale 3D CNN, trained densely on image segments.

A normal-resolution pathway and low-resolution pathways (×3, and by default ×5 as the DeepMedic
release allows: 85 voxels of context; ``subsample="3"`` is the paper's dual pathway) of eight 3³
convolutions each, fused and classified by 1³ convolutions (:mod:`.network`). The ×5 pathway
closed a 0.04-0.05 Dice gap to the U-Net on MNI152's deep grey matter that more minutes, wider
maps and larger blocks did not (docs/PERFORMANCE.md). Trained densely on segments larger than the
receptive field, each step predicting a block of voxels, with Dice + cross-entropy. Segment
centres are drawn evenly over the classes (``sampling="classes"``), the background's drawn only
inside the body (the paper's ROI mask, ``background="body"``): drawn over the whole volume, air
included, background blocks of a few centimetres rarely held the tissue a label could be
mistaken for (on MNI152's deep grey matter most of the putamen's and thalamus's errors were
false positives far from the structure). The paper's half-background share
(``background_share=0.5``) is an option: at equal CPU minutes it lost 0.05 Dice on the abdominal
phantom and gained nothing measurable on the deep grey matter (docs/PERFORMANCE.md).
Small structures (``small_structures="auto"``: a training label under 15 mL, decided from the
labels when training starts and stored as "on"/"off" in the checkpoint): the low-resolution
pathways get twice the feature maps (their voxels are 27-125× fewer, so the width is cheap) and
the Dice is taken over the step's segments together; on the phantom's 1.5-5 mL organs that was
+0.07 Dice in a paired run (the pancreas, told apart only by where it lies, 0.16 -> 0.32), while
the liver-to-bone phantom, whose smallest organ is 29 mL, lost 0.04-0.09 with the wider pathways
(their 15 % fewer steps), so it stays off there (docs/PERFORMANCE.md).
Segmenting by dense blocks tiled over the volume (:mod:`.infer`). As in the paper, a 3D fully
connected CRF may follow (``crf``; off by default, ``segment --crf`` turns it on for one call):
mean-field over the blocks' softmax, :mod:`plugins._seg.crf`. The rest (orientation, spacing,
normalisation, sampling, the training loop, checkpoints) is ``plugins/_seg``'s.

Light: torch is imported by the submodules, on the first call that needs them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from plugins._seg.crf import CRF_BOUNDS, crf_field
from plugins._seg.plugin import PatchSegmenterPlugin
from viewer.plugins import SEED_MAX, Range, validate_config

__all__ = ["Config", "DeepMedicPlugin", "PLUGIN", "BOUNDS", "SMALL_ML", "WINDOW_BUDGET", "build_network", "check_block",
           "label_volumes_ml", "low_width", "resolve_small_structures",
           "geometry", "parse_factors"]

# the network's geometry (plugins/deepmedic/network.py holds the same numbers, with torch)
FACTOR, LAYERS = 3, 8
CONTEXT = FACTOR * LAYERS  # voxels per side read beyond the predicted block

# feature-map elements of one network call (widest map x its voxels x segments per call): 2^29
# float32 is 2 GB per map, so an edited config is refused before it allocates tens of GB
WINDOW_BUDGET = 1 << 29


def geometry(factors) -> tuple[int, int]:
    """(context, unit) of a network whose low-resolution pathways subsample by ``factors``:
    the voxels per side it reads beyond its block (8 layers × the largest factor) and what every
    block edge must be a multiple of (the factors' least common multiple, so each pathway's voxels
    tile the block)."""
    factors = [int(f) for f in factors]
    return LAYERS * max(factors), math.lcm(*factors)


def parse_factors(text: str) -> tuple[int, ...]:
    """``"3"`` or ``"3,5"`` (or ``"3 5"``, ``"3+5"``) -> (3,) or (3, 5); ValueError
    ``"subsample: problem"`` otherwise."""
    try:
        factors = tuple(int(t) for t in re.split(r"[,+\s]+", str(text).strip()))
    except ValueError:
        raise ValueError(f"subsample: must be factors separated by commas, e.g. 3 or 3,5; got {text!r}") from None
    if not 1 <= len(factors) <= 3 or len(set(factors)) != len(factors) or not all(2 <= f <= 9 for f in factors):
        raise ValueError(f"subsample: one to three distinct factors from 2 to 9, got {text!r}")
    return factors


BOUNDS = {
    "patch_size": Range(18, 252), "infer_block": Range(3, 252), "channels": Range(1, 128), "low_channels": Range(0, 128),
    "fc_channels": Range(1, 512), "dropout": Range(0, 1, hi_open=True), "sampling": ("posneg", "classes"), "small_structures": ("auto", "on", "off"), "background": ("all", "body"), "background_share": Range(0, 1, hi_open=True),
    "affine_prob": Range(0, 1), "batch_size": Range(1, 256), "learning_rate": Range(0, 1, lo_open=True),
    "max_epochs": Range(1, 1_000_000), "iters_per_epoch": Range(1, 1_000_000), "val_every": Range(1, 1_000_000),
    "val_share": Range(0, 1), "minutes": Range(0, 100_000), "val_fraction": Range(0, 1, hi_open=True),
    "sw_batch_size": Range(1, 64), "seed": Range(0, SEED_MAX),
    "device": lambda v: None if v in ("cpu", "cuda") or v.startswith("cuda:") else f"must be cpu or cuda, got {v!r}",
    **CRF_BOUNDS,
}


def check_block(block: tuple[int, ...], channels: int, fc_channels: int, per_call: int,
                factors=(FACTOR,), low_channels: int = 0) -> str | None:
    """Why an output block (voxels per axis) does not suit the network, or None: each edge a
    multiple of the factors' least common multiple (the low-resolution pathways' voxels), and its
    feature maps within WINDOW_BUDGET."""
    unit = geometry(factors)[1]
    if any(b % unit for b in block):
        return f"{list(block)} is not a multiple of {unit} (the low-resolution pathways' subsampling {list(factors)})"
    def widest(c: int) -> int:
        return c + 2 * c // 3

    low = low_channels or channels
    out = math.prod(block)
    maps = [widest(channels) * math.prod(b + 2 * LAYERS for b in block), fc_channels * out,
            (widest(channels) + len(factors) * widest(low)) * out]  # the fused maps
    maps += [widest(low) * math.prod(b // f + 2 * LAYERS for b in block) for f in factors]
    elements = max(maps) * per_call
    if elements > WINDOW_BUDGET:
        return (f"{list(block)} with {per_call} per call needs {elements * 4 / 2**30:.0f} GB per feature map "
                f"(at most {WINDOW_BUDGET * 4 / 2**30:.0f})")
    return None


def _mirror_axes_problem(v: Any) -> str | None:
    ok = isinstance(v, list) and len(set(v)) == len(v) and all(a in (0, 1, 2) and not isinstance(a, bool) for a in v)
    return None if ok else f"must be distinct axes 0, 1, 2, got {v!r}"


@dataclass
class Config:
    """Settings of DeepMedic; the defaults (narrower than the paper's 30-50 and 150 feature maps)
    learn in minutes on 2 CPU cores."""

    patch_size: int = field(default=30, metadata={"help": "edge of the block of voxels one training segment predicts (a multiple of 3, of 15 with subsample 3,5); the network reads 2 x 8 x the largest subsampling factor more of context (normal pathway: patch + 16)"})
    infer_block: int = field(default=45, metadata={"help": "edge of the block predicted per tile when segmenting (a multiple of 3)"})
    channels: int = field(default=8, metadata={"help": "feature maps of the first pathway layers (x4/3 for layers 3-6, x5/3 for 7-8; the paper: 30)"})
    low_channels: int = field(default=0, metadata={"help": "feature maps of the low-resolution pathways' first layers (0 = as channels, or twice that for small structures); their voxels are 3^3 and 5^3 times fewer, so width there is cheap context capacity"})
    small_structures: str = field(default="auto", metadata={"help": "on: low-resolution pathways twice as wide (unless low_channels is set) and the Dice taken over the step's segments together; auto: on when a training label holds under 15 mL (measured: +0.1 Dice on 1-5 mL organs; off for larger ones, where the 15 % fewer steps cost)"})
    fc_channels: int = field(default=32, metadata={"help": "feature maps of the two 1x1x1 'fully connected' layers (the paper: 150)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout before the last two 1x1x1 layers (the paper: 0.5)"})
    subsample: str = field(default="3,5", metadata={"help": "subsampling of the low-resolution pathways: 3,5 (a x3 and a x5 pathway: 85 voxels of context; blocks multiples of 15) or 3 (the paper's two pathways; blocks multiples of 3)"})
    sampling: str = field(default="classes", metadata={"help": "segment centres: classes (evenly over every label; measured better here) or posneg (half foreground, half background, as the paper)"})
    background: str = field(default="body", metadata={"help": "where background segment centres are drawn: body (inside the body, as the paper's ROI mask: the tissue a small block could mistake for a label) or all (air included)"})
    background_share: float = field(default=0.0, metadata={"help": "share of segment centres in the background with sampling=classes (0 = an even share among all classes; the paper: 0.5)"})
    affine_prob: float = field(default=0.0, metadata={"help": "chance of a small random rotation/scaling of a training segment"})
    mirror: str = field(default="auto", metadata={"help": "axes a training segment is mirrored along (and test-time flips): auto (left-right, unless a label lies on one side of the body), lr, all or none"})
    batch_size: int = field(default=2, metadata={"help": "segments per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (poly decay; the paper's 1e-3 measured better here than 3e-3)"})
    max_epochs: int = field(default=400, metadata={"help": "epochs at most"})
    iters_per_epoch: int = field(default=25, metadata={"help": "steps per epoch; validation after each"})
    val_every: int = field(default=2, metadata={"help": "validate every N epochs"})
    val_share: float = field(default=0.1, metadata={"help": "largest share of the training time validation may take"})
    minutes: float = field(default=10.0, metadata={"help": "wall-clock budget (0 = none); the best checkpoint is kept"})
    val_fraction: float = field(default=0.25, metadata={"help": "share of cases held out for validation Dice"})
    sw_batch_size: int = field(default=2, metadata={"help": "tiles per network call when segmenting"})
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
    STORED_EXTRA = {"mirror_axes": _mirror_axes_problem}
    # what a stored config without these settings was trained with (checkpoints from before them)
    LEGACY = {"subsample": "3", "small_structures": "off"}

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_config(self, BOUNDS)
        if self.mirror not in ("auto", "lr", "all", "none"):
            raise ValueError(f"mirror: must be one of auto, lr, all, none, got {self.mirror!r}")
        parse_factors(self.subsample)  # a malformed subsample names itself before a block does
        problem = self._block_problem((self.patch_size,) * 3, self.batch_size)
        if problem:
            raise ValueError(f"patch_size: {problem}")
        problem = self._block_problem((self.infer_block,) * 3, self.sw_batch_size)
        if problem:
            raise ValueError(f"infer_block: {problem}")

    def patch_problem(self, patch: tuple[int, ...]) -> str | None:
        """Why a stored training block (voxels per axis) does not suit this network, or None."""
        return self._block_problem(tuple(patch), self.batch_size)

    def _block_problem(self, block: tuple[int, ...], per_call: int) -> str | None:
        """:func:`check_block` for this config's network, ``per_call`` blocks per call."""
        return check_block(block, self.channels, self.fc_channels, per_call, parse_factors(self.subsample),
                           low_width(self, worst=True))

    @property
    def batch_dice(self) -> bool:
        """The training loop's Dice over the step's segments together (small structures: a class
        absent from most 30-voxel blocks then gets no per-block push towards predicting nothing)."""
        return self.small_structures == "on"


SMALL_ML = 15.0  # a label under this many mL (in any training case) makes small_structures="auto" on


def low_width(cfg: Any, worst: bool = False) -> int:
    """Feature maps of the low-resolution pathways' first layers for ``cfg``: ``low_channels`` if
    set, else twice ``channels`` for small structures, else ``channels``; ``worst``: "auto" as on
    (the memory check, before the data decides)."""
    explicit = int(getattr(cfg, "low_channels", 0) or 0)
    if explicit:
        return explicit
    mode = str(getattr(cfg, "small_structures", "off"))
    return 2 * int(cfg.channels) if mode == "on" or (worst and mode == "auto") else int(cfg.channels)


def label_volumes_ml(cases: Sequence[Any]) -> dict[int, float]:
    """Each label value's volume in mL, the smallest over the cases that hold it (their own grids)."""
    out: dict[int, float] = {}
    for case in cases:
        for v, ml in case.labels.volumes_ml().items():
            out[v] = min(out.get(v, math.inf), ml)
    return out


def resolve_small_structures(cfg: Any, cases: Sequence[Any]) -> Any:
    """``cfg`` with ``small_structures="auto"`` decided from the training labels: "on" when a
    label holds under :data:`SMALL_ML` mL (the phantom's gallbladder, adrenals, pancreas; MNI152's
    caudate, putamen, thalamus; the frog's organs: 1.5-10 mL), "off" otherwise (the phantom's
    liver, kidneys, spleen, bone: 29 mL and more; grey/white matter)."""
    if getattr(cfg, "small_structures", "off") != "auto":
        return cfg
    volumes = label_volumes_ml(cases)
    small = bool(volumes) and min(volumes.values()) < SMALL_ML
    return replace(cfg, small_structures="on" if small else "off")


def build_network(in_channels: int, n_classes: int, cfg: Any):
    """The multi-scale network of ``cfg``; it tiles inference by ``cfg.infer_block``."""
    from .network import DeepMedic

    net = DeepMedic(in_channels, n_classes, channels=int(cfg.channels), fc_channels=int(cfg.fc_channels),
                    low_channels=low_width(cfg),
                    dropout=float(cfg.dropout), factors=parse_factors(getattr(cfg, "subsample", "3")))
    net.infer_block = int(cfg.infer_block)
    return net


class DeepMedicPlugin(PatchSegmenterPlugin):
    """The plugin object (the contract: :mod:`viewer.plugins`; the machinery: ``plugins/_seg``)."""

    name = "deepmedic"
    description = ("DeepMedic: multi-scale 3D CNN (normal + x3 and x5 low-resolution pathways), dense training segments, "
                   "Dice + cross-entropy, tiled dense inference")
    Config = Config

    def build_network(self, in_channels: int, n_classes: int, config: Any):
        return build_network(in_channels, n_classes, config)

    def train(self, cases, config, progress, **kwargs):
        # "auto" is decided here, from the labels, so the checkpoint stores what was trained
        return super().train(cases, resolve_small_structures(config, cases), progress, **kwargs)

    def segment_function(self) -> Callable[..., Any]:
        from .infer import segment_tiles

        return segment_tiles


PLUGIN = DeepMedicPlugin()
