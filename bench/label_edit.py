"""Benchmark: label editing on a 512×512×300 volume (issue: clinician workflow).

    .venv/bin/python bench/label_edit.py [--repeat 5]

Measures, median and spread over the runs:
- brush stroke to re-cut slice: one 5 mm disk dab applied through the undo history (what a
  mouse move does) plus the axial slice cut the view redraws (``extract_slice``), against the
  baseline of the slice cut alone;
- undo memory per stroke against the voxels it changed (bytes per changed voxel; uint8 labels);
- fill holes (slice-wise) and keep-largest on the whole volume.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from viewer.edit import EditHistory, brush_mask, fill_holes, keep_largest_component
    from viewer.model import LabelMap
    from viewer.model.labels import LabelTable
    from viewer.render.slicing import extract_slice

    shape = (512, 512, 300)
    aff = np.diag([0.7, 0.7, 1.25, 1.0])
    arr = np.zeros(shape, np.uint8)
    arr[150:350, 150:350, 100:200] = 1
    arr[240:260, 240:260, 140:160] = 0  # a hole
    arr[10:14, 10:14, 10:14] = 1  # an island
    labels = LabelMap(arr, aff, LabelTable.for_values([1, 2]))
    hist = EditHistory(labels)
    rng = np.random.default_rng(0)
    stroke_ms, cut_ms, bytes_per_voxel = [], [], []
    for _ in range(args.repeat):
        times, cuts = [], []
        before = hist.nbytes
        hist.begin_group()
        touched = 0
        start = np.array([rng.uniform(60, 200), rng.uniform(60, 300), 150 * 1.25])
        for k in range(40):  # one stroke: 40 dabs 1.5 mm apart (a drag), each followed by the slice cut
            c = start + np.array([1.5 * k, 0.4 * k, 0.0])
            t0 = time.perf_counter()
            mask, box = brush_mask(labels, c, 5.0, normal_ras=(0, 0, 1))
            ch = hist.apply(mask, 2, box)
            extract_slice(labels.array, labels.affine, "axial", c, labels=True)
            times.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            extract_slice(labels.array, labels.affine, "axial", c, labels=True)
            cuts.append((time.perf_counter() - t0) * 1000)
            touched += ch.n_voxels if ch else 0
        stroke = hist.end_group("paint")
        stroke_ms.append(statistics.median(times))
        cut_ms.append(statistics.median(cuts))
        bytes_per_voxel.append((hist.nbytes - before) / max(stroke.n_voxels if stroke else 1, 1))
    t0 = time.perf_counter()
    m, _ = fill_holes(labels, 1, axis=2)
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    m2, _ = keep_largest_component(labels, 1)
    largest_s = time.perf_counter() - t0

    def spread(v):
        return {"median": round(statistics.median(v), 3), "min": round(min(v), 3), "max": round(max(v), 3)}

    res = {"shape": shape, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "load_avg": os.getloadavg(), "runs": args.repeat,
           "dab_plus_slice_ms": spread(stroke_ms), "slice_cut_alone_ms": spread(cut_ms),
           "ratio_dab_plus_slice_vs_cut": round(statistics.median(stroke_ms) / statistics.median(cut_ms), 2),
           "undo_bytes_per_changed_voxel": spread(bytes_per_voxel),
           "fill_holes_slicewise_s": round(fill_s, 3), "fill_holes_voxels": int(m.sum()),
           "keep_largest_s": round(largest_s, 3), "keep_largest_removed": int(m2.sum()),
           "volume_bytes": int(arr.nbytes)}
    out = ROOT / "bench" / "results" / "label_edit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
