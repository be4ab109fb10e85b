"""Widgets that show images beside or over the 3D view.

- :class:`PhotoView`: the selected frame's photo over the scene's background, its name and split.
- :class:`ImageOverlay`: an image covering a view widget (the "Learned view").
- :class:`LatestOnly`: one background call at a time; the newest waiting request replaces older
  ones (latest frame wins), so a moving camera never queues stale renders.
- :class:`LearnedView`: a renderer's image for the 3D view's current camera, drawn over the view;
  1/3 resolution while the camera moves, full resolution 150 ms after it stops.
- :class:`CompareView`: ground truth | learned | error map of held-out frames, with the PSNR.

Why a QLabel over the view and not a VTK background image: a child label covers the view exactly
and costs no VTK render to update (tens of ms on a software renderer). Over a ``QOpenGLWidget``
view Qt composes it like any widget and it is transparent to the mouse; over a native view
(``vtk_widget``) it is a native window stacked above the view's, handing the mouse to the view,
so the trackball works through it either way.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..jobs.runner import JobRunner
from .training_widgets import heat_colors, psnr, to_pixmap, to_uint8
from .vtk_widget import MouseToView, is_native

__all__ = ["PhotoView", "ImageOverlay", "LatestOnly", "LearnedView", "CompareView", "compare_images"]


class _ScaledImage(QLabel):
    """A label showing an image scaled to its width (aspect kept)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(64, 64)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setWordWrap(True)
        self._pixmap = None

    def set_image(self, image: np.ndarray | None) -> None:
        self._pixmap = to_pixmap(image) if image is not None else None
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._pixmap is None:
            self.setPixmap(QPixmap())
            return
        self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))


