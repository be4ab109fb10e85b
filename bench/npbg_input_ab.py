"""NPBG frames with the U-Net's first input built in place (the drawing path) against the
concatenating path training uses, paired in one process: 500 k points at 256², the app's orbit.

    .venv/bin/python bench/npbg_input_ab.py [--threads 2] [--processes 3] [--pairs 6] [--frames 12]

Each process alternates the two paths ``--pairs`` times over the same ``--frames`` orbit frames
(the same numbers come out: tests/plugins/test_points_shading.py); fps per path, the median over
pairs, and the per-pair ratio. Frame rates on a 2-core VM swing from process to process (thread
placement), so the figure to read is the paired ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(threads: int, pairs: int, frames: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import npbg_fps

    from plugins._points.fit import render_points

    plugin, model = npbg_fps.make_model(500_000, 256, None)
    cams = npbg_fps.orbit(plugin, model, frames, 256)
    render_points(model, cams[0])
    fps: dict[str, list[float]] = {"in_place": [], "concatenated": []}
    for _ in range(pairs):
        for name in fps:
            model.net._slow_input = name == "concatenated"
            t = time.perf_counter()
            for c in cams:
                render_points(model, c)
            fps[name].append(len(cams) / (time.perf_counter() - t))
    ratios = [a / b for a, b in zip(fps["in_place"], fps["concatenated"])]
    return {k: round(float(np.median(v)), 2) for k, v in fps.items()} | {"ratio": round(float(np.median(ratios)), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.threads, args.pairs, args.frames)))
        return 0
    import os

    rows = []
    for _ in range(args.processes):
        out = subprocess.run([sys.executable, __file__, "--one", "--threads", str(args.threads), "--pairs",
                              str(args.pairs), "--frames", str(args.frames)], capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"threads": args.threads, "processes": rows, "load_avg": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
