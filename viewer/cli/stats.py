"""Segmentation statistics: ``stats`` (train-segmenter and segment live in cli_train.py)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable

from ..model.errors import LoadError

__all__ = ["add_parsers", "HANDLERS"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub) -> None:
    """Add the segmentation sub-commands to ``main.py``'s parser."""
    _add_stats_parser(sub)


# stats ---------------------------------------------------------------------------------------
def _add_stats_parser(sub) -> None:
    s = sub.add_parser(
        "stats", help="per-label voxels and volume of a mask, with Dice and HD95 against a reference",
        description="Print one JSON object keyed by label value: name, voxels, volume_ml and, with "
                    "--reference, dice and hd95_mm (95th-percentile Hausdorff distance in mm, the "
                    "larger of the two directed percentiles, as MONAI computes it; null when the "
                    "label is in only one of the two).")
    s.add_argument("--mask", required=True, metavar="MASK", help="label volume to measure")
    s.add_argument("--reference", metavar="REF", help="ground-truth label volume on the same grid")
    s.add_argument("--labels", metavar="FILE",
                   help="label names: an ITK-SNAP label description or a 3D Slicer colour table "
                        "(default: MASK.txt / MASK.ctbl beside the mask, when there is one)")


def _json_number(x: Any) -> Any:
    """JSON has no inf/nan: a distance that does not exist is written as null."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _cmd_stats(args: argparse.Namespace) -> int:
    from ..io import load_path
    from ..analysis.metrics import check_same_grid, label_stats

    from ..io.labelfiles import read_label_file

    named = read_label_file(args.labels) if args.labels else None  # a bad file fails before any volume loads
    mask = load_path(args.mask, as_labels=True)
    if named is not None:
        for lab in named:
            if lab.value in mask.table:
                mask.table[lab.value].name = lab.name
    reference = load_path(args.reference, as_labels=True) if args.reference else None
    if reference is not None:
        try:
            check_same_grid(mask, reference)
        except ValueError as exc:  # blame the reference: the mask is what is being measured
            raise LoadError(args.reference, str(exc)) from None
    stats = label_stats(mask, reference)
    out = {v: {k: _json_number(x) for k, x in row.items()} for v, row in stats.items()}
    print(json.dumps(out, allow_nan=False))
    return 0


HANDLERS["stats"] = _cmd_stats
