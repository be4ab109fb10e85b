"""Benchmark: from `python main.py` to a drawn, usable window (issue: start like a desktop app).

    xvfb-run -a .venv/bin/python bench/startup.py [--repeat 5] [--demo NAME]

Each run starts a fresh `main.py` process with ``LUCID3D_STARTUP_LOG`` set; the app appends a JSON
line per milestone, in seconds since the parent started the process (``LUCID3D_T0``):
``qt_imported`` (interpreter + our CLI + PySide6), ``window_shown``, ``window_drawn`` (the first
paint: what a user sees) and ``views_ready`` (VTK views and panels built: fully usable).
The baseline in the same run is a bare PySide6 window (`python -c` that shows a QMainWindow):
the floor no Qt app on this machine can beat. Also reports whether torch was imported by then.
Median and spread over the runs; results to bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = """
import json, os, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow(); w.resize(1400, 900)
class F(QObject):
    def eventFilter(self, o, e):
        if e.type() == QEvent.Type.Paint:
            with open(os.environ["LUCID3D_STARTUP_LOG"], "a") as fh:
                fh.write(json.dumps({"event": "window_drawn", "t": time.time() - float(os.environ["LUCID3D_T0"])}) + "\\n")
            QTimer.singleShot(0, app.quit)
        return False
f = F(); w.installEventFilter(f); w.show(); app.exec()
"""
PROBE_TORCH = "import sys; print('torch' in sys.modules)"


def run_once(cmd: list[str], until: str, timeout: float = 120.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        env = dict(os.environ, LUCID3D_STARTUP_LOG=str(log), LUCID3D_T0=repr(time.time()),
                   LUCID3D_STARTUP_EXIT=until)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t_end = time.time() + timeout
        events: dict[str, float] = {}
        while time.time() < t_end and until not in events:
            if log.exists():
                for line in log.read_text().splitlines():
                    row = json.loads(line)
                    events.setdefault(row["event"], row["t"])
            if proc.poll() is not None and until not in events:
                break
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        return events


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--demo", help="start `main.py demo NAME` instead of the empty window")
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        sys.exit("run under an X server: xvfb-run -a .venv/bin/python bench/startup.py")
    app_cmd = [sys.executable, "main.py"] + (["demo", args.demo] if args.demo else [])
    rows: dict[str, list[float]] = {}
    torch_loaded = []
    for i in range(args.repeat):  # alternate app and baseline so both see the same machine load
        ev = run_once(app_cmd, "views_ready")
        for k, v in ev.items():
            rows.setdefault(k, []).append(v)
        torch_loaded.append(ev.get("torch_at_ready", 0.0) > 0)
        base = run_once([sys.executable, "-c", BARE], "window_drawn")
        rows.setdefault("bare_qt_window_drawn", []).append(base.get("window_drawn", float("nan")))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in ev.items())
              + f" | bare Qt window {base.get('window_drawn', float('nan')):.2f}s", flush=True)
    res = {"command": " ".join(["main.py"] + app_cmd[2:]), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
           "milestones_s": {k: summary(v) for k, v in rows.items()},
           "torch_imported_by_views_ready": any(torch_loaded)}
    d = res["milestones_s"]
    if "window_drawn" in d:
        res["ratio_drawn_vs_bare_qt"] = round(d["window_drawn"]["median"] / d["bare_qt_window_drawn"]["median"], 2)
    out = ROOT / "bench" / "results" / ("startup.json" if not args.demo else f"startup_demo_{args.demo}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
