"""Benchmark: sampling a neural texture pyramid with one ``embedding_bag`` (what plugins/_nr does)
against ``grid_sample`` once per level (the usual way), forward + backward, CPU.

    .venv/bin/python bench/texture_sampling.py [--repeat 5] [--pixels 16384] [--size 512] [--threads 1]

Both sample the same 4-level, 16-channel Laplacian texture at the same random uv (a 128² crop's
worth of covered pixels by default) and back-propagate the same loss; tests/plugins checks that
the two give equal values. Prints the median and spread of ``--repeat`` timed rounds (each the
mean of 20 steps) and the ratio, with the load average, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
import torch.nn.functional as F

from plugins._nr.networks import LaplacianTexture


def _grid_levels(tex: LaplacianTexture) -> list[torch.Tensor]:
    return [tex.level(i).detach().clone().requires_grad_(True) for i in range(len(tex.sizes))]


def _grid_sample(levels: list[torch.Tensor], uv: torch.Tensor) -> torch.Tensor:
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], dim=1).view(1, -1, 1, 2)  # v up
    out = 0
    for lev in levels:
        out = out + F.grid_sample(lev[None], grid, align_corners=False, padding_mode="border")[0, :, :, 0].t()
    return out


def _time(step, n: int = 20) -> float:
    step()  # warm-up
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pixels", type=int, default=128 * 128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tex = LaplacianTexture(args.size, levels=4, channels=16, noise=0.1)
    levels = _grid_levels(tex)
    uv = torch.rand(args.pixels, 2)
    target = torch.rand(args.pixels, 16)

    def ours():
        tex.zero_grad(set_to_none=True)
        F.l1_loss(tex(uv), target).backward()

    def grid():
        for lev in levels:
            lev.grad = None
        F.l1_loss(_grid_sample(levels, uv), target).backward()

    with torch.no_grad():
        assert torch.allclose(tex(uv), _grid_sample(levels, uv), atol=1e-5)
    rows = {"embedding_bag": [], "grid_sample": []}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeat):  # alternating, so drift in the machine's load hits both
        rows["embedding_bag"].append(_time(ours))
        rows["grid_sample"].append(_time(grid))
    load.append(os.getloadavg()[0])
    med = {k: sorted(v)[len(v) // 2] for k, v in rows.items()}
    out = {"pixels": args.pixels, "size": args.size, "levels": 4, "channels": 16, "threads": args.threads,
           **{f"{k}_ms": {"median": round(med[k] * 1e3, 2), "min": round(min(v) * 1e3, 2), "max": round(max(v) * 1e3, 2)}
              for k, v in rows.items()},
           "ratio_grid_over_ours": round(med["grid_sample"] / med["embedding_bag"], 2),
           "load_avg": [round(x, 2) for x in load], "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
