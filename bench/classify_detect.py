"""Benchmark: lesion classification and detection on CT crops, each beside a simple baseline in
the same run.

    .venv/bin/python bench/classify_detect.py [--train 24] [--test 16] [--minutes-classifier 6]
                                              [--minutes-detector 8] [--sides classifier,detector,labels]
                                              [--sets test,holdout] [--repeats 1]

Data (viewer/samples/lesions.py, built here): 32^3 crops at 1.5 mm of varied-anatomy CT phantoms,
each cut around a site deep in the liver, spleen or a kidney, half with one lesion there (a sphere
of 3-6 mm radius, +25-45 HU over the organ, a partial-volume edge, under the phantom's 15 HU
noise). Training crops from patients 0..N-1; two test sets of other anatomy: ``test`` (patients
50000..), the one settings were chosen on, and ``holdout`` (patients 90000..), held aside: never
looked at while choosing defaults, reported beside it. The training files and their cases.json are
written and read back through the manifest reader, as a user's would be. ``--repeats N`` trains
each side N times (seeds 0..N-1) and reports the median of each figure.

Sides (one torch thread each, one after another; the budget is the process's CPU time, so that
other load on the machine does not shrink it):
* classifier: ``heatmap3d`` trained on the boxed manifest for ``--minutes-classifier``;
  ROC AUC of P(lesion), pointing game (its saliency map's maximum within a lesion: the lesion's
  radius + 1.5 mm of its centre), and its heat map's sensitivity at 1 false positive per volume.
* detector: ``heatmap3d-detector`` for ``--minutes-detector``: sensitivity at 1 FP/volume (a
  detection is a hit when its box's centre lies within the lesion's radius + 1.5 mm of its centre;
  one hit per lesion, every other detection a false positive), and the AUC of its top score.
* labels: ``heatmap3d`` on the same manifest without boxes (labels alone), ``--minutes-classifier``.
* densenet: ``densenet3d`` (MONAI DenseNet121, small width, labels alone; Grad-CAM saliency),
  ``--minutes-classifier``.
* baseline (always, costs seconds): the difference of the image from its smoothed self (the
  image smoothed by a Gaussian of sigma 1 voxel, less its 9^3 median: 13.5 mm, twice a large
  lesion's diameter), where that median is soft tissue (20..110 HU) and no bone (> 200 HU) lies
  within 3 voxels, 2 voxels from the crop's faces; crop score = its maximum, pointing = where
  that maximum is, detections = its connected components above 5 HU scored by their maximum.

Results: bench/results/classify_detect.json and a markdown table on stdout.
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

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIT_MARGIN_MM = 1.5


def _ras(volume, ijk) -> np.ndarray:
    return volume.affine[:3, :3] @ np.asarray(ijk, float) + volume.affine[:3, 3]


def _hit(volume, ras, crop) -> int | None:
    """Index of the lesion ``ras`` lies in (radius + margin), or None."""
    for k, (c, r) in enumerate(zip(crop.centers, crop.radii)):
        if np.linalg.norm(np.asarray(ras) - np.asarray(c)) <= r + HIT_MARGIN_MM:
            return k
    return None


def sensitivity_at_fp(detections: list[list[tuple[float, np.ndarray]]], crops, fp_per_volume: float = 1.0) -> float:
    """FROC point: the largest share of lesions found while false positives per volume stay at
    most ``fp_per_volume``. ``detections[v]``: (score, centre RAS) of volume v."""
    events = []  # (score, volume, lesion index or None)
    for v, (dets, crop) in enumerate(zip(detections, crops)):
        for score, centre in dets:
            events.append((score, v, _hit(crop.volume, centre, crop)))
    n_lesions = sum(len(c.centers) for c in crops)
    best, found, fps = 0.0, set(), 0
    for score, v, k in sorted(events, key=lambda e: -e[0]):
        if k is None or (v, k) in found:
            fps += 1  # a second hit on a found lesion counts as a false positive (FROC convention)
        else:
            found.add((v, k))
        if fps / len(crops) <= fp_per_volume:
            best = max(best, len(found) / max(n_lesions, 1))
    return best


def baseline(volume) -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
    """(difference map, detections) of the threshold-on-difference-from-smoothed baseline."""
    img = np.asarray(volume.array, np.float32)
    fine = ndimage.gaussian_filter(img, 1.0)
    # a median keeps organ edges where they are (a Gaussian would leave them in the difference)
    # and removes blobs under half its width: the lesions
    background = ndimage.median_filter(fine, size=9)
    diff = fine - background
    # soft tissue around, and no bone near: a lesion lies in an organ, not on a rib
    near_bone = ndimage.binary_dilation(img > 200, iterations=3)
    diff[(background < 20) | (background > 110) | near_bone] = 0.0
    edge = np.ones(diff.shape, bool)  # the filters' edge effects: 2 voxels at the crop's faces
    edge[2:-2, 2:-2, 2:-2] = False
    diff[edge] = 0.0
    comps, n = ndimage.label(diff > 5.0)
    dets = []
    for k, sl in enumerate(ndimage.find_objects(comps), start=1):
        sub = np.where(comps[sl] == k, diff[sl], -np.inf)
        at = np.unravel_index(np.argmax(sub), sub.shape)
        ijk = [a + s.start for a, s in zip(at, sl)]
        dets.append((float(diff[tuple(ijk)]), _ras(volume, ijk)))
    return diff, dets


def auc(scores, positive) -> float:
    from plugins.heatmap3d.train import roc_auc

    return roc_auc(scores, positive)


def evaluate_map(maps, scores, crops, dets) -> dict:
    positive = [bool(c.centers) for c in crops]
    pointed = [_hit(c.volume, _ras(c.volume, np.unravel_index(np.argmax(m), m.shape)), c) is not None
               for m, c in zip(maps, crops) if c.centers]
    return {"roc_auc": auc(scores, positive), "pointing": f"{sum(pointed)}/{len(pointed)}",
            "pointing_share": sum(pointed) / max(len(pointed), 1),
            "sensitivity_at_1fp": sensitivity_at_fp(dets, crops)}


def _train(name: str, kind: str, manifest: Path, minutes: float, boxes: bool, seed: int) -> tuple[object, object, float]:
    from viewer.cli.lesions import load_image_cases
    from viewer.jobs.progress import Progress
    from viewer.plugins import get_plugin

    plugin = get_plugin(name, kind)
    cases, sources = load_image_cases(manifest, need_boxes=kind == "detector")
    if not boxes:
        for c in cases:
            c.boxes = None
    cfg = plugin.Config(minutes=minutes, seed=seed)
    t = time.process_time()
    model = plugin.train(cases, cfg, Progress(), sources=sources)
    return plugin, model, time.process_time() - t


def _heat_dets(plugin, model, volume) -> list[tuple[float, np.ndarray]]:
    """Detections of a heat-map model: the centres of its boxes with their scores (min score 0)."""
    from plugins.heatmap3d.infer import boxes_from_heat, heat_map

    p, heat = heat_map(model, volume)
    return [(d["score"], (np.asarray(d["box"][:3]) + np.asarray(d["box"][3:])) / 2)
            for d in boxes_from_heat(heat, p.affine, 0.0, float(model.config.get("threshold", 0.5)))]


def _evaluate(plugin, model, kind: str, boxes: bool, test: list) -> dict:
    """One trained model's figures on one set of crops."""
    if kind == "classifier":
        probs = [plugin.classify(model, c.volume)["probabilities"] for c in test]
        maps = [np.asarray(plugin.saliency(model, c.volume).array) for c in test]
        side_dets = [_heat_dets(plugin, model, c.volume) for c in test] if boxes else [[] for _ in test]
        row = evaluate_map(maps, [p["lesion"] for p in probs], test, side_dets)
        if not boxes:
            row["sensitivity_at_1fp"] = None  # no boxes: no detections to count
        return row
    side_dets = [[(d["score"], (np.asarray(d["box"][:3]) + np.asarray(d["box"][3:])) / 2)
                  for d in plugin.detect(model, c.volume, 0.0)] for c in test]
    top = [max([s for s, _ in d], default=0.0) for d in side_dets]
    return {"roc_auc": auc(top, [bool(c.centers) for c in test]), "sensitivity_at_1fp": sensitivity_at_fp(side_dets, test)}


