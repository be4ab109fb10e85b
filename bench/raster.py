"""Benchmark: uv maps per second from :class:`viewer.compute.raster.UVRasterizer`.

    .venv/bin/python bench/raster.py [--size 256] [--maps 100] [--rounds 3] [--json OUT.json]

Meshes (no downloads): ``sphere``, a uv sphere of 224 x 224 quads = 100,352 triangles; and
``airplane``, pyvista's shipped ``airplane.ply`` (2,452 triangles) given an xatlas atlas and
split 3 times at edge midpoints = 156,928 triangles. Cameras: ``frame_cameras`` (40 degrees,
the bounding sphere just fills the view: as ``main.py capture`` places them). Each round times
``maps`` calls of ``rasterize`` (the whole call: VTK render, read-back, numpy barycentrics);
the median round is reported, with the share of it spent in VTK's ``Render``. The sphere is
closed (triangles facing away are culled); the airplane is open (all triangles drawn).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def make_mesh(name: str):
    from viewer.model.geometry import Mesh
    from viewer.geometry.primitives import subdivide, uv_sphere
    from viewer.geometry.uvatlas import parametrize

    if name == "sphere":
        return uv_sphere(224, 224)
    if name == "airplane":
        import pyvista as pv

        pd = pv.read(Path(pv.examples.__file__).parent / "airplane.ply").triangulate()
        return subdivide(parametrize(Mesh(np.asarray(pd.points), pd.regular_faces)), 3)
    raise SystemExit(f"unknown mesh {name!r}")


def machine(rast) -> dict:
    cpu = platform.processor() or ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
    except (OSError, AttributeError):
        pass
    caps = rast._win.window.ReportCapabilities() or ""
    gl = re.search(r"OpenGL renderer string:\s*(.+)", caps)
    return {"cpu": cpu, "cores": os.cpu_count(), "gl_renderer": gl.group(1).strip() if gl else "?",
            "python": platform.python_version(), "load_avg_1min": os.getloadavg()[0]}


def run(name: str, size: int, maps: int, rounds: int, cull: bool = True) -> dict:
    from viewer.compute.capture import frame_cameras
    from viewer.compute.raster import UVRasterizer

    mesh = make_mesh(name)
    cams = frame_cameras(mesh, maps, size, 40.0, seed=0)
    t0 = time.perf_counter()
    rast = UVRasterizer(mesh)
    setup = time.perf_counter() - t0
    if not cull:
        rast._orientation = 0  # draw every triangle, as for an open mesh
    for cam in cams[:5]:
        rast.rasterize(cam)  # warm-up: shader compile, buffer upload
    window = rast._win.window
    render_time = [0.0]
    orig = window.Render

    def timed_render():
        t = time.perf_counter()
        orig()
        render_time[0] += time.perf_counter() - t

    rast._win.window = type("W", (), {"__getattr__": lambda s, k: getattr(window, k),
                                      "Render": staticmethod(timed_render)})()
    per_round, render_share, coverage = [], [], []
    for _ in range(rounds):
        render_time[0] = 0.0
        t = time.perf_counter()
        for cam in cams:
            m = rast.rasterize(cam)
            coverage.append(m.mask.mean())
        dt = time.perf_counter() - t
        per_round.append(maps / dt)
        render_share.append(render_time[0] / dt)
    rast._win.window = window
    info = machine(rast)
    rast.close()
    i = int(np.argsort(per_round)[len(per_round) // 2])
    return {"mesh": name, "n_faces": mesh.n_faces, "n_points": mesh.n_points, "size": size,
            "maps_per_s": round(statistics.median(per_round), 1),
            "maps_per_s_rounds": [round(v, 1) for v in per_round],
            "ms_per_map": round(1000 / statistics.median(per_round), 2),
            "render_share": round(render_share[i], 2), "mean_coverage": round(float(np.mean(coverage)), 3),
            "setup_s": round(setup, 2), "closed_mesh_culling": bool(rast._orientation), **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", nargs="+", default=["sphere", "airplane"], choices=["sphere", "airplane"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--maps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-cull", action="store_true", help="never cull (the open-mesh path)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = []
    for name in args.mesh:
        r = run(name, args.size, args.maps, args.rounds, cull=not args.no_cull)
        results.append(r)
        print(f"{r['mesh']}: {r['n_faces']:,} triangles, {r['size']}x{r['size']}: "
              f"{r['maps_per_s']} maps/s ({r['ms_per_map']} ms/map, {100 * r['render_share']:.0f}% in "
              f"VTK Render; rounds {r['maps_per_s_rounds']}; coverage {r['mean_coverage']:.0%}; "
              f"back-face culling {'on' if r['closed_mesh_culling'] else 'off (open mesh)'}) on "
              f"{r['cpu']}, {r['cores']} cores, {r['gl_renderer']}, load {r['load_avg_1min']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
