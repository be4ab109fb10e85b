"""Benchmark: the Qt event loop's worst stall while a real 3D U-Net trains in a worker thread.

    .venv/bin/python bench/ui_stall.py [--seconds 60] [--mode bare|window] [--baseline]
    xvfb-run -a .venv/bin/python bench/ui_stall.py --mode window

A 5 ms ``QTimer`` (``Qt.PreciseTimer``) ticks on the UI thread; a gap between two ticks is
time in which the window could not react. Training is ``unet3d`` with its default network on
two CT phantoms (``viewer.samples.demo.ct_phantom(shape=(64, 64, 48), seed=1 and 2)``, one trained
on, one validated on) for ``--seconds`` of wall-clock budget.

Phases, timed apart:

1. ``warm_up``: the Segmentation panel's :func:`~viewer.ui.segmentation.panel.warm_up` job
   (torch/MONAI imports with the collector paused, then ``gc.freeze``), which the panel runs
   when it is first shown, long before anyone presses Train.
2. ``setup``: from Train to the first training step (data preparation, network build).
3. ``training_loop``: every step, validation, checkpoint and curve update after that.

Modes: ``bare`` (default without a display) runs jobs on a ``JobRunner`` in an offscreen
QApplication with the training job's signals connected; ``window`` (needs X: ``xvfb-run``) is
the real main window with its four VTK views, the phantoms as layers and the panel's own Train
button, curves and preview.

``--baseline`` is what the window did before: no warm-up (torch is imported by the training
job with the collector running), no ``gc.freeze`` after set-up, the default 5 ms switch
interval. The training loop's own ``gc.collect(); gc.freeze()`` is the plugin's, always on.

Prints the worst / p99 / p99.9 gap per phase and writes ``bench/results/ui_stall-<mode>
[-baseline].json`` (git-ignored). Target: worst gap under 50 ms in set-up and training. The
machine's load average is recorded too: on a shared 2-core machine, other processes' work
shows up as stalls and slows training.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 50.0
TICK_MS = 5


def summarize(gaps_ms: list[float]) -> dict:
    """Worst, p99, p99.9, median gap (ms) and counts over 50 / 100 ms."""
    import numpy as np

    g = np.asarray(gaps_ms, float)
    if g.size == 0:
        return {"ticks": 0}
    return {"ticks": int(g.size), "seconds": round(float(g.sum()) / 1000, 1),
            "max_ms": round(float(g.max()), 1), "p99_ms": round(float(np.percentile(g, 99)), 1),
            "p999_ms": round(float(np.percentile(g, 99.9)), 1), "median_ms": round(float(np.median(g)), 2),
            "over_50ms": int((g > 50).sum()), "over_100ms": int((g > 100).sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training budget, s")
    ap.add_argument("--mode", choices=("bare", "window"),
                    default="window" if os.environ.get("DISPLAY") else "bare")
    ap.add_argument("--baseline", action="store_true", help="no warm-up, no gc.freeze, default switch interval")
    ap.add_argument("--hide-views", action="store_true",
                    help="window mode with the four VTK views hidden (tells painting from the GIL)")
    ap.add_argument("--nice", type=int, default=None,
                    help="worker threads' nice value (default: the app's, 10; 0 measures without it)")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/ui_stall-MODE.json)")
    args = ap.parse_args()
    if args.nice is not None:
        import viewer.jobs.runner as runner

        runner.BACKGROUND_NICE = args.nice
    if args.mode == "bare":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif not os.environ.get("DISPLAY"):
        print("error: --mode window needs an X server: run under xvfb-run -a", file=sys.stderr)
        return 2

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    from viewer.samples.demo import ct_phantom
    from viewer.plugins import Case, get_plugin
    from viewer.ui.segmentation.panel import warm_up

    plugin = get_plugin("unet3d", "segmenter")
    phantoms = [ct_phantom(shape=(64, 64, 48), seed=s) for s in (1, 2)]
    cfg = plugin.Config(minutes=args.seconds / 60.0, val_every=1, iters_per_epoch=5)
    ticks: list[float] = []
    marks: dict[str, float] = {}
    state: dict = {"metrics": 0, "previews": 0, "result": None}
    window = panel = None
    if args.mode == "window":
        from viewer.model import layer_for
        from viewer.ui.app import make_window

        window = make_window()
        for s, (vol, lab) in zip((1, 2), phantoms):
            vol.name, lab.name = f"phantom {s}", f"phantom {s} labels"
            window.scene.add(layer_for(vol))
            window.scene.add(layer_for(lab))
        window.show()
        if args.hide_views:
            window.centralWidget().hide()
        panel = window.segmentation_panel
        panel.form.set_config(cfg)
        jobs = window.jobs
    else:
        from viewer.jobs.runner import JobRunner

        jobs = JobRunner()
        cases = [Case(v, l, name=f"phantom {s}") for s, (v, l) in zip((1, 2), phantoms)]
    for _ in range(50):  # the views' first frames, before any clock
        app.processEvents()
        time.sleep(0.02)
    if not args.baseline:
        gc.collect()  # what run_app does once the window is up
        gc.freeze()

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    loop = QEventLoop()

    # 1. warm-up, as the panel does when it is first shown
    marks["warm_start"] = time.perf_counter()
    import viewer.ui.segmentation.panel as sp

    if args.baseline:
        sp._WARM["done"] = True  # no warm-up: the training job imports torch itself
        if window is not None:
            window.segmentation_dock.show()
    elif window is not None:
        window.segmentation_dock.show()  # the panel's showEvent starts warm_up in a thread
        while not sp._WARM["done"]:
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    else:
        job = jobs.submit(lambda _p: warm_up(), "warm-up")
        job.finished.connect(lambda *_: loop.quit())
        loop.exec()
    marks["warm_end"] = time.perf_counter()
    switch_before = sys.getswitchinterval()

    # 2 + 3. training
    ckpt = tempfile.mkdtemp(prefix="lucid3d-bench-")

    def on_progress(step: float, total: float, message: str) -> None:
        if "step" in message and "first_step" not in marks:
            marks["first_step"] = time.perf_counter()

    def on_done(result) -> None:
        marks["end"] = time.perf_counter()
        state["result"] = result
        QTimer.singleShot(100, loop.quit)

    def on_fail(message: str) -> None:
        print(f"training failed: {message}", file=sys.stderr)
        marks["end"] = time.perf_counter()
        QTimer.singleShot(100, loop.quit)

    marks["train_start"] = time.perf_counter()
    if window is not None:
        panel.train()
        job = panel.job
        if args.baseline:
            sys.setswitchinterval(switch_before)  # undo what the panel sets
    else:
        if not args.baseline:
            sys.setswitchinterval(0.001)  # what the panel sets while it trains
        job = jobs.submit(lambda p: plugin.train(cases, cfg, p, checkpoint_dir=ckpt), "training")
    job.progress.connect(on_progress)
    job.finished.connect(on_done)
    job.failed.connect(on_fail)
    job.metrics.connect(lambda *_: state.__setitem__("metrics", state["metrics"] + 1))
    job.preview.connect(lambda *_: state.__setitem__("previews", state["previews"] + 1))
    load_before = os.getloadavg()
    loop.exec()
    timer.stop()
    load_after = os.getloadavg()
    sys.setswitchinterval(switch_before)

    def phase(a: float, b: float) -> list[float]:
        return [(y - x) * 1000.0 for x, y in zip(ticks, ticks[1:]) if x >= a and y <= b]

    first = marks.get("first_step", marks["train_start"])
    end = marks.get("end", time.perf_counter())
    training = phase(marks["train_start"], end)
    worst_at = None
    if training:
        pairs = [(y - x, x) for x, y in zip(ticks, ticks[1:]) if x >= marks["train_start"] and y <= end]
        worst_at = round(max(pairs)[1] - marks["train_start"], 2)
    model = state["result"]
    m = model.metrics if model is not None else {}
    result = {
        "benchmark": "ui_stall", "mode": args.mode, "baseline": args.baseline, "tick_ms": TICK_MS,
        "views_hidden": bool(args.hide_views), "worker_nice": args.nice if args.nice is not None else 10,
        "target_max_ms": TARGET_MS,
        "training": {"plugin": "unet3d", "cases": "2 x ct_phantom(64, 64, 48)", "budget_s": args.seconds,
                     "wall_s": round(end - marks["train_start"], 1), "steps": m.get("steps"),
                     "epochs": m.get("epochs"), "stopped_by": m.get("stopped_by"),
                     "metrics_signals": state["metrics"], "previews": state["previews"]},
        "warm_up": summarize(phase(marks["warm_start"], marks["warm_end"])),
        "setup": summarize(phase(marks["train_start"], first)),
        "training_loop": summarize(phase(first, end)),
        "training_all": summarize(training),
        "worst_training_gap_at_s": worst_at,
        "meets_target": bool(training) and max(training) < TARGET_MS,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in load_after]},
    }
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / (
        f"ui_stall-{args.mode}{'-noviews' if args.hide_views else ''}{'-baseline' if args.baseline else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    tr = result["training"]
    print(f"ui_stall [{args.mode}{', baseline' if args.baseline else ''}]: {tr['steps']} steps, "
          f"{tr['epochs']} epochs in {tr['wall_s']} s (load avg {load_before[0]:.1f} -> {load_after[0]:.1f})")
    for name in ("warm_up", "setup", "training_loop", "training_all"):
        s = result[name]
        if s.get("ticks"):
            print(f"  {name:14s} {s['seconds']:6.1f} s  worst {s['max_ms']:6.1f} ms  p99 {s['p99_ms']:5.1f} ms  "
                  f"p99.9 {s['p999_ms']:5.1f} ms  >50 ms: {s['over_50ms']}")
    print(f"  worst training gap at {worst_at} s; target < {TARGET_MS:.0f} ms: "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    print(f"wrote {out}")
    shutil.rmtree(ckpt, ignore_errors=True)
    if window is not None:
        window.close()
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
