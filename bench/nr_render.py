"""Benchmark: interactive rendering speed of a fitted renderer (rasterize + sample + network).

    .venv/bin/python bench/nr_render.py CKPT [CKPT ...] [--size 256] [--frames 60] [--runs 5]
                                        [--threads 2] [--device cpu|cuda]

Each checkpoint renders ``frames`` cameras of an orbit around its mesh (the same orbit
``main.py render --orbit`` uses) after 5 warm-up frames, one frame at a time as the learned view
does, ``runs`` times; reports the median over runs of each run's median milliseconds per frame
with the runs' spread (min..max), p90, frames per second, the share spent rasterizing and the
load average. ``--amp both`` draws each checkpoint in float32 and in mixed precision (bf16 on a CPU
with AMX), the two alternating run by run (``on``/``off``: one of them; default: as stored).
Results go to bench/results/nr_render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=("stored", "on", "off", "both"), default="stored",
                    help="the precision frames are drawn in (the checkpoint's config 'amp')")
    args = ap.parse_args()
    from viewer.model.camera import orbit_cameras
    from viewer.plugins import plugin_for_checkpoint

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    results = []
    for ck in args.checkpoints:
        plugin = plugin_for_checkpoint(ck, "renderer")
        model = plugin.load(ck, device=args.device)
        o = plugin.orbit(model)
        cams = orbit_cameras(args.frames, o.center, o.radius, args.size, elevation=o.elevation,
                             view_angle=o.view_angle, up=o.up)
        for c in cams[:5]:
            plugin.render(model, c)
        ras = model.rasterizer()
        variants = {"stored": [None], "on": [True], "off": [False], "both": [False, True]}[args.amp]
        stored = model.config.get("amp")
        run_meds = {v: [] for v in variants}
        p90s = {v: [] for v in variants}
        raster, load0 = [], os.getloadavg()[0]
        for _ in range(args.runs):
            for v in variants:
                model.config["amp"] = stored if v is None else v
                total = []
                for c in cams:
                    t = time.perf_counter()
                    plugin.render(model, c)
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    total.append(time.perf_counter() - t)
                run_meds[v].append(float(np.median(total)))
                p90s[v].append(float(np.percentile(total, 90)))
        model.config["amp"] = stored
        for c in cams[:20]:
            t = time.perf_counter()
            ras.rasterize(c)
            raster.append(time.perf_counter() - t)
        for v in variants:
            meds = run_meds[v]
            med = float(np.median(meds))
            res = {"plugin": plugin.name, "checkpoint": str(ck), "size": args.size, "device": args.device,
                   "amp": stored if v is None else v,
                   "threads": args.threads, "runs": args.runs, "frames": args.frames,
                   "median_ms": round(med * 1000, 1), "run_medians_ms": [round(x * 1000, 1) for x in meds],
                   "spread_ms": [round(min(meds) * 1000, 1), round(max(meds) * 1000, 1)],
                   "p90_ms": round(float(np.median(p90s[v])) * 1000, 1), "fps": round(1.0 / med, 1),
                   "fps_spread": [round(1.0 / max(meds), 1), round(1.0 / min(meds), 1)],
                   "rasterize_ms": round(float(np.median(raster)) * 1000, 1),
                   "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
                   "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"}
            results.append(res)
            print(json.dumps(res), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nr_render.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
