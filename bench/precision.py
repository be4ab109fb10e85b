"""Benchmark: a training step and a forward pass in float32 against mixed precision (bf16 autocast),
for the networks the app trains, on this machine's CPU, one torch thread, CPU seconds.

    .venv/bin/python bench/precision.py [--runs 5] [--steps 5] [--json F]

Networks: the segmentation U-Net (MONAI ``UNet`` 16-256, five levels, two residual units, as
``unet3d``'s default Config builds it; a step is 2 x 64³ patches, Dice + CE, AdamW), DeepMedic (the
default Config: x3 and x5 pathways, 2 segments of 30³ predicted voxels) and DNR's 2D U-Net (4 x 64²
crops, 20 input channels, L1, Adam). Each run times ``--steps`` steps of each precision in turn;
the medians of ``--runs`` runs are reported with their spread and ratio. ``viewer.plugins.precision``
says which precision the app picks on this CPU (bf16 only where AMX multiplies it natively).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def _unet3d():
    from monai.losses import DiceCELoss

    from plugins.unet3d import Config, build_network

    net = build_network(1, 4, Config())
    x, y = torch.randn(2, 1, 64, 64, 64), torch.randint(0, 4, (2, 1, 64, 64, 64))
    return net, x, lambda out: DiceCELoss(to_onehot_y=True, softmax=True)(out.float(), y)


def _deepmedic():
    from monai.losses import DiceCELoss

    from plugins.deepmedic import Config, build_network

    cfg = Config()
    net = build_network(1, 4, cfg)
    edge = cfg.patch_size + 2 * int(net.context)
    x, y = torch.randn(2, 1, edge, edge, edge), torch.randint(0, 4, (2, 1) + (cfg.patch_size,) * 3)
    return net, x, lambda out: DiceCELoss(to_onehot_y=True, softmax=True)(out.float(), y)


def _dnr_unet():
    from plugins._nr.networks import UNet2D
    from plugins.dnr.network import unet_channels

    net = UNet2D(20, 4, unet_channels(16, 5)).to(memory_format=torch.channels_last)
    x = torch.randn(4, 20, 64, 64).to(memory_format=torch.channels_last)
    return net, x, lambda out: out.float().abs().mean()


def time_steps(net, x, loss_fn, bf16: bool, steps: int) -> tuple[float, float]:
    """(CPU s per training step, CPU s per forward without gradients)."""
    opt = torch.optim.AdamW(net.parameters(), 1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = loss_fn(out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: oneDNN builds its kernels on first use
    t = time.process_time()
    for _ in range(steps):
        step()
    train = (time.process_time() - t) / steps
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)
        t = time.process_time()
        for _ in range(steps):
            net(x)
        infer = (time.process_time() - t) / steps
    return train, infer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from viewer.plugins.precision import precision_name

    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "app_picks": precision_name("cpu"),
           "runs": args.runs, "steps": args.steps, "threads": 1, "nets": {}}
    print(f"the app picks {res['app_picks']} on this CPU ({res['cpu_capability']})")
    for name, make in (("unet3d", _unet3d), ("deepmedic", _deepmedic), ("dnr_unet2d", _dnr_unet)):
        torch.manual_seed(0)
        net, x, loss_fn = make()
        rows = {"fp32": [], "bf16": []}
        for _ in range(args.runs):
            for kind in ("fp32", "bf16"):
                rows[kind].append(time_steps(net, x, loss_fn, kind == "bf16", args.steps))
        out = {}
        for kind, runs in rows.items():
            tr, inf = [r[0] for r in runs], [r[1] for r in runs]
            out[kind] = {"train_s": statistics.median(tr), "train_range": [min(tr), max(tr)],
                         "infer_s": statistics.median(inf), "infer_range": [min(inf), max(inf)]}
        out["train_speedup"] = out["fp32"]["train_s"] / out["bf16"]["train_s"]
        out["infer_speedup"] = out["fp32"]["infer_s"] / out["bf16"]["infer_s"]
        res["nets"][name] = out
        f, b = out["fp32"], out["bf16"]
        print(f"{name}: step {f['train_s'] * 1e3:.0f} ms ({f['train_range'][0] * 1e3:.0f}-{f['train_range'][1] * 1e3:.0f}) "
              f"-> {b['train_s'] * 1e3:.0f} ms ({b['train_range'][0] * 1e3:.0f}-{b['train_range'][1] * 1e3:.0f}), "
              f"{out['train_speedup']:.2f}x; forward {f['infer_s'] * 1e3:.0f} -> {b['infer_s'] * 1e3:.0f} ms, "
              f"{out['infer_speedup']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
