"""The training bar both training panels share: the panel's one job at a time, with a progress
bar, a status line (message · elapsed · time left), Cancel, live curves and the preview.

The bar runs the job (created, wired, then started in the runner's ``train`` lane as a heavy job)
and shows what it reports at most four times a second in one repaint: each repaint of the window
composes the GL views, tens of ms on a software renderer. The panel places ``charts`` and
``preview`` in its Train tab and the bar itself under its tabs, so progress and Cancel stay in
sight whichever tab is open.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..jobs.progress import MeshPreview
from .previews import PreviewPane
from .training_widgets import CurvePlot, ProgressClock

__all__ = ["TrainingBar", "FLUSH_MS"]

FLUSH_MS = 250  # the bar shows a job's reports at most this often


class TrainingBar(QWidget):
    """Progress, status and Cancel of a panel's job, and the curves and preview it reports.

    Parameters
    ----------
    plots : (y-axis label, accept(metric name) -> bool) per curve plot, e.g. ``("loss", lambda k: k == "loss")``.
    preview_hint : what the preview says before a training's first preview.
    cancel_tip : the Cancel button's tooltip.
    name : a prefix of the widgets' object names (``{name}_status``, ``{name}_preview``).
    """

    busy_changed = Signal(bool)
    surface = Signal(object)  # a MeshPreview the job reported

    def __init__(self, plots: Sequence[tuple[str, Callable[[str], bool]]], preview_hint: str = "",
                 cancel_tip: str = "Stop the running job", name: str = "training",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Any = None
        self.clock = ProgressClock()
        self._message = ""
        self._pending_preview: Any = None
        self._show_pending = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip(cancel_tip)
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_btn)
        lay.addLayout(row)
        self.status = QLabel("")
        self.status.setObjectName(f"{name}_status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        self.plots = [CurvePlot(label, accept) for label, accept in plots]
        self.charts = QWidget()  # the panel's Train tab holds these two
        charts = QVBoxLayout(self.charts)
        charts.setContentsMargins(0, 0, 0, 0)
        for plot in self.plots:
            charts.addWidget(plot, 1)
        self.preview = PreviewPane(preview_hint, name=f"{name}_preview")

    # running a job -------------------------------------------------------------------------------
    def start(self, jobs, fn: Callable, label: str, done: Callable[[Any], None], *,
              failed: Callable[[str], None] | None = None, cancelled: Callable[[], None] | None = None,
              training: bool = True) -> Any:
        """Run ``fn(progress)`` as this bar's job in the ``train`` lane. On the UI thread afterwards:
        ``done(result)``, ``failed(message)`` or ``cancelled()``, each after the bar has shown the
        job's last reports and noted that it ended. ``training`` clears the curves and preview first."""
        if self.job is not None:
            raise RuntimeError("the panel's job is still running")
        if training:
            for plot in self.plots:
                plot.clear_data()
        self.clock.reset()
        self._pending_preview = None
        self._message = label + "…"
        self._set_bar(0.0)  # no busy animation: each frame of it would repaint the window
        self.status.setText(self._message)
        job = jobs.create(fn, label, lane="train", heavy=True)
        job.progress.connect(self._on_progress)
        job.metrics.connect(self._on_metrics)
        job.preview.connect(self._on_preview)
        job.finished.connect(lambda result: self._ended(done, result))
        job.failed.connect(lambda message: self._failed(message, failed))
        job.cancelled.connect(lambda: self._ended(cancelled))
        self.job = job
        self.cancel_btn.setEnabled(True)
        self.busy_changed.emit(True)
        jobs.start(job)
        return job

    def cancel(self) -> None:
        """Cancel the running job (only this one); its ``cancelled`` or ``done`` follows."""
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")

    def _ended(self, then: Callable | None, *args: Any) -> None:
        self.flush()
        self.job = None
        self.cancel_btn.setEnabled(False)
        self.busy_changed.emit(False)
        if then is not None:
            then(*args)

    def _failed(self, message: str, then: Callable[[str], None] | None) -> None:
        self._ended(None)
        self.status.setText(f"Failed: {message}")
        if then is not None:
            then(message)

    def finish(self, text: str) -> None:
        """A job ended well: the bar full, ``text`` in the status line."""
        self._set_bar(1.0)
        self.status.setText(text)

    # what the job reports ------------------------------------------------------------------------
    def _on_progress(self, step: float, total: float, message: str) -> None:
        if total > 0:
            self.clock.report(step / total)
        if message:
            self._message = message
        self._schedule()

    def _on_metrics(self, step: float, values: dict) -> None:
        for plot in self.plots:
            plot.add(step, values)
        self._schedule()

    def _on_preview(self, preview: Any) -> None:
        if isinstance(preview, MeshPreview):  # a surface: the panel shows it in the scene
            self.surface.emit(preview)
            return
        self._pending_preview = preview  # only the newest is drawn
        self._schedule()

    def _schedule(self) -> None:
        if not self._show_pending:
            self._show_pending = True
            # with the bar as context: a flush still queued when the panel is deleted never runs
            QTimer.singleShot(FLUSH_MS, self, self.flush)

    def flush(self) -> None:
        """Show what the job reported since the last call, in one repaint."""
        self._show_pending = False
        for plot in self.plots:
            if plot.dirty:
                plot.redraw()
        if self._pending_preview is not None:
            preview, self._pending_preview = self._pending_preview, None
            self.preview.show_preview(preview)
        if self.job is None:
            return
        self._set_bar(self.clock.frac)
        self.status.setText(" · ".join(x for x in (self._message, self.clock.elapsed(), self.clock.left()) if x))

    def _set_bar(self, frac: float) -> None:
        # QProgressBar.setValue repaints at once; with updates off it only schedules a repaint,
        # which Qt then merges with the status text's into one
        self.progress.setUpdatesEnabled(False)
        self.progress.setValue(int(round(1000 * min(max(frac, 0.0), 1.0))))
        self.progress.setUpdatesEnabled(True)

    def curve(self, name: str) -> tuple[list[float], list[float]]:
        """The points of metric ``name`` so far (steps, values): empty lists if none."""
        for plot in self.plots:
            if name in plot.data:
                return plot.data[name]
        return [], []
