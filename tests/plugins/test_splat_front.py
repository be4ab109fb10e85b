"""Drawing the mean of each pixel's front points (plugins/_points/splat.py ``front``,
``front_rasters``): against a brute-force Python reference per scale, a training crop equal to
the crop of the whole frame, the box a render draws equal to the crop of the full frame, and the
gradient reaching every averaged point (not only the z-buffer's winner)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugins._points.data import crop_front, view_rasters
from plugins._points.splat import Front, PointSet, front_box, front_rasters, project, raster_sizes
from viewer.model.camera import Camera, look_at


def _camera(width: int, height: int, eye=(0.0, -3.0, 1.0), fov_px: float = 40.0) -> Camera:
    c2w = look_at(np.array(eye), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    return Camera(fov_px, fov_px * 1.1, width / 2 + 0.3, height / 2 - 0.7, width, height, c2w)


def _two_shells(n: int, seed: int) -> np.ndarray:
    """Points on a unit sphere and on one of radius 0.5 inside it (hidden behind its front)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p[n // 2:] *= 0.5
    return p


def _brute_force(u, v, z, keep, values, width, height, tol, fx, scales=5):
    """Per scale (H_s, W_s, C + 1): the mean of ``values`` over the full-scale front points of
    the finer pixels kept by each coarser pixel's depth test, by Python loops."""
    sizes = raster_sizes(width, height, scales)
    h0, w0 = sizes[0]
    zmin = np.full((h0, w0), np.inf)
    for i in np.flatnonzero(keep):
        r, c = int(np.floor(v[i])), int(np.floor(u[i]))
        zmin[r, c] = min(zmin[r, c], z[i])
    members = {}
    for i in np.flatnonzero(keep):
        r, c = int(np.floor(v[i])), int(np.floor(u[i]))
        if z[i] <= zmin[r, c] * (1 + tol / fx):
            members.setdefault((r, c), []).append(i)
    out, zs = [], zmin
    for s in range(scales):
        if s:  # the coarse pixel keeps the finer pixels near its nearest depth
            h, w = sizes[s]
            coarse = zs.reshape(h, 2, w, 2).min((1, 3))
            new = {}
            for (r, c), m in members.items():
                if zs[r, c] <= coarse[r // 2, c // 2] * (1 + tol * 2 ** s / fx):
                    new.setdefault((r // 2, c // 2), []).extend(m)
            members, zs = new, coarse
        img = np.zeros((*sizes[s], values.shape[1] + 1))
        for (r, c), m in members.items():
            img[r, c, :-1] = values[m].mean(0)
            img[r, c, -1] = 1.0
        out.append(img)
    return out


@pytest.mark.parametrize("n,width,height,tol,seed", [
    (400, 16, 16, 1.5, 0), (3000, 40, 31, 1.5, 1), (5000, 33, 20, 0.0, 2), (3000, 48, 32, 4.0, 3),
], ids=["400pts-16x16", "3k-40x31", "5k-33x20-nearest-depth-only", "3k-48x32-wide"])
def test_front_rasters_match_brute_force(n, width, height, tol, seed):
    cam = _camera(width, height)
    pts = PointSet.from_numpy(_two_shells(n, seed))
    values = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ids, fr = view_rasters(pts, cam, 5, tol)
    fr = Front(fr.pix.long(), fr.pid.long(), [p[None] for p in fr.pool])
    h, w = ids[0].shape
    got = front_rasters(values, fr, 1, h, w, 5)
    proj = project(pts, cam)
    want = _brute_force(proj.u.numpy(), proj.v.numpy(), proj.z.numpy(), proj.keep.numpy(), values.numpy(),
                        width, height, tol, cam.fx)
    for s, (g, ws) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g[0].numpy(), ws, atol=1e-9, err_msg=f"scale {s}")
        assert np.array_equal(ws[..., -1] > 0, ids[s].numpy() >= 0), f"coverage of scale {s}"
    # no pixel mixes the outer shell with the inner one behind it (0.5 units deeper)
    inner = (fr.pid >= n // 2).long()
    mixed = torch.zeros(h * w, dtype=torch.long).index_add_(0, fr.pix, inner)
    count = torch.zeros(h * w, dtype=torch.long).index_add_(0, fr.pix, torch.ones_like(inner))
    assert bool(((mixed == 0) | (mixed == count)).all())
    # several points per pixel are averaged somewhere (the test means something); at tolerance 0
    # only the nearest point is left (no two points share a depth here)
    if tol > 0:
        assert len(fr.pid) > int((ids[0] >= 0).sum())
    else:
        assert torch.equal(torch.sort(fr.pid).values, torch.sort(ids[0][ids[0] >= 0].long()).values)


def test_a_crop_is_the_crop_of_the_frame_and_gradients_reach_every_front_point():
    cam = _camera(64, 48)
    pts = PointSet.from_numpy(_two_shells(4000, 5))
    ids, fr = view_rasters(pts, cam, 5, 1.5)
    h, w = ids[0].shape
    d = torch.randn(pts.n, 4, dtype=torch.float64, requires_grad=True)
    whole = front_rasters(d, Front(fr.pix.long(), fr.pid.long(), [p[None] for p in fr.pool]), 1, h, w, 5)
    crops = [(16, 0, 32, 32), (0, 16, 48, 32)]  # (x0, y0, cw, ch): aligned to the coarsest cell
    parts = [crop_front(fr, w, x0, y0, ch, cw, 0) for x0, y0, cw, ch in crops]
    for (x0, y0, cw, ch), p in zip(crops, parts):
        got = front_rasters(d, Front(p.pix.long(), p.pid.long(), [q[None] for q in p.pool]), 1, ch, cw, 5)
        for s, (g, full) in enumerate(zip(got, whole)):
            torch.testing.assert_close(g[0], full[0, y0 >> s:(y0 + ch) >> s, x0 >> s:(x0 + cw) >> s], msg=f"scale {s}")
    whole[0][..., :4].sum().backward()
    touched = torch.nonzero(d.grad.abs().sum(1)).squeeze(1)
    assert set(touched.tolist()) == set(fr.pid.long().tolist())  # every averaged point learns, not one per pixel


@pytest.mark.parametrize("eye,width,height", [((0.0, -12.0, 1.0), 64, 48), ((2.5, -6.0, 0.0), 70, 33)],
                         ids=["small-in-frame", "off-centre-padded"])
def test_front_box_is_the_crop_of_the_full_frame(eye, width, height):
    cam = _camera(width, height, eye=eye, fov_px=60.0)
    pts = PointSet.from_numpy(_two_shells(3000, 7) * 0.6)
    values = torch.randn(pts.n, 3, dtype=torch.float64)
    ids, fr = view_rasters(pts, cam, 5, 1.5)
    h, w = ids[0].shape
    whole = front_rasters(values, Front(fr.pix.long(), fr.pid.long(), [p[None] for p in fr.pool]), 1, h, w, 5)
    bids, bfr, (x0, y0) = front_box(pts, cam, 1.5)
    bh, bw = bids[0].shape
    got = front_rasters(values, Front(bfr.pix, bfr.pid, [p[None] for p in bfr.pool]), 1, bh, bw, 5)
    for s, (g, full) in enumerate(zip(got, whole)):
        torch.testing.assert_close(g[0], full[0, y0 >> s:(y0 >> s) + g.shape[1], x0 >> s:(x0 >> s) + g.shape[2]])
    assert float(whole[0][..., -1].sum()) == float(got[0][..., -1].sum())  # nothing drawn outside the box
