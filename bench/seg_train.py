"""Benchmark: what the 3D U-Net learns in a fixed CPU budget.

    .venv/bin/python bench/seg_train.py phantom [--minutes 10] [--device cpu]
    .venv/bin/python bench/seg_train.py mni     [--minutes 10] [--device cpu]

phantom: train on 4 generated CT phantoms (seeds 0-3), test on 2 unseen ones (seeds 100, 101):
         mean Dice over the organ labels (target ≥ 0.90 in ≤ 10 min on 2 CPU cores).
mni:     the MNI152 T1 that nilearn ships, grey/white matter from its probability maps; train on
         the left hemisphere, test on the right (target Dice ≥ 0.85 for both in ≤ 10 min CPU).
The test prediction is the app's own `predict` (flip test-time augmentation on), the Dice the
app's own metric (MONAI). Results go to stdout and bench/results/seg_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=("phantom", "mni"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--patch", type=int)
    ap.add_argument("--out", help="keep the checkpoint here")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a Config field, e.g. --set sampling=classes --set affine_prob=0.3")
    args = ap.parse_args()

    import numpy as np
    import torch

    from viewer.samples.datasets import mni152_case, phantom_cases, split_left_right
    from viewer.jobs.progress import TerminalProgress
    from viewer.analysis.metrics import dice_per_label
    from viewer.cli.common import parse_setting
    from viewer.plugins import get_plugin

    plugin = get_plugin("unet3d", "segmenter")
    cfg = plugin.Config(minutes=args.minutes, device=args.device)
    for item in args.set:
        setattr(cfg, *parse_setting(cfg, item, "the unet3d segmenter"))
    if args.patch:
        cfg.patch_size = args.patch
    if args.task == "phantom":
        train, test = phantom_cases(4, first_seed=0), phantom_cases(2, first_seed=100)
    else:
        left, right = split_left_right(mni152_case())
        train, test = [left], [right]
        cfg.val_fraction = 0.0
    ckpt = args.out or tempfile.mkdtemp(prefix="lucid3d-bench-")
    t0 = time.monotonic()
    progress = TerminalProgress(f"training on {args.task}")
    model = plugin.train(train, cfg, progress, checkpoint_dir=ckpt)
    progress.close()
    train_s = time.monotonic() - t0
    model = plugin.load(ckpt, device=args.device)
    per_case, infer_s = [], []
    for case in test:
        t = time.monotonic()
        pred, _ = plugin.predict(model, case.image, TerminalProgress("testing", disable=True),
                                 tta=bool(model.config.get("tta", True)))
        infer_s.append(time.monotonic() - t)
        values = [lab.value for lab in case.labels.table]
        d = dice_per_label(np.asarray(pred.array), np.asarray(case.labels.array), values)
        per_case.append({case.labels.table[v].name: float(d[v]) for v in values})
    names = list(per_case[0])
    mean_per_label = {n: float(np.mean([c[n] for c in per_case])) for n in names}
    res = {
        "task": args.task, "device": args.device,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "minutes_budget": args.minutes, "train_seconds": round(train_s, 1),
        "steps": model.metrics.get("steps"), "epochs": model.metrics.get("epochs"),
        "best_val_dice": model.metrics.get("best_val_dice"), "validation": model.metrics.get("validation"),
        "validation_seconds": model.metrics.get("validation_seconds"), "mirror_axes": model.config.get("mirror_axes"),
        "test_dice_per_label": mean_per_label, "test_dice_mean": float(np.mean(list(mean_per_label.values()))),
        "test_cases": [c.name for c in test], "per_case": per_case,
        "inference_seconds_per_volume": float(np.mean(infer_s)), "config": vars(cfg),
    }
    print(json.dumps({k: res[k] for k in ("task", "train_seconds", "steps", "test_dice_per_label",
                                         "test_dice_mean", "inference_seconds_per_volume")}, indent=1))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"seg_{args.task}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