def _median(rows: list[dict]) -> dict:
    """The median of each figure over repeats (the pointing count of the median share)."""
    out = dict(rows[0])
    for key in ("roc_auc", "pointing_share", "sensitivity_at_1fp", "train_cpu_s", "steps", "infer_cpu_s_per_case"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            out[key] = float(np.median(vals))
    if "pointing" in out:
        n = int(str(rows[0]["pointing"]).split("/")[1])
        out["pointing"] = f"{out['pointing_share'] * n:g}/{n}"
    if len(rows) > 1:
        out["repeats"] = [{k: r.get(k) for k in ("seed", "roc_auc", "pointing", "sensitivity_at_1fp")} for r in rows]
    return out


SIDES = {  # side -> (plugin, kind, boxes given)
    "classifier": ("heatmap3d", "classifier", True),
    "detector": ("heatmap3d-detector", "detector", True),
    "labels": ("heatmap3d", "classifier", False),
    "densenet": ("densenet3d", "classifier", False),
}


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=24)
    ap.add_argument("--test", type=int, default=16)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--minutes-classifier", type=float, default=6.0)
    ap.add_argument("--minutes-detector", type=float, default=8.0)
    ap.add_argument("--sides", default="classifier,detector")
    ap.add_argument("--sets", default="test,holdout", help="test sets: test (patients 50000..), holdout (90000..)")
    ap.add_argument("--repeats", type=int, default=1, help="trainings per side (seeds 0..N-1); figures are their median")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "classify_detect.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from viewer.plugins import training

    training.CLOCK = time.process_time  # the budget buys the same work whatever else runs
    from viewer.samples.lesions import HOLDOUT_SEED, TEST_SEED, TRAIN_SEED, lesion_crops, write_lesion_set

    work = Path(tempfile.mkdtemp(prefix="bench-lesions-"))
    manifest = write_lesion_set(work / "train", args.train, TRAIN_SEED, crop=args.crop)
    first = {"test": TEST_SEED, "holdout": HOLDOUT_SEED}
    sets = {name: lesion_crops(args.test, first[name], crop=args.crop) for name in args.sets.split(",") if name}
    results: dict = {"machine": platform.platform(), "python": platform.python_version(),
                     "torch": torch.__version__, "threads": 1, "budget_clock": "process CPU time",
                     "train_cases": args.train, "test_cases": args.test, "crop": args.crop, "repeats": args.repeats,
                     "sets": {name: f"patients {first[name]}..{first[name] + args.test - 1}" for name in sets},
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_at_start": _load(), "sides": {}}

    def write() -> None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))

    results["sides"]["baseline"] = {}
    for name, test in sets.items():
        maps, dets = zip(*(baseline(c.volume) for c in test))
        results["sides"]["baseline"][name] = evaluate_map(list(maps), [float(m.max()) for m in maps], test, list(dets))
        print("baseline", name, json.dumps(results["sides"]["baseline"][name]), flush=True)

    for side in [s for s in args.sides.split(",") if s]:
        name, kind, boxes = SIDES[side]
        minutes = args.minutes_classifier if kind == "classifier" else args.minutes_detector
        rows: dict[str, list[dict]] = {k: [] for k in sets}
        for seed in range(args.repeats):
            plugin, model, cpu = _train(name, kind, manifest, minutes, boxes, seed)
            for set_name, test in sets.items():
                t = time.process_time()
                row = _evaluate(plugin, model, kind, boxes, test)
                row.update(seed=seed, minutes=minutes, train_cpu_s=round(cpu, 1), steps=model.metrics.get("steps"),
                           mode=model.mode, infer_cpu_s_per_case=round((time.process_time() - t) / len(test), 3))
                rows[set_name].append(row)
                print(side, set_name, json.dumps(row), flush=True)
        results["sides"][side] = {k: _median(v) for k, v in rows.items()}
        write()
    results["load_at_end"] = _load()
    write()
    print(f"\nload average (1, 5, 15 min): {results['load_at_start']} at start, {results['load_at_end']} at end")
    print("\n| side | set | ROC AUC | pointing | sensitivity at 1 FP/volume | training |")
    print("|---|---|---|---|---|---|")
    for side, by_set in results["sides"].items():
        for set_name, r in by_set.items():
            sens = r.get("sensitivity_at_1fp")
            train = f"{r['minutes']:g} CPU min, {r['steps']:g} steps" if "minutes" in r else "-"
            if args.repeats > 1 and "minutes" in r:
                train += f", median of {args.repeats}"
            print(f"| {side} | {set_name} | {r['roc_auc']:.2f} | {r.get('pointing', '-')} | "
                  f"{'-' if sens is None else f'{sens:.2f}'} | {train} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
