"""Benchmark: IDR's surface against the visual hull of the same masks, held-out PSNR, and camera
refinement from noisy poses.

    .venv/bin/python bench/idr_peer.py [--mesh globe|nut|PATH] [--minutes 15] [--size 128]
                                       [--views 120] [--test 20] [--refine-minutes 7.5] [--no-refine]
                                       [--work DIR]   (an interrupted run's folder: finished fits reused)

Drives the commands a user types (``capture``, ``fit idr``, ``export-mesh``, ``evaluate``) as
subprocesses, one after another (never two fits at once on the 2 cores):

1. a specular capture (``main.py capture``, 100 training + 20 held-out views at 128x128);
2. the peer, in this process: the visual hull carved from the same training masks on a 128^3
   grid (``plugins/idr/hull.py``), its surface by flying edges;
3. ``fit idr`` for ``--minutes`` (wall clock), ``export-mesh --resolution 256``, ``evaluate`` on
   the held-out views;
4. camera refinement: the training poses perturbed by 3 degrees (random axis) and 3 % of the
   camera distance (random direction), fitted with and without ``--refine-cameras`` for
   ``--refine-minutes`` each; the pose errors before and after, and both surfaces' Chamfer.

Chamfer-L1: the mean of the two directed mean distances between 100k points sampled uniformly
(by area) on each surface, in % of the true mesh's bounding-box diagonal. Results go to
bench/results/idr_peer_MESH_SIZEpx_Mmin.json with the load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
os.environ.pop("DISPLAY", None)
OFFICIAL = "the official IDR code: 6.5-8 GPU hours per DTU scene (paper / repository)"


def shipped_mesh(name: str) -> str:
    import pyvista.examples as ex

    folder = Path(ex.__file__).parent
    return str(folder / {"globe": "globe.vtk", "nut": "nut.ply", "ant": "ant.ply"}.get(name, name))


def run(*args: str) -> tuple[str, float]:
    t = time.monotonic()
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                       env=dict(os.environ))
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed: {r.stderr.strip()}")
    return r.stdout.strip().splitlines()[-1], time.monotonic() - t


def surface_samples(points: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniform by area on a triangle mesh."""
    rng = np.random.default_rng(seed)
    tri = points[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(faces), n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def chamfer_percent(mesh, truth, diag: float, n: int = 100_000) -> float:
    from scipy.spatial import cKDTree

    a = surface_samples(np.asarray(mesh.points), np.asarray(mesh.faces), n, 1)
    b = surface_samples(np.asarray(truth.points), np.asarray(truth.faces), n, 2)
    return float(100 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2 / diag)


def visual_hull(scene: Path, res: int = 128):
    """The peer: the hull of the training masks on a res^3 grid around the common volume."""
    import pyvista as pv

    from plugins.idr.hull import carve, common_volume
    from viewer.io.photosets import load_viewset
    from viewer.model.geometry import Mesh

    frames = load_viewset(scene).split("train")
    views = [(f.camera, f.alpha >= 0.5) for f in frames]
    centre, radius = common_volume(views)
    lo, hi = centre - 1.05 * radius, centre + 1.05 * radius
    occ = carve(views, lo, hi, res).astype(np.float32)
    step = (hi - lo) / res
    grid = pv.ImageData(dimensions=occ.shape, spacing=tuple(step), origin=tuple(lo + step / 2))
    grid.point_data["occ"] = occ.ravel(order="F")
    surf = grid.contour([0.5], scalars="occ", method="flying_edges").triangulate()
    return Mesh(np.asarray(surf.points), np.asarray(surf.faces).reshape(-1, 4)[:, 1:])


def perturb(scene: Path, out: Path, degrees: float, fraction: float, seed: int = 0) -> None:
    """A copy of ``scene`` whose training poses are off by ``degrees`` about a random axis and
    ``fraction`` of the camera's distance from the cameras' common point."""
    from plugins.idr.hull import axes_meeting_point
    from viewer.io.photosets import load_viewset

    shutil.copytree(scene, out)
    rng = np.random.default_rng(seed)
    centre = axes_meeting_point(load_viewset(scene).cameras)
    js = out / "transforms_train.json"
    data = json.loads(js.read_text())
    for fr in data["frames"]:
        m = np.asarray(fr["transform_matrix"], float)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        a = np.radians(degrees)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
        shift = rng.normal(size=3)
        shift *= fraction * np.linalg.norm(m[:3, 3] - centre) / np.linalg.norm(shift)
        m[:3, :3] = rot @ m[:3, :3]
        m[:3, 3] += shift
        fr["transform_matrix"] = m.tolist()
    js.write_text(json.dumps(data, indent=1))


def pose_errors(true_scene: Path, noisy_scene: Path, ckpt: Path | None) -> dict:
    """Median rotation (degrees) and centre error (% of the camera distance) of the training
    poses: as given (noisy), and after the checkpoint's learned corrections."""
    from plugins.idr import PLUGIN
    from plugins.idr.fit import corrected_camera
    from plugins.idr.hull import axes_meeting_point
    from viewer.io.photosets import load_viewset

    truth, noisy = load_viewset(true_scene).split("train"), load_viewset(noisy_scene).split("train")
    centre = axes_meeting_point([f.camera for f in truth])
    model = PLUGIN.load(ckpt) if ckpt is not None else None

    def errors(cams):
        rot, pos = [], []
        for t, c in zip(truth, cams):
            r = t.camera.c2w[:3, :3].T @ c.c2w[:3, :3]
            rot.append(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
            pos.append(100 * np.linalg.norm(c.center - t.camera.center) / np.linalg.norm(t.camera.center - centre))
        return {"rotation_deg_median": float(np.median(rot)), "centre_pct_median": float(np.median(pos))}

    out = {"given": errors([f.camera for f in noisy])}
    if model is not None:
        out["refined"] = errors([corrected_camera(model, f.camera, i) for i, f in enumerate(noisy)])
    return out


def fit_and_measure(scene: Path, work: Path, tag: str, minutes: float, size: int, truth, diag, extra=()) -> dict:
    from viewer.io import load_path

    ck, surf = work / f"ck-{tag}", work / f"{tag}.ply"
    if (ck / "config.json").is_file() and surf.is_file():  # --work of an interrupted run: measured again, not refitted
        m = json.loads((ck / "config.json").read_text())["metrics"]
        fit, secs = {k: m.get(k) for k in ("heldout_psnr", "steps", "seconds", "stopped_by")}, float("nan")
    else:
        line, secs = run("fit", "idr", "--scene", str(scene), "--out", str(ck), "--minutes", str(minutes),
                         "--size", str(size), "--quiet", *extra)
        fit = json.loads(line)
        run("export-mesh", "--checkpoint", str(ck), "--out", str(surf), "--resolution", "256")
    ev = json.loads(run("evaluate", "--checkpoint", str(ck), "--scene", str(scene))[0])
    return {"fit": fit, "fit_wall_s": round(secs, 1), "chamfer_pct": chamfer_percent(load_path(surf), truth, diag),
            "heldout_psnr": ev["psnr"], "heldout_ssim": ev["ssim"], "checkpoint": str(ck)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", default="globe")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--refine-minutes", type=float, default=7.5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=120)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--no-refine", action="store_true")
    ap.add_argument("--work", type=Path, help="the folder of an interrupted run: what it finished is reused")
    args = ap.parse_args()
    from viewer.io import load_path

    work = args.work or Path(tempfile.mkdtemp(prefix="idr-peer-"))
    load0 = os.getloadavg()
    scene = work / "scene"
    if not scene.is_dir():
        run("capture", shipped_mesh(args.mesh), "--out", str(scene), "--views", str(args.views), "--size",
            str(args.size), "--test-fraction", str(args.test / args.views))
    truth = load_path(scene / "mesh.obj")
    b = np.asarray(truth.bounds()).reshape(3, 2)
    diag = float(np.linalg.norm(b[:, 1] - b[:, 0]))
    t = time.monotonic()
    hull = visual_hull(scene)
    result = {"mesh": args.mesh, "size": args.size, "views": args.views, "test": args.test, "minutes": args.minutes,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "loadavg_start": load0, "official": OFFICIAL,
              "visual_hull": {"chamfer_pct": chamfer_percent(hull, truth, diag), "seconds": round(time.monotonic() - t, 1),
                              "grid": 128}}
    print(json.dumps(result["visual_hull"]), flush=True)
    result["idr"] = fit_and_measure(scene, work, "idr", args.minutes, args.size, truth, diag)
    print(json.dumps(result["idr"]), flush=True)
    if not args.no_refine:
        noisy = work / "noisy"
        if not noisy.is_dir():
            perturb(scene, noisy, 3.0, 0.03)
        for tag, extra in (("noisy", ()), ("refined", ("--refine-cameras",))):
            r = fit_and_measure(noisy, work, tag, args.refine_minutes, args.size, truth, diag, extra)
            r["poses"] = pose_errors(scene, noisy, Path(r["checkpoint"]) if extra else None)
            result[f"idr_{tag}"] = r
            print(json.dumps(r), flush=True)
    result["loadavg_end"] = os.getloadavg()
    out = ROOT / "bench" / "results" / f"idr_peer_{Path(args.mesh).stem}_{args.size}px_{args.minutes:g}min.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
