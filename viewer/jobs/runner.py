"""Background jobs on Qt: the only bridge between worker threads and the Qt event loop.

(``viewer.jobs.progress`` holds the Qt-free part: plugins and headless commands import it.)

A job is one call ``fn(progress)`` in a worker thread. Its :class:`Progress` reports
step/total and a message, and raises :class:`Cancelled` inside the worker the moment the user
cancels. Results come back on the UI thread through Qt signals (queued across threads), so the
UI thread never waits on a job.

The API is create → connect → start::

    job = runner.create(fn, "Training unet3d", lane="train", heavy=True)
    job.metrics.connect(plot)          # every signal wired before the work can emit anything
    runner.start(job)                  # or runner.submit(fn, label, on_done=..., on_error=...)

**Lanes** are separate worker pools, so a ten-minute training never queues a file load or a
surface build behind it: ``"io"`` (loads, saves, scans: what the status bar shows and its Cancel
stops), ``"view"`` (surfaces, volume uploads, 3D preparation) and ``"train"`` (training and
inference). **Heavy jobs** (torch work that holds both cores) switch on the responsiveness
policy while at least one runs: a short GIL switch interval so the UI thread gets its turn
within a millisecond; Python's automatic garbage collection switched off, the UI thread
collecting every second instead (an automatic collection runs in whichever thread allocates,
and a cycle holding a Qt widget or a VTK render window must never be destroyed in a worker
thread); and, when the last one ends, ``gc.freeze()`` of the long-lived
objects the work created, so later full collections stay short (docs/PERFORMANCE.md, UI
stall). Every worker thread
runs at a lower CPU priority than the UI thread (:func:`background_priority`).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from ..model.errors import LoadError
from .progress import Cancelled, Progress, TerminalProgress

__all__ = ["Cancelled", "Progress", "TerminalProgress", "Job", "JobRunner", "LANES", "HEAVY_SWITCH_INTERVAL"]


BACKGROUND_NICE = 10
LANES = {"io": 2, "view": 1, "train": 1}  # lane -> worker threads
HEAVY_SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005
GC_INTERVAL_MS = 1000  # while heavy jobs run, the UI thread collects young garbage this often


def background_priority(nice: int | None = None) -> None:
    """Give the calling (worker) thread a lower CPU priority than the UI thread.

    On Linux ``nice`` is per thread and inherited by the threads it creates, so torch's
    intra-op (OpenMP) threads started from a worker run at the same low priority: when training
    holds both cores, the scheduler still hands the UI thread the CPU the moment it has an
    event to handle. Elsewhere, or where it is not allowed, this does nothing. ``nice``
    defaults to the module's ``BACKGROUND_NICE`` at call time (``bench/ui_stall.py --nice 0``
    measures the window without it).
    """
    nice = BACKGROUND_NICE if nice is None else nice
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except (AttributeError, OSError):
        pass


class Job(QObject):
    """One background call. Signals arrive on the UI thread.

    ``state`` goes ``"created"`` → ``"queued"`` → ``"running"`` → ``"done"``/``"failed"``/``"cancelled"``.
    """

    progress = Signal(float, float, str)  # step, total, message
    metrics = Signal(float, object)  # step, {name: value}
    preview = Signal(object)
    finished = Signal(object)  # the function's return value
    failed = Signal(str)  # a one-line message for a dialog
    cancelled = Signal()

    def __init__(self, fn: Callable[[Progress], Any], label: str = "", lane: str = "io",
                 heavy: bool = False) -> None:
        super().__init__()
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; one of {', '.join(LANES)}")
        self.fn, self.label, self.lane, self.heavy = fn, label, lane, heavy
        self.control = Progress(self.progress.emit, self.metrics.emit, self.preview.emit)
        self.state = "created"

    @property
    def done(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def cancel(self) -> None:
        """Stop this job (only this one): at its next progress call, or before it starts."""
        self.control.cancel()

    def run(self) -> None:  # in the worker thread
        self.state = "running"
        try:
            if self.control.cancelled:
                raise Cancelled()
            result = self.fn(self.control)
        except Cancelled:
            self.state = "cancelled"
            self.cancelled.emit()
            return
        except LoadError as exc:
            self._fail(str(exc))
            return
        except MemoryError:
            self._fail(f"{self.label}: not enough memory")
            return
        except Exception as exc:  # surfaced as a dialog, never a crash of the window
            traceback.print_exc()
            self._fail(f"{self.label}: {type(exc).__name__}: {' '.join(str(exc).split())}")
            return
        self.state = "done"
        self.finished.emit(result)

    def _fail(self, message: str) -> None:
        self.state = "failed"
        self.failed.emit(message)


class JobRunner(QObject):
    """Runs jobs in per-lane thread pools and keeps them alive until they end."""

    job_started = Signal(object)
    job_ended = Signal(object)

    def __init__(self, lanes: dict[str, int] | None = None) -> None:
        super().__init__()
        self._pools = {
            name: ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"lucid3d-{name}",
                                     initializer=background_priority)
            for name, n in (lanes or LANES).items()
        }
        self.jobs: list[Job] = []
        self.heavy_running = 0
        self._switch = sys.getswitchinterval()
        self._gc_was_enabled = gc.isenabled()
        self._gc_timer = QTimer(self)  # the UI thread's collections while heavy jobs run
        self._gc_timer.setInterval(GC_INTERVAL_MS)
        self._gc_timer.timeout.connect(lambda: gc.collect(1))

    # create -> connect -> start ------------------------------------------------------------------
    def create(self, fn: Callable[[Progress], Any], label: str = "", lane: str = "io",
               heavy: bool = False) -> Job:
        """A job not yet running: connect its signals, then :meth:`start` it."""
        if lane not in self._pools:
            raise ValueError(f"unknown lane {lane!r}; one of {', '.join(self._pools)}")
        return Job(fn, label, lane, heavy)

    def start(self, job: Job) -> Job:
        if job.state != "created":
            raise RuntimeError(f"job {job.label!r} was already started")
        for sig in (job.finished, job.failed, job.cancelled):
            sig.connect(lambda *_, j=job: self._ended(j))
        job.state = "queued"
        self.jobs.append(job)
        if job.heavy:
            self._heavy_started()
        self.job_started.emit(job)
        self._pools[job.lane].submit(job.run)
        return job

    def submit(self, fn: Callable[[Progress], Any], label: str = "",
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None, lane: str = "io",
               heavy: bool = False) -> Job:
        """create + connect ``on_done``/``on_error`` + start."""
        job = self.create(fn, label, lane, heavy)
        if on_done is not None:
            job.finished.connect(on_done)
        if on_error is not None:
            job.failed.connect(on_error)
        return self.start(job)

    def run_async(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Adapter for the render room: ``work()`` in the view lane, ``done(result)`` on the UI thread."""
        self.submit(lambda _p: work(), "preparing the 3D view", on_done=done, lane="view")

    # heavy-job policy --------------------------------------------------------------------------
    def _heavy_started(self) -> None:
        if self.heavy_running == 0:
            self._switch = sys.getswitchinterval()
            # keeps the UI thread's turn short while torch's Python side holds the GIL
            sys.setswitchinterval(min(self._switch, HEAVY_SWITCH_INTERVAL))
            self._gc_was_enabled = gc.isenabled()
            gc.disable()
            self._gc_timer.start()
        self.heavy_running += 1

    def _heavy_ended(self) -> None:
        self.heavy_running = max(0, self.heavy_running - 1)
        if self.heavy_running == 0:
            self._policy_off()
            # the work made many long-lived objects (modules, tensors' wrappers): keep them out of
            # the full collections that would otherwise stall the UI thread for 100+ ms
            gc.collect()
            gc.freeze()

    def _policy_off(self) -> None:
        """Undo what :meth:`_heavy_started` switched on (the last heavy job ended, or shutdown)."""
        sys.setswitchinterval(self._switch)
        self._gc_timer.stop()
        if self._gc_was_enabled:
            gc.enable()

    def _ended(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
            if job.heavy:
                self._heavy_ended()
        self.job_ended.emit(job)

    # queries and cancelling -------------------------------------------------------------------
    def busy(self, lane: str | None = None) -> bool:
        return any(lane is None or j.lane == lane for j in self.jobs)

    def running(self, lane: str | None = None) -> list[Job]:
        return [j for j in self.jobs if lane is None or j.lane == lane]

    def cancel_lane(self, lane: str) -> None:
        """Cancel the jobs of one lane (the status bar's Cancel: loads, never a training)."""
        for job in self.running(lane):
            job.cancel()

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            job.cancel()

    def shutdown(self) -> None:
        """Cancel everything; no job that is still running is heard from again (its window is
        closing: a result delivered later would touch deleted widgets)."""
        self.cancel_all()
        for job in self.jobs:
            job.blockSignals(True)  # what it emits from now on goes nowhere
            QCoreApplication.removePostedEvents(job)  # and what it emitted is not delivered
        # kept referenced here, so that no Job (a QObject of this thread) is ever freed by a worker
        # thread dropping the last reference; no longer counted as running
        self._shut_down_jobs, self.jobs = self.jobs, []
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        if self.heavy_running:
            self.heavy_running = 0
            self._policy_off()
