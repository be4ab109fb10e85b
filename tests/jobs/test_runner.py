"""The job runner: work in worker threads at a lower CPU priority than the UI thread."""

from __future__ import annotations

import os
import sys
import threading
import time

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


# the jobs API: create -> connect -> start, lanes, one-job cancel, the heavy-job policy ---------

def _wait_for(qtbot, job, timeout=10000):
    qtbot.waitUntil(lambda: job.done, timeout=timeout)


def test_signals_connected_before_start_see_the_first_report(qtbot):
    """No handshake: a job that reports at once is heard, because it cannot run before start()."""
    runner = JobRunner()
    got = []

    def work(progress):
        progress.metrics(0, loss=1.5)  # the very first thing it does
        return 7

    job = runner.create(work, "first report", lane="train")
    assert job.state == "created"
    job.metrics.connect(lambda step, values: got.append(values["loss"]))
    job.finished.connect(lambda v: got.append(v))
    runner.start(job)
    _wait_for(qtbot, job)
    qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
    assert got == [1.5, 7] and job.state == "done"
    with pytest.raises(RuntimeError):
        runner.start(job)


@pytest.mark.parametrize("lane", ["io", "view"])
def test_a_long_training_never_queues_other_lanes(qtbot, lane):
    runner = JobRunner()
    release = threading.Event()
    train = runner.submit(lambda p: release.wait(20), "10-minute training", lane="train", heavy=True)
    other = runner.submit(lambda p: "loaded", "a file load", lane=lane)
    try:
        _wait_for(qtbot, other, timeout=5000)
        assert other.state == "done" and not train.done
        # a second training waits for the first: one training lane
        second = runner.submit(lambda p: "second", "another training", lane="train")
        qtbot.wait(200)
        assert second.state == "queued"
    finally:
        release.set()
    _wait_for(qtbot, second)
    runner.shutdown()


def test_cancel_stops_one_job_and_the_status_bar_cancel_spares_trainings(qtbot):
    runner = JobRunner()

    def loop(progress):
        while True:
            progress.update(0, 1)  # raises Cancelled once cancelled
            time.sleep(0.01)

    train = runner.submit(loop, "training", lane="train", heavy=True)
    load_a = runner.submit(loop, "load a")
    load_b = runner.submit(loop, "load b")
    qtbot.wait(100)
    load_a.cancel()
    _wait_for(qtbot, load_a)
    assert load_a.state == "cancelled" and not load_b.done and not train.done
    runner.cancel_lane("io")  # what the status bar's Cancel does
    _wait_for(qtbot, load_b)
    qtbot.wait(100)
    assert load_b.state == "cancelled" and not train.done
    train.cancel()
    _wait_for(qtbot, train)
    assert train.state == "cancelled"


def test_a_job_cancelled_while_queued_never_runs(qtbot):
    runner = JobRunner(lanes={"io": 1})
    release = threading.Event()
    ran = []
    first = runner.submit(lambda p: release.wait(10), "first")
    queued = runner.submit(lambda p: ran.append(1), "queued")
    queued.cancel()
    release.set()
    _wait_for(qtbot, queued)
    assert queued.state == "cancelled" and ran == [] and first.state == "done"


def test_heavy_policy_is_counted_per_running_job(qtbot):
    import gc

    runner = JobRunner()
    before = sys.getswitchinterval()
    frozen_before = gc.get_freeze_count()
    gates = [threading.Event(), threading.Event()]
    a = runner.submit(lambda p: gates[0].wait(10), "train a", lane="train", heavy=True)
    b = runner.submit(lambda p: gates[1].wait(10), "infer b", lane="io", heavy=True)
    light = runner.submit(lambda p: None, "light", lane="view")
    _wait_for(qtbot, light)
    assert runner.heavy_running == 2 and sys.getswitchinterval() == pytest.approx(0.001)
    gates[0].set()
    _wait_for(qtbot, a)
    qtbot.wait(50)
    assert runner.heavy_running == 1 and sys.getswitchinterval() == pytest.approx(0.001)
    gates[1].set()
    _wait_for(qtbot, b)
    qtbot.waitUntil(lambda: runner.heavy_running == 0, timeout=5000)
    assert sys.getswitchinterval() == pytest.approx(before)
    assert gc.get_freeze_count() >= frozen_before  # the work's objects frozen out of full collections
    gc.unfreeze()


def test_garbage_of_heavy_work_is_collected_on_the_ui_thread(qtbot):
    """A cycle made in a worker (think: a closed window's widgets) is destroyed by the UI thread,
    never by the worker whose allocations would have triggered an automatic collection."""
    import gc

    runner = JobRunner()
    runner._gc_timer.setInterval(50)
    where: list[str] = []

    class Node:
        def __del__(self):
            where.append(threading.current_thread().name)

    def work(progress):
        assert not gc.isenabled()  # no automatic collection can start in this thread
        for _ in range(200):
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
        junk = [[i] for i in range(200_000)]  # allocations that would trigger collections
        del junk
        time.sleep(0.3)  # the UI thread's timer collects meanwhile

    job = runner.submit(work, "heavy", lane="train", heavy=True)
    _wait_for(qtbot, job)
    qtbot.waitUntil(lambda: runner.heavy_running == 0, timeout=5000)
    assert gc.isenabled()
    gc.collect()
    assert len(where) == 400 and set(where) == {threading.main_thread().name}, set(where)
    gc.unfreeze()


def test_unknown_lane_is_refused():
    with pytest.raises(ValueError, match="lane"):
        JobRunner().create(lambda p: None, "x", lane="gpu")


@pytest.mark.parametrize("when", ["finishes after", "finished before"])
def test_after_shutdown_no_job_is_heard_from(qtbot, when):
    """A window closes while a load runs: the load's result never reaches its (deleted) widgets,
    whether the worker ends after the shutdown or had already posted its result."""
    runner = JobRunner()
    heard, release = [], threading.Event()

    def work(progress):
        release.wait(10)
        return "late result"

    job = runner.submit(work, "a load", on_done=heard.append, on_error=heard.append)
    job.metrics.connect(lambda *a: heard.append(a))
    if when == "finished before":
        release.set()
        deadline = time.monotonic() + 10
        while not job.done and time.monotonic() < deadline:  # its result posted, not yet delivered
            time.sleep(0.01)
        assert job.done
    runner.shutdown()
    release.set()
    assert not runner.busy()
    qtbot.wait(300)
    assert heard == []
