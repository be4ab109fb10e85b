"""Starting the application: QApplication, the main window, what to open first."""

from __future__ import annotations

import gc
import os
import sys

__all__ = ["run_app", "make_window"]


def make_window(paths=(), labels=(), demo: bool | str = False):
    from ..render.vtkutil import quiet_vtk
    from .main_window import MainWindow

    quiet_vtk()
    win = MainWindow()
    if demo:
        from ..demos import demo_objects
        from ..model import layer_for

        name = demo if isinstance(demo, str) else "default"
        for obj, display in demo_objects(name):
            win.scene.add(layer_for(obj, **display))
        win.scene.selected = win.scene[0]
        if name == "segmentation" and hasattr(win, "segmentation_dock"):
            win.segmentation_dock.show()
        if name == "rendering" and hasattr(win, "render_dock"):
            win.render_dock.show()
            win.maximize("3d")  # no volume: the slice views would stay black
    if paths:
        win.open_paths(paths)
    if labels:
        win.open_paths(labels, as_labels=True)
    return win


def run_app(paths=(), labels=(), demo: bool | str = False) -> int:
    from PySide6.QtWidgets import QApplication

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux") \
            and os.environ.get("QT_QPA_PLATFORM") not in ("offscreen", "minimal", "xcb"):
        print("error: no display: the window needs an X server (try xvfb-run, or the headless "
              "commands: main.py info | convert | screenshot)", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Lucid3D")
    app.setStyle("Fusion")
    from PySide6.QtGui import QIcon

    from ..resources import icon_path

    app.setWindowIcon(QIcon(str(icon_path())))
    win = make_window(paths, labels, demo)
    win.show()
    # the big UI stalls are full garbage collections over the many long-lived objects that VTK
    # and Qt create at start-up: freeze them out of the collector (ENVIRONMENT.md)
    gc.collect()
    gc.freeze()
    return app.exec()
