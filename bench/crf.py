"""Benchmark: a segmenter's labels with and without the 3D fully connected CRF, same model, same run.

    .venv/bin/python bench/crf.py [--sets phantom] [--model deepmedic] [--minutes 3]
    .venv/bin/python bench/crf.py --steps 500 --keep /tmp/crf --val-seeds 50 51  # a step budget
    .venv/bin/python bench/crf.py --checkpoint DIR --sets phantom     # reuse a trained model
    .venv/bin/python bench/crf.py --checkpoint DIR --variants "crf_smoothness_weight=0" "crf_appearance_weight=6"

One process with one torch thread (the machine is shared): the plugin trains with its default
Config for ``--minutes`` (wall clock) or ``--steps`` (the checkpoint kept in ``--keep DIR`` if
given), then each
test case (``bench/seg_peer.py``'s data sets, never trained on) is segmented by the plugin's
``predict`` with ``settings={"crf": False}`` and ``{"crf": True}`` (plus any ``--variants``, each
``field=value,...`` of CRF settings), with the Config's test-time flips. Dice per label is
``viewer.analysis.metrics.dice_per_label``; the seconds per case are wall and CPU of the whole
``predict`` call (the CRF's own cost is the difference). ``--val-seeds`` adds phantom cases
(other seeds) scored the same way, to choose CRF settings on cases other than the test cases.

Results: bench/results/crf[_TAG].json and .md.
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


def _parse_variant(spec: str) -> dict:
    out: dict = {"crf": True}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = int(value) if key.strip() == "crf_iterations" else float(value)
    return out


def _score(plugin, model, cases, settings: dict, values, tta: bool) -> dict:
    import numpy as np

    from viewer.analysis.metrics import dice_per_label
    from viewer.jobs.progress import Progress

    scores, wall, cpu = [], [], []
    for case in cases:
        w, c = time.monotonic(), time.process_time()
        pred, _ = plugin.predict(model, case.image, Progress(), tta=tta, settings=settings)
        wall.append(round(time.monotonic() - w, 2))
        cpu.append(round(time.process_time() - c, 2))
        scores.append(dice_per_label(np.asarray(pred.array), np.asarray(case.labels.array), values))
    per_label = {v: float(np.mean([s[v] for s in scores])) for v in values}
    return {"settings": settings, "dice_per_label": per_label, "dice_mean": float(np.mean(list(per_label.values()))),
            "dice_per_case": [float(np.mean([s[v] for v in values])) for s in scores],
            "seconds_wall": wall, "seconds_cpu": cpu}


def run_set(name: str, args) -> dict:
    import torch

    from bench.seg_peer import load_set
    from viewer.jobs.progress import Progress
    from viewer.plugins import get_plugin
    from viewer.samples.datasets import phantom_cases

    train, test = load_set(name)
    values = [lab.value for lab in train[0].labels.table]
    names = {lab.value: lab.name for lab in train[0].labels.table}
    plugin = get_plugin(args.model, "segmenter")
    t0 = time.monotonic()
    if args.checkpoint:
        model = plugin.load(args.checkpoint)
        trained = "loaded " + str(args.checkpoint)
    else:
        keep = Path(args.keep) / name if args.keep else Path(tempfile.mkdtemp(prefix="crf-bench-"))
        keep.mkdir(parents=True, exist_ok=True)
        cfg = plugin.Config(minutes=args.minutes)
        if args.steps:  # a step budget, not wall clock: the same model on a loaded machine
            cfg.minutes, cfg.max_epochs = 0, -(-args.steps // cfg.iters_per_epoch)
        model = plugin.train(train, cfg, Progress(), checkpoint_dir=keep)
        trained = (f"{args.steps} steps" if args.steps else f"{args.minutes} min") + \
            f", {model.metrics.get('steps')} steps, best val Dice {model.metrics.get('best_val_dice')}, kept in {keep}"
    train_s = time.monotonic() - t0
    tta = bool(model.config.get("tta", True))
    variants = [{"crf": False}, {"crf": True}] + [_parse_variant(v) for v in args.variants]
    res = {"set": name, "model": args.model, "trained": trained, "train_seconds": round(train_s, 1), "tta": tta,
           "threads": torch.get_num_threads(), "test": [], "validation": []}
    val = phantom_cases(len(args.val_seeds), first_seed=args.val_seeds[0]) if args.val_seeds and name == "phantom" else []
    for settings in variants:
        for split, cases in (("test", test), ("validation", val)):
            if cases:
                r = _score(plugin, model, cases, settings, values, tta)
                r["dice_per_label"] = {names[v]: round(d, 4) for v, d in r["dice_per_label"].items()}
                res[split].append(r)
                print(split, json.dumps(r), flush=True)
    return res


def table(results: list[dict]) -> str:
    rows = ["| data set | split | CRF | mean Dice | per label | s/case wall (CPU) |", "|---|---|---|---|---|---|"]
    for res in results:
        for split in ("test", "validation"):
            for r in res[split]:
                s = r["settings"]
                crf = "off" if not s.get("crf") else ("on (defaults)" if len(s) == 1 else
                                                      "on: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "crf"))
                per = ", ".join(f"{k} {v:.3f}" for k, v in r["dice_per_label"].items())
                w = sum(r["seconds_wall"]) / len(r["seconds_wall"])
                c = sum(r["seconds_cpu"]) / len(r["seconds_cpu"])
                rows.append(f"| {res['set']} | {split} | {crf} | **{r['dice_mean']:.3f}** | {per} | {w:.1f} ({c:.1f}) |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="phantom")
    ap.add_argument("--model", default="deepmedic")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=0, help="train for this many steps instead of --minutes")
    ap.add_argument("--checkpoint", help="a trained checkpoint to use instead of training")
    ap.add_argument("--keep", help="keep the trained checkpoint under DIR/SET")
    ap.add_argument("--variants", nargs="*", default=[], help="more CRF settings, each field=value,...")
    ap.add_argument("--val-seeds", type=int, nargs="*", default=[], help="phantom seeds scored as validation")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # another process shares the machine
    load = os.getloadavg()[0]
    results = [run_set(name, args) for name in args.sets.split(",")]
    out = ROOT / "bench" / "results" / f"crf{'_' + args.tag if args.tag else ''}"
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": round(load, 2),
            "loadavg_end": round(os.getloadavg()[0], 2), "command": " ".join(sys.argv)}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    out.with_suffix(".md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