class PhotoView(QWidget):
    """The selected frame's photo, composited over the view set's background."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.picture = _ScaledImage("Click a camera in the 3D view, or pick a frame in the Neural Rendering panel.")
        self.picture.setStyleSheet("color: palette(mid);")
        self.picture.setMinimumSize(180, 180)
        self.caption = QLabel("")
        self.caption.setObjectName("photo_caption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.picture, 1)
        lay.addWidget(self.caption)
        self.image: np.ndarray | None = None
        self.frame = None

    def show_frame(self, frame, background=(1.0, 1.0, 1.0)) -> None:
        """Show ``frame`` (None clears): (H, W, 4) photo over ``background`` (RGB 0..1)."""
        self.frame = frame
        if frame is None:
            self.image = None
            self.picture.set_image(None)
            self.caption.setText("")
            return
        rgba = np.asarray(frame.rgba)
        h, w = rgba.shape[:2]
        k = max(1, -(-max(h, w) // 1024))  # a dock needs no more than ~1000 px: stride big photos
        a = (np.asarray(frame.mask[::k, ::k], np.float32) if frame.mask is not None
             else rgba[::k, ::k, 3].astype(np.float32) / 255.0)[..., None]
        rgb = rgba[::k, ::k, :3].astype(np.float32) / 255.0 * a + np.asarray(background, np.float32) * (1 - a)
        self.image = to_uint8(rgb)
        self.picture.set_image(self.image)
        self.caption.setText(f"{frame.name or frame.camera.name}  ·  {frame.split}  ·  {w}×{h}")


class ImageOverlay(QLabel):
    """An image covering ``host`` (a view widget) exactly; mouse events pass through to it.
    ``resized`` fires when the host changes size (the image then needs redrawing)."""

    resized = Signal()

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.host = host
        if is_native(host):
            # over a native view only a native window shows, and it takes the mouse itself
            self.setAttribute(Qt.WidgetAttribute.WA_NativeWindow, True)
            MouseToView(self, host)
        else:
            self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setScaledContents(True)
        self.setStyleSheet("background: black;")
        self.image: np.ndarray | None = None
        host.installEventFilter(self)
        self.setGeometry(host.rect())
        self.hide()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if obj is self.host and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.host.rect())
            self.resized.emit()
        return False

    def set_image(self, image: np.ndarray) -> None:
        self.image = to_uint8(image)
        self.setPixmap(to_pixmap(self.image))
        self.setGeometry(self.host.rect())
        self.raise_()


class LatestOnly(QObject):
    """Runs ``work()`` calls one at a time in a private worker thread, ``done(result)`` on the UI
    thread. A call submitted while one runs waits; a newer one replaces it (it is dropped, never
    run), so at most two calls run for any burst of requests: the one running and the latest."""

    def __init__(self, label: str = "rendering", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.label = label
        self.runner = JobRunner(lanes={"view": 1})  # private: these jobs do not show in the status bar
        self.running = None
        self.pending: tuple | None = None
        self.started = 0
        self.dropped = 0

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[str], None] | None = None) -> None:
        if self.running is not None:
            if self.pending is not None:
                self.dropped += 1
            self.pending = (work, done, failed)
            return
        self._run(work, done, failed)

    def _run(self, work, done, failed) -> None:
        self.started += 1
        self.running = self.runner.submit(lambda _p: work(), self.label,
                                          on_done=lambda r: self._ended(done, r),
                                          on_error=lambda m: self._ended(failed, m), lane="view")

    def _ended(self, callback, value) -> None:
        self.running = None
        if callback is not None:
            callback(value)
        if self.pending is not None and self.running is None:
            work, done, failed = self.pending
            self.pending = None
            self._run(work, done, failed)

    def busy(self) -> bool:
        return self.running is not None or self.pending is not None

    def shutdown(self) -> None:
        self.pending = None
        self.runner.shutdown()


class LearnedView(QObject):
    """A renderer's image for the 3D view's camera, shown over the 3D view widget.

    ``render_fn(camera) -> (H, W, 3)`` runs in a worker (never on the UI thread). When the camera
    moves, a 1/``low_factor`` size image is asked for at once and a full-size one 150 ms after the
    last move; requests go through :class:`LatestOnly`, so only the newest waiting one runs.
    """

    shown = Signal(object)  # the (H, W, 3) uint8 image just shown
    failed = Signal(str)

    def __init__(self, view3d, host: QWidget, low_factor: int = 3, settle_ms: int = 150,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view3d, self.low_factor = view3d, low_factor
        self.overlay = ImageOverlay(host)
        self.scheduler = LatestOnly("learned view", self)
        self.render_fn: Callable | None = None
        self.active = False
        self.last_camera = None  # the camera of the image shown
        self._unwatch: Callable | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(settle_ms)
        self._timer.timeout.connect(lambda: self.request(full=True))
        # a resized view changes the camera's pixel size; the view knows its new size only after
        # the widget's own resize handling, so ask once things settle
        self.overlay.resized.connect(lambda: self._timer.start() if self.active else None)

    def start(self, render_fn: Callable) -> None:
        self.render_fn = render_fn
        if not self.active:
            self.active = True
            self._unwatch = self.view3d.watch_camera(self._moved)
        self.request(full=True)

    def stop(self) -> None:
        self.active = False
        self._timer.stop()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self.scheduler.pending = None
        self.overlay.hide()

    def _moved(self) -> None:
        if self.active:
            self.request(full=False)
            self._timer.start()

    def request(self, full: bool = True) -> None:
        """Ask for an image of the current camera (full size, or reduced while moving)."""
        cam = self.view3d.current_camera()
        fn = self.render_fn
        if not self.active or cam is None or fn is None:
            return
        if not full:
            cam = cam.scaled(max(1, cam.width // self.low_factor), max(1, cam.height // self.low_factor))
        self.scheduler.submit(lambda: (cam, to_uint8(fn(cam, preview=not full))), self._show, self._failed)

    def _show(self, result) -> None:
        if not self.active:
            return
        cam, image = result
        self.last_camera = cam
        self.overlay.set_image(image)
        self.overlay.show()
        self.shown.emit(image)

    def _failed(self, message: str) -> None:
        if self.active:
            self.stop()
            self.failed.emit(message)


def compare_images(truth: np.ndarray, learned: np.ndarray) -> dict:
    """Ground truth and a learned image, both (H, W, 3) in 0..1, as a comparison:
    ``{"truth", "learned", "error" (heat colours of the mean abs difference, uint8), "psnr"}``."""
    t = np.asarray(truth, np.float32)[..., :3]
    raw = np.asarray(learned)
    l = raw[..., :3].astype(np.float32) / (255.0 if raw.dtype == np.uint8 else 1.0)
    if l.shape != t.shape:
        raise ValueError(f"the renderer gave a {l.shape[1]}x{l.shape[0]} image for a "
                         f"{t.shape[1]}x{t.shape[0]} camera")
    err = np.abs(t - l).mean(-1)
    return {"truth": to_uint8(t), "learned": to_uint8(l), "error": heat_colors(err), "psnr": psnr(t, l),
            "mean_abs": float(err.mean())}


class CompareView(QWidget):
    """Held-out frames side by side: ground truth | learned | error (heat), with the PSNR."""

    step = Signal(int)  # -1 previous, +1 next

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Tool)
        self.setWindowTitle("Compare held-out views")
        self.resize(900, 380)
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.panes = {}
        for key, title in (("truth", "Ground truth"), ("learned", "Learned"), ("error", "|error| (heat)")):
            col = QVBoxLayout()
            head = QLabel(title)
            head.setAlignment(Qt.AlignmentFlag.AlignCenter)
            pane = _ScaledImage("")
            col.addWidget(head)
            col.addWidget(pane, 1)
            row.addLayout(col, 1)
            self.panes[key] = pane
        lay.addLayout(row, 1)
        bar = QHBoxLayout()
        self.prev_btn = QPushButton("◀ Previous")
        self.next_btn = QPushButton("Next ▶")
        self.prev_btn.clicked.connect(lambda: self.step.emit(-1))
        self.next_btn.clicked.connect(lambda: self.step.emit(+1))
        self.text = QLabel("")
        self.text.setObjectName("compare_text")
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        bar.addWidget(self.prev_btn)
        bar.addWidget(self.text, 1)
        bar.addWidget(self.next_btn)
        lay.addLayout(bar)
        self.result: dict | None = None

    def show_busy(self, text: str) -> None:
        self.text.setText(text)

    def show_result(self, result: dict, caption: str) -> None:
        self.result = result
        for key, pane in self.panes.items():
            pane.set_image(result[key])
        p = result["psnr"]
        self.text.setText(f"{caption}   PSNR {p:.2f} dB" if np.isfinite(p) else f"{caption}   PSNR ∞ (identical)")
