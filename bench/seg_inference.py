"""Benchmark: our sliding-window segmentation vs calling MONAI's sliding_window_inference directly.

    .venv/bin/python bench/seg_inference.py [--repeat 5] [--device cpu|cuda] [--shape 256 256 108] [--json F]

Same network (3D U-Net, default config, untrained: timing does not depend on the weights), same
patch, overlap, sw_batch_size, on the same CT-like 256×256×108 volume, alternating in one
process. "Ours" is the whole plugin call `predict` without test-time augmentation: canonical
orientation, normalisation, sliding windows, argmax, back to the source grid, LabelMap.
"MONAI" is `sliding_window_inference(x, roi, sw_batch_size, net, overlap, mode="gaussian")` on
the already-normalised tensor. Both in float32 (the overhead of our pipeline); where the device
has native mixed precision (bf16 on CPUs with AMX, fp16 on CUDA), "ours, mixed precision" is the
same call as shipped (Config ``amp``, on by default), timed in the same alternation. Also
reports peak memory of a memory-safe run on a 512×512×300 CT (``--big``), in a fresh process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def make_model(device: str, n_classes: int = 5):
    from plugins._seg.checkpoint import SegModel
    from plugins.unet3d import Config, build_network

    cfg = Config(device=device)
    torch.manual_seed(0)
    net = build_network(1, n_classes, cfg).to(device).eval()
    labels = [{"value": i, "name": f"organ {i}", "color": [1, 0, 0]} for i in range(1, n_classes)]
    return SegModel(net=net, plugin="unet3d", config=vars(cfg), labels=labels,
                    normalisation={"mode": "ct", "clip_low": -1000, "clip_high": 1500, "mean": 0, "std": 500},
                    spacing=(0.8, 0.8, 2.0), patch=(cfg.patch_size,) * 3, device=device)


def ct_volume(shape):
    from bench.load_first_slice import make_ct
    from viewer.model import Volume

    return Volume(make_ct(shape), np.diag([0.8, 0.8, 2.0, 1.0]), modality="CT", name="ct")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", type=int, nargs=3, default=[256, 256, 108])
    ap.add_argument("--big", action="store_true", help="also the 512x512x300 peak-memory run")
    ap.add_argument("--json")
    ap.add_argument("--threads", type=int, help="torch threads (default: all cores on the CPU)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed seconds; cpu: this process's CPU seconds (with --threads 1, the work "
                         "each side does, whatever else runs on a shared machine)")
    args = ap.parse_args()
    from monai.inferers import sliding_window_inference

    from plugins._seg.predict import predict_volume
    from plugins._seg.preprocess import Normalisation
    from viewer.jobs.progress import Progress

    torch.set_num_threads(args.threads or (os.cpu_count() if args.device == "cpu" else torch.get_num_threads()))
    timer = time.process_time if args.clock == "cpu" else time.perf_counter
    model = make_model(args.device)
    vol = ct_volume(tuple(args.shape))
    roi = model.patch
    ov, swb = model.config["overlap"], model.config["sw_batch_size"]
    x = torch.from_numpy(Normalisation(**model.normalisation)(vol.array))[None, None]

    from viewer.plugins.precision import autocast_dtype, precision_name

    amp_dtype = autocast_dtype(args.device, True)
    fp32_model = dataclasses.replace(model, config={**model.config, "amp": False})

    def ours(m=fp32_model):
        t = timer()
        predict_volume(m, vol, Progress(), tta=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return timer() - t

    def monai():
        t = timer()
        with torch.inference_mode():
            out = sliding_window_inference(x, roi, swb, model.net, overlap=ov, mode="gaussian",
                                           sw_device=args.device, device="cpu")
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        del out
        return timer() - t

    ours(), monai()  # warm-up: first calls are several times slower
    if amp_dtype is not None:
        ours(model)
    a, b, c = [], [], []
    for _ in range(args.repeat):
        b.append(monai())
        a.append(ours())
        if amp_dtype is not None:
            c.append(ours(model))
    ratios = [x / y for x, y in zip(a, b)]  # each run against the MONAI run just before it
    res = {"device": args.device, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "shape": args.shape, "roi": list(roi), "overlap": ov, "sw_batch_size": swb,
           "levels": model.config["levels"], "repeat": args.repeat, "loadavg": list(os.getloadavg()),
           "threads": torch.get_num_threads(), "clock": args.clock,
           "ours_s": statistics.median(a), "monai_s": statistics.median(b), "ours_runs_s": a, "monai_runs_s": b,
           "ratio_runs": ratios, "ratio_min": min(ratios), "ratio_max": max(ratios)}
    res["ratio"] = res["ours_s"] / res["monai_s"]
    if c:
        res.update({"amp_dtype": precision_name(args.device), "ours_amp_s": statistics.median(c),
                    "ours_amp_runs_s": c, "amp_ratio": statistics.median(c) / res["monai_s"]})
    if args.device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name()
    print(f"{args.device}: ours {res['ours_s']:.2f} s/volume (runs {min(a):.2f}-{max(a):.2f}), MONAI direct "
          f"{res['monai_s']:.2f} s ({min(b):.2f}-{max(b):.2f}); ratio of medians {res['ratio']:.3f}, "
          f"pairwise {res['ratio_min']:.3f}-{res['ratio_max']:.3f} over {args.repeat} runs")
    if c:
        print(f"ours with mixed precision ({res['amp_dtype']}, as shipped): {res['ours_amp_s']:.2f} s "
              f"({min(c):.2f}-{max(c):.2f}); {res['amp_ratio']:.3f} x MONAI direct in float32")
    if args.big:
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.seg_inference import *; "
                "from plugins._seg.predict import predict_volume; from viewer.jobs.progress import Progress; "
                "import resource, time; m = make_model('cpu'); v = ct_volume((512, 512, 300)); t = time.time(); "
                "lab, unc = predict_volume(m, v, Progress(), tta=False); "
                "hwm = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
                "print(time.time() - t, hwm / 2**20)")  # VmHWM: this process's own peak RSS
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        secs, gib = (float(v) for v in out.stdout.split()[-2:])
        res["big_512x512x300"] = {"seconds": secs, "peak_rss_gib": gib}
        print(f"512x512x300: {secs:.0f} s, peak RSS {gib:.2f} GiB (whole process)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
