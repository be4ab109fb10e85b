"""Starting the application: QApplication, the main window, what to open first.

Start-up is staged so the window is drawn within a few seconds on a laptop: the light window
(Qt widgets only) is shown first, VTK and the training panels are imported in a thread and
built when they arrive (``MainWindow(staged=True)``). ``LUCID3D_STARTUP_LOG=FILE`` appends one
JSON line per milestone (seconds since ``LUCID3D_T0``, else since this module was imported):
what ``bench/startup.py`` reads.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

__all__ = ["run_app", "make_window"]

_T_IMPORT = time.time()


def _milestone(name: str) -> None:
    log = os.environ.get("LUCID3D_STARTUP_LOG")
    if not log:
        return
    t0 = float(os.environ.get("LUCID3D_T0", _T_IMPORT))
    with open(log, "a") as fh:
        fh.write(json.dumps({"event": name, "t": round(time.time() - t0, 4)}) + "\n")


def make_window(paths=(), labels=(), demo: bool | str = False, staged: bool = False):
    from .main_window import MainWindow

    def quiet() -> None:
        from ..render.vtkutil import quiet_vtk  # imports VTK: only once the views are built

        quiet_vtk()

    if not staged:
        quiet()
    win = MainWindow(staged=staged)
    if staged:
        win.when_ready(quiet)
    if demo:
        from ..samples.registry import demo_objects
        from ..model import layer_for

        name = demo if isinstance(demo, str) else "default"
        for obj, display in demo_objects(name):
            win.scene.add(layer_for(obj, **display))
        win.scene.selected = win.scene[0]
        if name == "segmentation":
            win.segmentation_dock.show()
        if name == "rendering":
            win.render_dock.show()
            win.when_ready(lambda: win.maximize("3d"))  # no volume: the slice views would stay black
        if name == "lesions":  # every view through the lesion, its box listed in the Detection tab
            win.scene.cursor = win.scene[1].data.centers[0]
            win.scene.selected = win.scene[1]
            win.lesions_dock.show()
            win.when_ready(lambda: (win.lesions_panel.tabs.setCurrentWidget(win.lesions_panel.detector),
                                    win.lesions_panel.detector.tabs.setCurrentIndex(2)))
    if paths:
        win.open_paths(paths)
    if labels:
        win.open_paths(labels, as_labels=True)
    return win


class _FirstPaint:
    """Notes the window's first paint (the moment a user sees it) in the start-up log."""

    def __init__(self, win) -> None:
        from PySide6.QtCore import QEvent, QObject

        class Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
                if event.type() == QEvent.Type.Paint:
                    _milestone("window_drawn")
                    obj.removeEventFilter(self)
                return False

        self.filter = Filter()
        win.installEventFilter(self.filter)


def run_app(paths=(), labels=(), demo: bool | str = False) -> int:
    from PySide6.QtWidgets import QApplication

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux") \
            and os.environ.get("QT_QPA_PLATFORM") not in ("offscreen", "minimal", "xcb"):
        print("error: no display: the window needs an X server (try xvfb-run, or the headless "
              "commands: main.py info | convert | screenshot)", file=sys.stderr)
        return 2
    _milestone("qt_imported")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Lucid3D")
    app.setStyle("Fusion")
    from PySide6.QtGui import QIcon

    from ..resources import icon_path

    app.setWindowIcon(QIcon(str(icon_path())))
    win = make_window(paths, labels, demo, staged=True)
    probe = _FirstPaint(win)
    win.show()
    _milestone("window_shown")

    def ready() -> None:
        _milestone("torch_at_ready" if "torch" in sys.modules else "no_torch_at_ready")
        _milestone("views_ready")
        # the big UI stalls are full garbage collections over the many long-lived objects that
        # VTK and Qt create at start-up: freeze them out of the collector (docs/PERFORMANCE.md, UI stall)
        gc.collect()
        gc.freeze()

    win.when_ready(ready)
    win._startup_probe = probe
    return app.exec()
