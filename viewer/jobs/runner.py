"""Background jobs on Qt: the only bridge between worker threads and the Qt event loop.

(``viewer.jobs.progress`` holds the Qt-free part: plugins and headless commands import it.)

A job is one call ``fn(progress)`` in a worker thread. Its :class:`Progress` reports
step/total and a message, and raises :class:`Cancelled` inside the worker the moment the user
cancels. Results come back on the UI thread through Qt signals (queued across threads), so the
UI thread never waits on a job.
"""

from __future__ import annotations

import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from ..model.errors import LoadError
from .progress import Cancelled, Progress, TerminalProgress

__all__ = ["Cancelled", "Progress", "TerminalProgress", "Job", "JobRunner"]


BACKGROUND_NICE = 10


def background_priority(nice: int = BACKGROUND_NICE) -> None:
    """Give the calling (worker) thread a lower CPU priority than the UI thread.

    On Linux ``nice`` is per thread and inherited by the threads it creates, so torch's
    intra-op (OpenMP) threads started from a worker run at the same low priority: when training
    holds both cores, the scheduler still hands the UI thread the CPU the moment it has an
    event to handle. Elsewhere, or where it is not allowed, this does nothing.
    """
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except (AttributeError, OSError):
        pass


class Job(QObject):
    """One background call. Signals arrive on the UI thread."""

    progress = Signal(float, float, str)  # step, total, message
    metrics = Signal(float, object)  # step, {name: value}
    preview = Signal(object)
    finished = Signal(object)  # the function's return value
    failed = Signal(str)  # a one-line message for a dialog
    cancelled = Signal()

    def __init__(self, fn: Callable[[Progress], Any], label: str = "") -> None:
        super().__init__()
        self.fn, self.label = fn, label
        self.control = Progress(self.progress.emit, self.metrics.emit, self.preview.emit)
        self.done = False

    def cancel(self) -> None:
        self.control.cancel()

    def run(self) -> None:  # in the worker thread
        try:
            result = self.fn(self.control)
        except Cancelled:
            self.done = True
            self.cancelled.emit()
            return
        except LoadError as exc:
            self.done = True
            self.failed.emit(str(exc))
            return
        except MemoryError:
            self.done = True
            self.failed.emit(f"{self.label}: not enough memory")
            return
        except Exception as exc:  # surfaced as a dialog, never a crash of the window
            traceback.print_exc()
            self.done = True
            self.failed.emit(f"{self.label}: {type(exc).__name__}: {' '.join(str(exc).split())}")
            return
        self.done = True
        self.finished.emit(result)


class JobRunner(QObject):
    """Runs jobs on a small thread pool and keeps them alive until they end."""

    job_started = Signal(object)
    job_ended = Signal(object)

    def __init__(self, workers: int = 2) -> None:
        super().__init__()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lucid3d-job",
                                        initializer=background_priority)
        self.jobs: list[Job] = []

    def submit(self, fn: Callable[[Progress], Any], label: str = "",
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None) -> Job:
        job = Job(fn, label)
        if on_done is not None:
            job.finished.connect(on_done)
        if on_error is not None:
            job.failed.connect(on_error)
        for sig in (job.finished, job.failed, job.cancelled):
            sig.connect(lambda *_, j=job: self._ended(j))
        self.jobs.append(job)
        self.job_started.emit(job)
        self._pool.submit(job.run)
        return job

    def run_async(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Adapter for the render room: ``work()`` in a worker, ``done(result)`` on the UI thread."""
        self.submit(lambda _p: work(), "preparing the 3D view", on_done=done)

    def _ended(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.job_ended.emit(job)

    def busy(self) -> bool:
        return bool(self.jobs)

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            job.cancel()

    def shutdown(self) -> None:
        self.cancel_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
