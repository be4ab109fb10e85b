"""Benchmark: time from the load call to the first drawn slice, against nibabel's raw load.

    .venv/bin/python bench/load_first_slice.py [--repeat 5] [--shape 512 512 300]

Writes a CT-like int16 volume (body, organs, bone, noise: it compresses like a real CT) as
.nii.gz and .nii, then, alternating in one process so both see the same cache and machine state:

- baseline: ``np.asanyarray(nib.load(path).dataobj)`` (nibabel's own raw load);
- Lucid3D: ``viewer.io.load_path`` -> ImageLayer -> Scene -> the axial SliceView (created before
  the clock starts, as the window's view exists before a file is dropped) -> one rendered frame.

For .nii the raw load is a memory map that reads nothing; the comparison there is against a full
read (``nib.load(path, mmap=False)``), and the memory-mapped figure is printed beside it.
Peak memory is measured in a fresh subprocess per format (peak RSS growth over the process
after imports and view set-up) and divided by the voxel array's size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.pop("DISPLAY", None)

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402


def make_ct(shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0], dtype=np.float32),
                       np.linspace(-1, 1, shape[1], dtype=np.float32), indexing="ij")
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    fat = ((x / 0.85) ** 2 + (y / 0.65) ** 2 > 0.8) & body
    liver = ((x + 0.3) / 0.35) ** 2 + ((y - 0.05) / 0.3) ** 2 < 1
    spine = (x / 0.08) ** 2 + ((y + 0.45) / 0.08) ** 2 < 1
    sl = np.full(shape[:2], -1000, np.int16)
    sl[body] = 40
    sl[fat] = -100
    sl[liver] = 60
    sl[spine] = 900
    vol = np.empty(shape, np.int16, order="F")
    for k in range(shape[2]):
        vol[:, :, k] = sl + rng.normal(0, 12, shape[:2]).astype(np.int16) * body
    return vol


def first_slice_ours(path: str, view) -> float:
    from viewer.io import load_path
    from viewer.model import layer_for

    t = time.perf_counter()
    layer = layer_for(load_path(path))
    view.scene.add(layer)
    view.renderer.GetRenderWindow().Render()
    dt = time.perf_counter() - t
    view.scene.remove(layer)
    return dt


def raw_nibabel(path: str, mmap=True) -> float:
    t = time.perf_counter()
    arr = np.asanyarray(nib.load(path, mmap=mmap).dataobj)
    dt = time.perf_counter() - t
    del arr
    return dt


def make_view():
    import pyvista as pv

    from viewer.model import Scene
    from viewer.render.slice_view import SliceView
    from viewer.render.vtkutil import quiet_vtk

    quiet_vtk()
    plotter = pv.Plotter(off_screen=True, window_size=(512, 512))
    view = SliceView(plotter.renderer, Scene(), "axial")
    plotter.renderer.GetRenderWindow().Render()  # the window exists before the file arrives
    return plotter, view


def peak_memory(path: str, nbytes: int) -> float:
    # VmHWM (peak RSS) is reset by writing 5 to clear_refs: the peak of the load alone, not of
    # imports or of this parent (ru_maxrss survives fork+exec and would count the parent's)
    code = f"""
import sys, gc
sys.path.insert(0, {str(ROOT)!r})
from bench.load_first_slice import make_view, first_slice_ours
def kb(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
p, v = make_view(); gc.collect()
base = kb('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')
first_slice_ours({path!r}, v)
print(max(kb('VmHWM:') - base, 0) / {nbytes})
"""
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    shape = tuple(args.shape)
    tmp = Path(tempfile.mkdtemp(prefix="lucid3d-bench-"))
    vol = make_ct(shape)
    aff = np.diag([-0.7, -0.7, 1.0, 1.0])
    files = {"nii.gz": tmp / "ct.nii.gz", "nii": tmp / "ct.nii"}
    for f in files.values():
        nib.save(nib.Nifti1Image(vol, aff), f)
    nbytes = vol.nbytes
    del vol
    plotter, view = make_view()
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.python_version()}", "shape": list(shape)}
    for fmt, path in files.items():
        path = str(path)
        first_slice_ours(path, view)  # warm the page cache and code paths
        raw_nibabel(path, mmap=(fmt == "nii.gz"))
        ours, base, mm = [], [], []
        for _ in range(args.repeat):
            gc.collect()
            base.append(raw_nibabel(path, mmap=(fmt == "nii.gz")))
            gc.collect()
            ours.append(first_slice_ours(path, view))
            if fmt == "nii":
                mm.append(raw_nibabel(path, mmap=True))
        r = {"ours_s": statistics.median(ours), "nibabel_s": statistics.median(base)}
        r["ratio"] = r["ours_s"] / r["nibabel_s"]
        if mm:
            r["nibabel_mmap_s"] = statistics.median(mm)
        r["peak_memory_x_array"] = peak_memory(path, nbytes)
        results[fmt] = r
        print(f"{fmt:7s} first slice {r['ours_s']*1000:8.1f} ms   nibabel raw "
              f"{r['nibabel_s']*1000:8.1f} ms   ratio {r['ratio']:.2f}   peak mem "
              f"{r['peak_memory_x_array']:.2f}x array" + (f"   (nibabel memmap {r['nibabel_mmap_s']*1000:.1f} ms)" if mm else ""))
    plotter.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    for f in files.values():
        f.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
