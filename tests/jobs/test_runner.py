"""The job runner: work in worker threads at a lower CPU priority than the UI thread."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from viewer.jobs.runner import BACKGROUND_NICE, JobRunner


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_jobs_run_below_the_ui_threads_priority(qtbot):
    runner = JobRunner()
    seen = {}

    def work(_progress):
        def child():  # threads a job starts (torch's OpenMP team) inherit its priority
            seen["child"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        t = threading.Thread(target=child)
        t.start()
        t.join()
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with qtbot.waitSignal(runner.job_ended, timeout=10000):
        job = runner.submit(work, "nice check", on_done=lambda v: seen.setdefault("job", v))
    qtbot.waitUntil(lambda: "job" in seen, timeout=5000)
    ui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen["job"] >= max(ui, BACKGROUND_NICE) and seen["child"] >= BACKGROUND_NICE, (seen, ui, job)
