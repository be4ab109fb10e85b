"""What a window repaint costs with each kind of view widget.

Four VTK views (a sphere each) in a 1600×1000 window; a status-bar text changes every 5 ms, 200
times, and the event loop's period is recorded. With ``QOpenGLWidget`` views (pyvistaqt) Qt
composes the whole window with OpenGL on every repaint; native views (``viewer/ui/vtk_widget``)
are not composed. The timer's own period, 5 ms, is the floor.

    xvfb-run -a .venv/bin/python bench/composition_probe.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def probe(kind: str) -> dict:
    os.environ["LUCID3D_VIEW_WIDGET"] = kind
    import numpy as np
    import pyvista as pv
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QGridLayout, QMainWindow, QWidget

    sys.path.insert(0, str(ROOT))
    from viewer.ui.vtk_widget import make_interactor

    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = QMainWindow()
    grid_host = QWidget()
    grid = QGridLayout(grid_host)
    views = []
    for i in range(4):
        view = make_interactor(grid_host)
        view.add_mesh(pv.Sphere(), color="tan")
        grid.addWidget(view.interactor, i // 2, i % 2)
        views.append(view)
    win.setCentralWidget(grid_host)
    win.resize(1600, 1000)
    win.show()
    end = time.perf_counter() + 1.5
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now
        win.statusBar().showMessage(f"step {len(gaps)}")
        if len(gaps) == 200:
            app.quit()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    app.exec()
    g = np.asarray(gaps[1:])
    return {"widget": type(views[0]).__name__, "median_ms": round(float(np.median(g)), 2),
            "p90_ms": round(float(np.percentile(g, 90)), 2), "max_ms": round(float(g.max()), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--one", choices=["native", "qopengl"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(probe(args.one)))
        return 0
    if not os.environ.get("DISPLAY"):
        print("error: needs an X server: run under xvfb-run -a", file=sys.stderr)
        return 2
    import numpy as np

    runs: dict[str, list[dict]] = {"native": [], "qopengl": []}
    for _ in range(args.repeat):
        for kind in runs:  # alternated, a fresh process each, so both see the same machine
            out = subprocess.run([sys.executable, __file__, "--one", kind], capture_output=True, text=True)
            runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {}
    for kind, rs in runs.items():
        med = [r["median_ms"] for r in rs]
        summary[kind] = {"median_ms": float(np.median(med)), "spread_ms": [min(med), max(med)],
                         "p90_ms": float(np.median([r["p90_ms"] for r in rs]))}
    summary["ratio_qopengl_over_native"] = round(summary["qopengl"]["median_ms"] / summary["native"]["median_ms"], 2)
    summary["load_avg"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
