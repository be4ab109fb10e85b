"""Benchmark: frames per second of a point renderer (NPBG's default network, splat + U-Net) at
256² for 500 k points, flying the app's orbit, on 1 and 2 torch threads; the current renderer
beside the same network drawing the other splat (``nearest point`` or ``front mean``, the
``splat_average`` setting the default does not use) and two earlier ones (kept below, verbatim in what they compute) in the same run: ``lobes
before``, the shading lobes made per width and interleaved (before 2026-12-02), and
``previous``, the full-frame U-Net, ``addmm`` projection and compacted z-buffer of before
2026-12-01 (with today's network).

    .venv/bin/python bench/npbg_fps.py [--points 500000] [--size 256] [--frames 12] [--runs 5]
                                       [--threads 1 2] [--shade N] [--no-splat-ab] [--result npbg_fps.json]
                                       [--coverage N]

``--coverage N`` (N > 1) draws with each pixel's covered share of N x N sub-cells (what a fit on
photos that blend the silhouette decides), beside the same network without it (``no share``) in
the same run, and nothing else.

* Cloud: ``--points`` points on the unit sphere's surface (the globe capture's ``points.ply`` is
  that shape); the network untrained (the cost does not depend on the weights).
* Orbit: the one a checkpoint fitted on a ``main.py capture`` of it stores (``orbit_defaults``
  of the capture's cameras: the bounding sphere fills the frame), drawn as ``render --orbit``
  and the app draw it (``plugin.orbit`` -> ``orbit_cameras``).
* A run draws ``--frames`` orbit frames; fps = frames / seconds. Reported: the median of
  ``--runs`` runs and their spread (min, max); the split of a frame into splat
  (:func:`~plugins._points.splat.splat_box`: projection, z-buffer, pyramid) and the rest
  (rasters, U-Net, compositing), medians over the frames of every run; the load average.

Results go to ``bench/results/npbg_fps.json`` and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


# --- the previous implementation (before the box crop and the row-wise projection) ------------

def _previous_project(points, camera):
    from plugins._points.splat import _NEAR, Projection

    w2c = camera.w2c
    rot = torch.as_tensor(w2c[:3, :3], dtype=torch.float32)
    t = torch.as_tensor(w2c[:3, :3] @ points.origin + w2c[:3, 3], dtype=torch.float32)
    pc = torch.addmm(t, points.local, rot.t())
    z = pc[:, 2]
    zs = torch.where(z > 0, z, torch.ones_like(z))
    u = pc[:, 0] / zs * float(camera.fx) + float(camera.cx)
    v = pc[:, 1] / zs * float(camera.fy) + float(camera.cy)
    keep = (z > _NEAR * points.extent) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return Projection(u, v, z, keep, camera.width, camera.height)


def _previous_zbuffer(proj, scales):
    from plugins._points.splat import _EMPTY, _ID_BITS, raster_sizes

    sizes = raster_sizes(proj.width, proj.height, scales)
    ids = torch.nonzero(proj.keep).squeeze(1)
    x = proj.u[ids].floor().long()
    y = proj.v[ids].floor().long()
    key = (proj.z[ids].contiguous().view(torch.int32).long() << _ID_BITS) | ids
    h, w = sizes[0]
    buf = torch.full((h * w,), _EMPTY, dtype=torch.int64)
    buf.scatter_reduce_(0, y * w + x, key, reduce="amin", include_self=True)
    keys = [buf.view(h, w)]
    for s in range(1, scales):
        hs, ws = sizes[s]
        keys.append(keys[-1].view(hs, 2, ws, 2).amin(dim=(1, 3)))
    return [torch.where(k == _EMPTY, torch.full_like(k, -1), k & ((1 << _ID_BITS) - 1)) for k in keys]


def _previous_splat(model, camera):
    from plugins._points.fit import point_set

    return _previous_zbuffer(_previous_project(point_set(model), camera), model.net.scales)


def _previous_render(model, camera):
    from plugins._nr.model import composite
    from plugins._points.data import point_batch

    with torch.inference_mode():
        ids = _previous_splat(model, camera)
        batch = point_batch([t[None] for t in ids], [camera], [0], [0], (camera.height, camera.width), "cpu")
        rgb, alpha, _ = model.net(batch)
        img = composite(rgb, alpha, list(model.background))
    return img[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()


# --- the shading input before the lobes were one matrix product (2026-12-02), verbatim in what it
# computes: exponentials per width, stacked and interleaved into the buffer

def _previous_lobe_fill(lobes, inputs, out):
    from plugins._nr.networks import _CUT
    import torch.nn.functional as F

    n = lobes.dirs.shape[0]
    s = (lobes.log_sharpness * lobes._SCALE).exp()
    r = inputs[..., 6:9].reshape(-1, 3)
    x = (r @ F.normalize(lobes.dirs, dim=1).t() - 1.0) * s
    e1 = torch.exp(x.clamp(min=_CUT))
    e4 = e1 * e1
    e4.mul_(e4).masked_fill_(x < _CUT / 4, 0.0)
    e16 = e4 * e4
    e16.mul_(e16).masked_fill_(x < _CUT / 16, 0.0)
    e1.masked_fill_(x < _CUT, 0.0)
    out.unflatten(-1, (n, 3)).view(-1, n, 3).copy_(torch.stack([e1, e4, e16], -1))


def _previous_shaded_input(net, full, batch):
    from plugins._points.network import shade_inputs

    ids = batch.ids[0]
    b, h, w = ids.shape
    c, k = full.shape[1], net.shade.k
    buf = torch.empty(b, h, w, c + 3 + k, dtype=full.dtype, device=full.device)
    buf[..., :c] = full.permute(0, 2, 3, 1)
    dirs = buf[..., c:c + 3]
    dirs.copy_(batch.dirs.to(full.dtype).permute(0, 2, 3, 1))
    g = buf[..., c + 3:]
    _previous_lobe_fill(net.shade, shade_inputs(net._normals_at(ids, full.dtype), dirs), g)
    g.mul_(buf[..., c - 1:c])
    m = max(0, min(c - 1 - 3, k))
    if m:
        buf[..., 3:3 + m].mul_(g[..., :m])
    return buf.permute(0, 3, 1, 2)


def _lobes_before(model, camera):
    """The current renderer with the shading input made as before the change."""
    from plugins._points.fit import render_points

    net = model.net
    net.shaded_input = lambda full, batch: _previous_shaded_input(net, full, batch)
    try:
        return render_points(model, camera)
    finally:
        del net.shaded_input


# --- the measurement -----------------------------------------------------------------------------

def make_model(n: int, size: int, settings: dict | None = None):
    """An untrained NPBG model of ``n`` points on the unit sphere (NPBG's default settings, but
    ``settings``), with the orbit a fit on a capture of it would store; the plugin and model."""
    from plugins._nr.fit import orbit_defaults
    from plugins._nr.model import NRModel
    from viewer.compute.capture import frame_cameras
    from viewer.model.geometry import PointCloud
    from viewer.plugins import get_plugin

    plugin = get_plugin("npbg", "renderer")
    cfg = asdict(plugin.Config(**(settings or {})))
    p = np.random.default_rng(1).normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    cloud = PointCloud(p)
    # the unit sphere's normals are its points (as a fit would estimate them: real lobe values)
    net = plugin.build(cfg, {"n_points": n, "normals": torch.from_numpy(p.astype(np.float32))})
    net = net.eval().to(memory_format=torch.channels_last)
    model = NRModel(net=net, plugin="npbg", config=cfg, mesh=None, points=cloud)
    model.meta["orbit"] = orbit_defaults(cloud, frame_cameras(cloud, 24, size, 40.0, seed=0))
    return plugin, model


def orbit(plugin, model, frames: int, size: int):
    from viewer.model.camera import orbit_cameras

    o = plugin.orbit(model)
    return orbit_cameras(frames, o.center, o.radius, size, elevation=o.elevation, view_angle=o.view_angle, up=o.up)


def measure(render, split, cams, runs: int) -> dict:
    """fps of ``runs`` runs over ``cams`` (median, min, max) and the per-frame split (ms)."""
    render(cams[0])  # first-call set-up (allocator, oneDNN kernels) is not a frame of the orbit
    fps, splat_ms, frame_ms = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        for c in cams:
            t = time.perf_counter()
            render(c)
            frame_ms.append(1000 * (time.perf_counter() - t))
        fps.append(len(cams) / (time.perf_counter() - t0))
        for c in cams:  # the splat alone, timed apart so the frames above carry no timers inside
            t = time.perf_counter()
            with torch.inference_mode():
                split(c)
            splat_ms.append(1000 * (time.perf_counter() - t))
    s, f = float(np.median(splat_ms)), float(np.median(frame_ms))
    return {"fps_median": round(float(np.median(fps)), 2), "fps_min": round(min(fps), 2),
            "fps_max": round(max(fps), 2), "frame_ms": round(f, 1), "splat_ms": round(s, 1),
            "network_ms": round(f - s, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shade", type=int, default=None, help="NPBG's shade setting (default: the plugin's)")
    ap.add_argument("--no-splat-ab", action="store_true",
                    help="skip the row of the other splat (the z-buffer's nearest point vs the front's mean)")
    ap.add_argument("--result", default="npbg_fps.json", help="file name under bench/results")
    ap.add_argument("--coverage", type=int, default=0, help="N > 1: draw with the covered share (A/B against none)")
    args = ap.parse_args()

    from plugins._points.fit import point_set, render_points
    from plugins._points.splat import front_box, splat_box

    settings = {} if args.shade is None else {"shade": args.shade}
    if args.coverage > 1:
        settings["coverage"] = args.coverage
    plugin, model = make_model(args.points, args.size, settings)
    if args.coverage > 1:  # the same network without the share
        ab = [("no share", make_model(args.points, args.size, {**settings, "coverage": 1})[1])]
    elif not args.no_splat_ab:  # the same network drawing the other way (nearest point vs front mean)
        other_avg = not model.config["splat_average"]
        ab = [("front mean" if other_avg else "nearest point",
               make_model(args.points, args.size, {**settings, "splat_average": other_avg})[1])]
    else:
        ab = []

    def split_of(m):
        avg = getattr(m.net, "average", None)
        if avg is None:
            return lambda c: splat_box(point_set(m), c, m.net.scales)
        return lambda c: front_box(point_set(m), c, avg, m.net.scales)

    cams = orbit(plugin, model, args.frames, args.size)
    box = splat_box(point_set(model), cams[0], model.net.scales)
    covered = None if box is None else [int(d) for d in box[0][0].shape]
    result = {"points": args.points, "size": args.size, "frames": args.frames, "runs": args.runs,
              "shade": model.config["shade"], "splat_average": model.config["splat_average"],
              "box_of_first_frame": covered, "rows": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        jobs = [("current", lambda c: render_points(model, c), split_of(model))]
        jobs += [(name, lambda c, m=m: render_points(m, c), split_of(m)) for name, m in ab]
        if args.coverage <= 1:  # the earlier renderers (not with the share: they predate it)
            jobs += [("lobes before", lambda c: _lobes_before(model, c), split_of(model)),
                     ("previous", lambda c: _previous_render(model, c), lambda c: _previous_splat(model, c))]
        for name, render, split in jobs:
            row = {"renderer": name, "threads": threads, "load_before": round(os.getloadavg()[0], 2),
                   **measure(render, split, cams, args.runs), "load_after": round(os.getloadavg()[0], 2)}
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
    dest = ROOT / "bench" / "results"
    dest.mkdir(exist_ok=True)
    (dest / args.result).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
