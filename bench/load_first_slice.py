"""Benchmark: time from the load call to the first drawn slice, against nibabel's raw load.

    .venv/bin/python bench/load_first_slice.py [--repeat 5] [--shape 512 512 300] [--no-isal]

Writes a CT-like int16 volume (body, organs, bone, noise: it compresses like a real CT) as
.nii.gz and .nii, then, alternating in one process so both see the same cache and machine state:

- baseline: ``np.asanyarray(nib.load(path).dataobj)`` (nibabel's own raw load);
- Lucid3D: ``viewer.io.load_path`` -> ImageLayer -> Scene -> the axial SliceView (created before
  the clock starts, as the window's view exists before a file is dropped) -> one rendered frame.

For .nii the raw load is a memory map that reads nothing; the comparison there is against a full
read (``nib.load(path, mmap=False)``), and the memory-mapped figure is printed beside it.
For .nii.gz two more pairs: ``main.py info``'s work (load + summary) against the same raw load,
and ``main.py convert``'s (load + write .nii.gz) against ``nib.save(nib.load(path), out)``.
Each figure is the median of ``--repeat`` runs with its min-max spread; the ratio is the median
of the per-run ratios (each run against the baseline run next to it), so a neighbour's load on
a shared machine hits both sides of a pair. The load average is printed before and after.
Peak memory is measured in a fresh subprocess per format (peak RSS growth over the process
after imports and view set-up) and divided by the voxel array's size.
``--no-isal`` hides python-isal (as if not installed): the zlib fallback's figures.
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


def peak_memory(path: str, nbytes: int, no_isal: bool = False) -> float:
    # VmHWM (peak RSS) is reset by writing 5 to clear_refs: the peak of the load alone, not of
    # imports or of this parent (ru_maxrss survives fork+exec and would count the parent's)
    code = f"""
import sys, gc
if {no_isal!r}:
    sys.modules["isal"] = None
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


def info_ours(path: str) -> float:
    """``main.py info``'s work: the load and the summary it prints (min, max, percentiles)."""
    from viewer.cli.files import info_dict
    from viewer.io import load_path

    t = time.perf_counter()
    info_dict(load_path(path))
    return time.perf_counter() - t


def convert_ours(path: str, out: str) -> float:
    """``main.py convert``'s work: the load and the atomic .nii.gz write."""
    from viewer.io import load_path, save_nifti

    t = time.perf_counter()
    save_nifti(load_path(path), out)
    return time.perf_counter() - t


def convert_nibabel(path: str, out: str) -> float:
    t = time.perf_counter()
    nib.save(nib.load(path), out)
    return time.perf_counter() - t


def pairs(ours, base, repeat: int, extra=None) -> dict:
    """Alternate ``base`` and ``ours`` ``repeat`` times: medians, min-max spreads, and the
    median of the per-run ratios."""
    a, b, e = [], [], []
    for _ in range(repeat):
        gc.collect()
        b.append(base())
        gc.collect()
        a.append(ours())
        if extra is not None:
            e.append(extra())
    r = {"ours_s": statistics.median(a), "ours_spread_s": [min(a), max(a)],
         "nibabel_s": statistics.median(b), "nibabel_spread_s": [min(b), max(b)],
         "ratio": statistics.median(x / y for x, y in zip(a, b)),
         "ratio_spread": [min(x / y for x, y in zip(a, b)), max(x / y for x, y in zip(a, b))]}
    if e:
        r["extra_s"] = statistics.median(e)
    return r


def _ms(r: dict, key: str) -> str:
    lo, hi = r[f"{key}_spread_s"]
    return f"{r[f'{key}_s'] * 1000:7.1f} ms ({lo * 1000:.0f}-{hi * 1000:.0f})"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-isal", action="store_true", help="hide python-isal: measure the zlib fallback")
    args = ap.parse_args()
    if args.no_isal:
        sys.modules["isal"] = None  # `import isal` now fails, as when it is not installed
    from viewer.io.common import gzip_backend

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
    results = {"machine": machine(), "shape": list(shape), "gzip": gzip_backend(),
               "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    print(f"{results['machine']}; gzip: {results['gzip']}; load average {results['load_average_before']}")
    for fmt, path in files.items():
        path = str(path)
        mmap = fmt == "nii.gz"  # .nii: against a full read (the memory map reads nothing)
        first_slice_ours(path, view)  # warm the page cache and code paths
        raw_nibabel(path, mmap=mmap)
        r = pairs(lambda: first_slice_ours(path, view), lambda: raw_nibabel(path, mmap=mmap), args.repeat,
                  extra=(lambda: raw_nibabel(path, mmap=True)) if fmt == "nii" else None)
        r["peak_memory_x_array"] = peak_memory(path, nbytes, args.no_isal)
        results[fmt] = r
        print(f"{fmt:7s} first slice {_ms(r, 'ours')}   nibabel raw {_ms(r, 'nibabel')}   ratio "
              f"{r['ratio']:.2f} ({r['ratio_spread'][0]:.2f}-{r['ratio_spread'][1]:.2f})   peak mem "
              f"{r['peak_memory_x_array']:.2f}x array"
              + (f"   (nibabel memmap {r['extra_s'] * 1000:.1f} ms)" if "extra_s" in r else ""))
    gz = str(files["nii.gz"])
    out_ours, out_nib = str(tmp / "out_ours.nii.gz"), str(tmp / "out_nib.nii.gz")
    for name, ours, base in (("info", lambda: info_ours(gz), lambda: raw_nibabel(gz)),
                             ("convert", lambda: convert_ours(gz, out_ours), lambda: convert_nibabel(gz, out_nib))):
        r = pairs(ours, base, args.repeat)
        results[name] = r
        print(f"{name:7s} (.nii.gz) ours {_ms(r, 'ours')}   nibabel {_ms(r, 'nibabel')}   ratio "
              f"{r['ratio']:.2f} ({r['ratio_spread'][0]:.2f}-{r['ratio_spread'][1]:.2f})")
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average after: {results['load_average_after']}")
    plotter.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
