"""Benchmark: brush stroke to redrawn slice, in pixels (issue: clinician workflow).

    .venv/bin/python bench/edit_redraw.py [--repeat 5] [--size 512]

A 512×512×300 CT-like volume with a label layer in the app's own axial ``SliceView``, drawn
offscreen (EGL, the window's VTK code path without Qt), the label layer edited through the
``EditSession`` the window's brush uses. For each dab of a 40-dab stroke: the dab (mask, undo
history, ``edited`` event → the view re-cuts the label slice) and the frame rendered (``Render()``,
synchronous on the software renderer). Baseline in the same run: the same frame rendered with nothing changed
(the floor any redraw pays). Median and spread over ``--repeat`` strokes, as JSON; the target is
< 30 ms from dab to pixels.
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=512, help="view size in pixels")
    ap.add_argument("--msaa", type=int, default=4, help="multisamples (the window's views: 4; 0 shows what they cost)")
    args = ap.parse_args()
    import pyvista as pv

    from viewer.edit import EditSession
    from viewer.model import LabelMap, Scene, Volume, layer_for
    from viewer.model.labels import LabelTable
    from viewer.render.slice_view import SliceView
    from viewer.render.vtkutil import quiet_vtk

    quiet_vtk()
    shape, aff = (512, 512, 300), np.diag([0.7, 0.7, 1.25, 1.0])
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 20, shape).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[150:350, 150:350, 100:200] = 1
    scene = Scene()
    image = layer_for(Volume(ct, aff, modality="CT", name="ct"))
    lab = layer_for(LabelMap(labels, aff, LabelTable.for_values([1, 2]), name="labels"))
    scene.add(image)
    scene.add(lab)
    # as the window's views: 4x multisampling by default (``--msaa 0`` shows what it costs)
    plotter = pv.Plotter(off_screen=True, window_size=[args.size, args.size])
    plotter.render_window.SetMultiSamples(args.msaa)
    view = SliceView(plotter.renderer, scene, "axial", render=lambda: None)
    view.reset_camera()
    session = EditSession(lab, image)
    session.value = 2

    ren_win = plotter.render_window

    def frame() -> None:
        ren_win.Render()  # the frame drawn (llvmpipe renders synchronously): what the window shows

    frame()
    dab_ms, idle_ms = [], []
    load = [os.getloadavg()[0]]
    for r in range(args.repeat):
        start = np.array([rng.uniform(-100, 0), rng.uniform(-100, 50), 150 * 1.25])
        scene.cursor = start
        frame()
        times, idle = [], []
        session.press(view, start)
        for k in range(1, 40):
            c = start + np.array([1.5 * k, 0.4 * k, 0.0])
            t0 = time.perf_counter()
            session.drag(view, c)
            frame()
            times.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            frame()
            idle.append((time.perf_counter() - t0) * 1000)
        session.release(view, c)
        dab_ms.append(statistics.median(times))
        idle_ms.append(statistics.median(idle))
    load.append(os.getloadavg()[0])
    changed = int(np.count_nonzero(lab.data.array == 2))
    view.close()
    plotter.close()

    def spread(v):
        return {"median": round(statistics.median(v), 2), "min": round(min(v), 2), "max": round(max(v), 2)}

    res = {"shape": shape, "view_px": args.size, "multi_samples": args.msaa, "dab_to_pixels_ms": spread(dab_ms),
           "frame_unchanged_ms": spread(idle_ms),
           "ratio": round(statistics.median(dab_ms) / statistics.median(idle_ms), 2),
           "target_ms": 30, "voxels_painted": changed, "repeat": args.repeat,
           "load_avg": [round(x, 2) for x in load], "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count()}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
