"""Benchmark: NPBG (plugins/npbg) beside DNR fitted on the true mesh, NPBG++ with no per-scene
fitting, the splatting speed and the frame rate of a point renderer, in one run.

    .venv/bin/python bench/npbg_peer.py [--minutes 5] [--size 128] [--views 180] [--points 200000]
                                        [--threads 2] [--skip-fits] [--jobs dnr npbg npbgpp]
                                        [--pretrained DIR ...] [--no-speed]

* Capture: pyvista's globe (``main.py capture``: procedural texture, specular 0.5, world-fixed
  lights, 180 views = 150 train / 30 test, ``points.ply`` sampled from the surface).
* ``dnr`` on the capture's ``mesh.obj`` and ``npbg`` on its ``points.ply``, ``--minutes`` each;
  ``npbgpp --minutes 0`` with the shipped pretrained model (which never saw the globe), its
  wall-clock time to a written checkpoint; ``--pretrained DIR`` adds NPBG++ with other weights
  (``npbgpp@DIR``). Each scored on the test split as ``main.py evaluate``
  scores it (8-bit renders). The fits run one after the other in this process, the CLI's way.
* Splatting: points per second of :func:`plugins._points.splat.splat` at 1 M points into 256²
  (five scales), and an exact check of its winners against a numpy lexsort reference.
* Frame rate at 256² for 500 k points: splat + the default NPBG network (untrained: the cost does
  not depend on the weights), median of 10 frames (`bench/npbg_fps.py`: the app's orbit, runs and spread,
  the split into splat and network, beside the previous renderer).

Results go to ``bench/results/npbg_peer.json`` and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _reference_winners(u, v, z, keep, sizes):
    """Per scale, the nearest point per pixel by numpy lexsort (ties: lower id)."""
    import numpy as np

    ids = np.flatnonzero(keep)
    x, y = np.floor(u[ids]).astype(np.int64), np.floor(v[ids]).astype(np.int64)
    out = []
    for s, (h, w) in enumerate(sizes):
        pix = (y >> s) * w + (x >> s)
        order = np.lexsort((ids, z[ids], pix))
        first = np.r_[True, pix[order][1:] != pix[order][:-1]]
        img = np.full(h * w, -1, np.int64)
        img[pix[order][first]] = ids[order][first]
        out.append(img.reshape(h, w))
    return out


def splat_speed(n: int = 1_000_000, size: int = 256) -> dict:
    import numpy as np
    import torch

    from plugins._points.splat import PointSet, project, raster_sizes, splat, zbuffer
    from viewer.model.camera import Camera, look_at

    rng = np.random.default_rng(0)
    pts = PointSet.from_numpy(rng.normal(size=(n, 3)))
    cam = Camera(size * 1.2, size * 1.2, size / 2, size / 2, size, size,
                 look_at(np.array([0.0, -4.0, 1.0]), np.zeros(3)))
    splat(pts, cam)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        splat(pts, cam)
        times.append(time.perf_counter() - t)
    proj = project(pts, cam)
    got = zbuffer(proj)
    want = _reference_winners(proj.u.numpy(), proj.v.numpy(), proj.z.numpy(), proj.keep.numpy(),
                              raster_sizes(size, size))
    exact = all(np.array_equal(g.numpy(), w) for g, w in zip(got, want))
    dt = float(np.median(times))
    return {"points": n, "size": size, "seconds": round(dt, 4), "points_per_second": round(n / dt),
            "in_view": int(proj.keep.sum()), "matches_reference": exact, "threads": torch.get_num_threads()}


def frame_rate(n: int = 500_000, size: int = 256) -> dict:
    import numpy as np
    import torch

    from plugins._nr.model import NRModel
    from plugins._points.fit import render_points
    from viewer.model.camera import Camera, look_at
    from viewer.model.geometry import PointCloud
    from viewer.plugins import get_plugin
    from dataclasses import asdict

    plugin = get_plugin("npbg", "renderer")
    cfg = asdict(plugin.Config())
    rng = np.random.default_rng(1)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    # the unit sphere's normals are its points (what a fit estimates; the shading's cost depends on them)
    net = plugin.build(cfg, {"n_points": n, "normals": torch.from_numpy(p.astype(np.float32))})
    net = net.eval().to(memory_format=torch.channels_last)
    model = NRModel(net=net, plugin="npbg", config=cfg, mesh=None, points=PointCloud(p))
    cams = [Camera(size * 1.2, size * 1.2, size / 2, size / 2, size, size,
                   look_at(np.array([4 * np.cos(a), 4 * np.sin(a), 1.0]), np.zeros(3))) for a in np.linspace(0, 6, 11)]
    render_points(model, cams[0])
    times = []
    for c in cams[1:]:
        t = time.perf_counter()
        render_points(model, c)
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))
    return {"points": n, "size": size, "seconds_per_frame": round(dt, 4), "fps": round(1 / dt, 2),
            "threads": torch.get_num_threads()}


def fits(minutes: float, size: int, views: int, points: int, work: Path, only: Sequence[str],
         pretrained: Sequence[str] = ()) -> dict:
    import pyvista.examples

    from viewer.analysis.images import evaluate_views
    from viewer.compute.photoset import capture_dataset
    from viewer.io import load_path
    from viewer.io.photosets import load_viewset
    from viewer.jobs.progress import Progress
    from viewer.plugins import get_plugin

    scene = work / "globe"
    globe = Path(pyvista.examples.__file__).parent / "globe.vtk"
    capture_dataset(str(globe), str(scene), views=views, size=size, test_fraction=1 / 6, seed=3, points=points)
    vs = load_viewset(scene)
    test = vs.split("test")
    out = {"capture": {"views": views, "train": len(vs.split("train")), "test": len(test), "size": size,
                       "points": points}}
    jobs = [("dnr", load_path(scene / "mesh.obj"), {"minutes": minutes}),
            ("npbg", load_path(scene / "points.ply"), {"minutes": minutes}),
            ("npbgpp", load_path(scene / "points.ply"), {"minutes": 0.0})]
    jobs = [j for j in jobs if j[0] in only]
    # NPBG++ with other pretrained weights, each scored as ``npbgpp@FOLDER``
    jobs += [(f"npbgpp@{p}", load_path(scene / "points.ply"), {"minutes": 0.0, "pretrained": str(p)})
             for p in pretrained]
    for label, geo, settings in jobs:
        name = label.split("@")[0]
        plugin = get_plugin(name, "renderer")
        cfg = plugin.Config(**settings, size=size)
        t = time.perf_counter()
        ck = work / f"ck-{len(out)}"
        model = plugin.fit(vs, geo, cfg, Progress(), checkpoint_dir=ck)
        seconds = time.perf_counter() - t
        score = evaluate_views(plugin, plugin.load(ck), test, vs.background)
        out[label] = {"test_psnr": round(score["psnr"], 3), "test_ssim": round(score["ssim"], 4),
                     "seconds_to_checkpoint": round(seconds, 1), "steps": model.metrics.get("steps"),
                     "minutes": settings["minutes"], "load_average": os.getloadavg()[0]}
        print(label, json.dumps(out[label]), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=180)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-fits", action="store_true")
    ap.add_argument("--jobs", nargs="+", default=["dnr", "npbg", "npbgpp"], help="which fits to run")
    ap.add_argument("--pretrained", nargs="+", default=[], metavar="DIR",
                    help="also NPBG++ (no fitting) with these pretrained weights, each scored apart")
    ap.add_argument("--no-speed", action="store_true", help="skip the splatting and frame-rate measurements")
    ap.add_argument("--result", default="npbg_peer.json", help="file name under bench/results")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    result = {"load_average_start": os.getloadavg()[0]}
    if not args.no_speed:
        result.update(splat=splat_speed(), frame_rate=frame_rate())
    print(json.dumps(result), flush=True)
    if not args.skip_fits:
        with tempfile.TemporaryDirectory() as tmp:
            result["fits"] = fits(args.minutes, args.size, args.views, args.points, Path(tmp), args.jobs,
                                  args.pretrained)
    result["load_average_end"] = os.getloadavg()[0]
    dest = ROOT / "bench" / "results"
    dest.mkdir(exist_ok=True)
    (dest / args.result).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
