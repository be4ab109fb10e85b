"""Shared fixtures: phantoms written to real files, and the CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# generated demo data (the rendering demo's capture) goes to a throw-away cache, never the user's
if "LUCID3D_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["LUCID3D_CACHE"] = tempfile.mkdtemp(prefix="lucid3d-test-cache-")
    atexit.register(shutil.rmtree, os.environ["LUCID3D_CACHE"], True)


def _start_xvfb() -> None:
    """An X server for the GUI tests, alive until this process has exited.

    pytest-xvfb stops its server when pytest unconfigures, before the interpreter exits; the
    views' native VTK windows (viewer/ui/vtk_widget.py) leave an Xlib connection that then
    fails at exit (exit status 1 after a green run). Here Xvfb is killed by a watchdog that
    waits for this process's end of a pipe to close, which happens only when the process is gone.
    """
    import shutil

    # a server of its own even under a desktop session (as pytest-xvfb did): no test window
    # appears on the user's screen; without Xvfb installed, the display there is used
    if not sys.platform.startswith("linux") or not shutil.which("Xvfb"):
        return
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1200x24", "-nolisten", "tcp",
                             "+extension", "GLX"], pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()
    if not number:
        import warnings

        warnings.warn(f"Xvfb did not start (exit status {xvfb.wait()}): GUI tests use the display there is")
        return
    # the watchdog reads a pipe whose write end is a bare descriptor of this process: Python
    # never closes it (a file object would be closed while the interpreter shuts down, before
    # the Xlib connection's last I/O), the kernel does when the process is gone
    watch_read, watch_write = os.pipe()
    globals()["_XVFB_WATCH_FD"] = watch_write
    subprocess.Popen(["sh", "-c", f"read _; kill {xvfb.pid}"], stdin=watch_read, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(watch_read)
    os.environ["DISPLAY"] = f":{number}"
    os.environ.pop("WAYLAND_DISPLAY", None)


def pytest_configure(config) -> None:
    _start_xvfb()


# the phantom: body ellipse, a bright sphere in the patient's left-anterior-superior corner
PHANTOM_SHAPE = (64, 56, 40)
PHANTOM_AFFINE = np.array([[-2.0, 0, 0, 60.0], [0, -2.0, 0, 50.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
SPHERE_IJK = (44, 14, 30)  # i -> patient left (x decreases), j -> posterior, k -> superior
SPHERE_R = 4


def phantom_arrays() -> tuple[np.ndarray, np.ndarray]:
    i, j, k = np.indices(PHANTOM_SHAPE)
    img = np.full(PHANTOM_SHAPE, -1000, np.int16)
    img[((i - 32) / 28.0) ** 2 + ((j - 28) / 24.0) ** 2 < 1] = 40
    sphere = (i - SPHERE_IJK[0]) ** 2 + (j - SPHERE_IJK[1]) ** 2 + (k - SPHERE_IJK[2]) ** 2 <= SPHERE_R**2
    img[sphere] = 1500
    lab = np.zeros(PHANTOM_SHAPE, np.uint8)
    lab[(i - 24) ** 2 + (j - 30) ** 2 + (k - 15) ** 2 <= 36] = 1
    lab[(i - 36) ** 2 + (j - 34) ** 2 + (k - 15) ** 2 <= 16] = 2
    return img, lab


def sphere_ras() -> np.ndarray:
    return PHANTOM_AFFINE[:3, :3] @ np.array(SPHERE_IJK, float) + PHANTOM_AFFINE[:3, 3]


@pytest.fixture
def phantom_files(tmp_path) -> tuple[Path, Path]:
    """(image.nii.gz, labels.nii.gz) of the phantom, written with nibabel."""
    img, lab = phantom_arrays()
    ip, lp = tmp_path / "phantom.nii.gz", tmp_path / "phantom_seg.nii.gz"
    nib.save(nib.Nifti1Image(img, PHANTOM_AFFINE), ip)
    nib.save(nib.Nifti1Image(lab, PHANTOM_AFFINE), lp)
    return ip, lp


def headless_env() -> dict[str, str]:
    """The environment of a server with no X at all: VTK falls back to EGL."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python main.py ARGS`` in a fresh process with no display."""
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=headless_env(), cwd=str(ROOT))


@pytest.fixture
def cli():
    return run_cli


def quiesce(qtbot):
    """A ``before_close_func`` for ``qtbot.addWidget(window, ...)``: stop the window's trainings and
    wait for its jobs before pytest-qt closes and deletes it. (pytest-qt does that before any
    fixture code after ``yield`` runs; waiting there spun the event loop on a deleted window.)"""

    def run(win) -> None:
        if getattr(win, "render_panel", None) is not None:
            win.render_panel.shutdown()
        win.jobs.cancel_all()
        qtbot.waitUntil(lambda: not win.jobs.busy(), timeout=60000)

    return run


@pytest.fixture
def app_window(qtbot):
    """The real main window, shown; at the end its jobs are cancelled and waited for (a worker
    finishing after the window is gone would touch deleted Qt objects), then it is closed."""
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win, before_close_func=quiesce(qtbot))
    win.show()
    qtbot.waitExposed(win)
    yield win


@pytest.fixture(autouse=True)
def _collect_windows_on_the_main_thread(request):
    """After a GUI test, its closed windows (Qt widgets, VTK render windows in reference cycles)
    are destroyed here, on the main thread, not by an automatic collection that a later test's
    worker thread happens to trigger."""
    yield
    if request.node.get_closest_marker("gui") is not None:
        import gc

        gc.collect()
