"""Benchmark: Deferred Neural Rendering against the fitted plain texture, held-out PSNR.

    .venv/bin/python bench/nr_fit.py [--mesh MESH] [--minutes 10] [--views 120] [--test 20] [--size 256]

Drives the same commands a user types (``capture``, ``fit``, ``evaluate``) as subprocesses, one
after another so neither competes with the other for the 2 cores: a specular capture of a mesh
pyvista ships (default: its globe, which has UVs but no texture file, so ``capture`` paints its
seeded procedural texture), 100 training and 20 held-out views at 256², then
``fit texture`` and ``fit dnr`` with the same wall-clock budget, then ``evaluate`` of each on the
held-out split. Results go to bench/results/nr_fit_MESH.json (``nr_fit_MESH_SIZEpx_Mmin.json`` for
other sizes and budgets), with the load average at start and end, and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shipped_mesh(name: str) -> str:
    import pyvista.examples as ex

    folder = Path(ex.__file__).parent
    return str(folder / {"globe": "globe.vtk", "airplane": "airplane.ply", "ant": "ant.ply"}.get(name, name))


def run(*args: str) -> tuple[str, float]:
    t = time.monotonic()
    env = dict(os.environ, VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow")
    env.pop("DISPLAY", None)
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r.stdout, time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", default="globe", help="globe, airplane, ant or a mesh path")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--views", type=int, default=120)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--specular", type=float, default=0.5)
    ap.add_argument("--methods", nargs="+", default=["texture", "dnr"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", help="keep scene and checkpoints here (default: a temp folder)")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="lucid3d-nr-"))
    work.mkdir(parents=True, exist_ok=True)
    scene = work / "scene"
    res: dict = {"load_average_start": [round(x, 2) for x in os.getloadavg()], "mesh": args.mesh, "views": args.views, "test_views": args.test, "size": args.size,
                 "minutes_budget": args.minutes, "device": args.device,
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    if not (scene / "transforms_train.json").exists():
        _, t = run("capture", shipped_mesh(args.mesh), "--out", str(scene), "--views", str(args.views),
                   "--size", str(args.size), "--test-fraction", str(args.test / args.views),
                   "--specular", str(args.specular), "--seed", "0")
        res["capture_seconds"] = round(t, 1)
    n_train = len(json.loads((scene / "transforms_train.json").read_text())["frames"])
    n_test = len(json.loads((scene / "transforms_test.json").read_text())["frames"])
    res["split"] = {"train": n_train, "test": n_test}
    for method in args.methods:
        ckpt = work / f"ckpt_{method}"
        _, t = run("fit", method, "--scene", str(scene), "--mesh", str(scene / "mesh.obj"), "--out", str(ckpt),
                   "--minutes", str(args.minutes), "--size", str(args.size), "--device", args.device)
        out, _ = run("evaluate", "--checkpoint", str(ckpt), "--scene", str(scene), "--split", "test")
        ev = json.loads(out)
        res[method] = {"fit_seconds": round(t, 1), "psnr": ev["psnr"], "ssim": ev.get("ssim")}
        print(method, json.dumps(res[method]), flush=True)
    if "texture" in res and "dnr" in res:
        res["dnr_minus_texture_db"] = res["dnr"]["psnr"] - res["texture"]["psnr"]
    print(json.dumps(res, indent=1))
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    res["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    # one file per setting: a short check must not overwrite the full-budget figures
    name = Path(args.mesh).stem + ("" if (args.size, args.minutes) == (256, 10.0) else f"_{args.size}px_{args.minutes:g}min")
    (out_dir / f"nr_fit_{name}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
