"""Point splatting (plugins/_points/splat.py): the projection against Camera.project, and the
z-buffer at five scales against a brute-force Python reference (exact equality of the winning
point ids), points behind the camera and outside the frustum dropped, ties to the lower id; the
box splat equals the crop of the full one, the rasters equal the padded gather (values and
gradients), and a render is the background outside the box the cloud covers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugins._points.splat import PointSet, gather, project, raster_sizes, splat, zbuffer
from viewer.model.camera import Camera, look_at


def _camera(width: int, height: int, eye=(0.0, -3.0, 1.0), fov_px: float = 40.0) -> Camera:
    c2w = look_at(np.array(eye), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    return Camera(fov_px, fov_px * 1.1, width / 2 + 0.3, height / 2 - 0.7, width, height, c2w)


def _brute_force(u, v, z, keep, width, height, scales=5):
    """Per scale, {(row, col): id} of the nearest point (ties: lower id), by Python loops."""
    sizes = raster_sizes(width, height, scales)
    out = []
    for s in range(scales):
        best: dict[tuple[int, int], tuple[float, int]] = {}
        for i in range(len(u)):
            if not keep[i]:
                continue
            px = (int(np.floor(u[i])) >> s, int(np.floor(v[i])) >> s)
            cand = (float(z[i]), i)
            if px[::-1] not in best or cand < best[px[::-1]]:
                best[px[::-1]] = cand
        img = np.full(sizes[s], -1, np.int64)
        for (r, c), (_, i) in best.items():
            img[r, c] = i
        out.append(img)
    return out


def _cloud(n: int, seed: int, dup: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3)) * [1.0, 2.5, 1.0]  # some behind the camera (y < -3), some outside the view
    p[0] = 0.0  # the look-at point: at least one point is seen
    if dup:  # exact copies: the same depth, so the lower id must win
        p[n // 2:n // 2 + 20] = p[:20]
    return p


@pytest.mark.parametrize("n,width,height,seed,dup", [
    (50, 16, 16, 0, False), (400, 33, 20, 1, True), (2000, 40, 31, 2, True), (3000, 64, 48, 3, False),
    (1, 8, 8, 4, False),
], ids=["50pts-16x16", "400pts-33x20-dups", "2k-40x31-dups", "3k-64x48", "one-point-8x8"])
def test_zbuffer_matches_brute_force(n, width, height, seed, dup):
    cam = _camera(width, height)
    pts = PointSet.from_numpy(_cloud(n, seed, dup))
    proj = project(pts, cam)
    got = zbuffer(proj)
    want = _brute_force(proj.u.numpy(), proj.v.numpy(), proj.z.numpy(), proj.keep.numpy(), width, height)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert np.array_equal(g.numpy(), w)
    assert (got[0] >= 0).any()


def test_projection_matches_the_camera_and_drops_what_it_cannot_see():
    cam = _camera(32, 24)
    rng = np.random.default_rng(5)
    p = rng.normal(size=(500, 3)) * 2.0 + [1e5, -2e5, 3e3]  # large world coordinates keep precision
    cam.c2w[:3, 3] += [1e5, -2e5, 3e3]
    proj = project(PointSet.from_numpy(p), cam)
    uv, z = cam.project(p)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 32) & (uv[:, 1] >= 0) & (uv[:, 1] < 24)
    assert inside.sum() > 20 and (z <= 0).sum() > 20
    np.testing.assert_allclose(proj.z.numpy()[inside], z[inside], rtol=1e-5)
    np.testing.assert_allclose(proj.u.numpy()[inside], uv[inside, 0], atol=2e-3)
    np.testing.assert_allclose(proj.v.numpy()[inside], uv[inside, 1], atol=2e-3)
    # a point is kept where the float64 projection says it is visible (but for a hair at an edge)
    agree = proj.keep.numpy() == inside
    assert agree.mean() > 0.99


def test_behind_the_camera_never_wins():
    cam = _camera(8, 8, eye=(0.0, -3.0, 0.0))
    # on the optical axis: one in front (depth 2), one behind (depth -1, would project mirrored)
    pts = PointSet.from_numpy(np.array([[0.0, -1.0, 0.0], [0.0, -4.0, 0.0]]))
    ids = splat(pts, cam)
    assert set(ids[0].unique().tolist()) == {-1, 0}


def test_gather_puts_descriptors_where_the_points_won():
    desc = torch.arange(6, dtype=torch.float32).view(3, 2) + 1
    ids = torch.tensor([[-1, 2], [0, -1]])
    out = gather(desc, ids)
    assert out.shape == (2, 2, 2)
    assert out[:, 0, 0].tolist() == [0, 0] and out[:, 0, 1].tolist() == [5, 6] and out[:, 1, 0].tolist() == [1, 2]


@pytest.mark.parametrize("w,h,want", [(256, 256, [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16)]),
                                      (33, 20, [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)])],
                         ids=["256", "33x20-padded"])
def test_raster_sizes(w, h, want):
    assert raster_sizes(w, h) == want


def test_ray_dirs_match_the_camera():
    from plugins._points.data import ray_dirs

    cam = _camera(12, 9)
    _, want = cam.pixel_rays()
    got = ray_dirs([cam], [0], [0], 9, 12, "cpu")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    crop = ray_dirs([cam], [4], [2], 3, 5, "cpu")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(crop, want[2:5, 4:9], atol=1e-5)


def test_drawn_colour_fills_holes_from_the_coarser_scales():
    from plugins._points.network import PointRendererNet

    full = torch.zeros(1, 4, 4, 4)
    full[0, :3, 0, 0], full[0, 3, 0, 0] = torch.tensor([1.0, 0.0, 0.0]), 1.0  # one drawn pixel, red
    half = torch.zeros(1, 4, 2, 2)
    half[0, :3], half[0, 3] = torch.tensor([0.0, 0.0, 1.0])[:, None, None], 1.0  # blue everywhere
    c = PointRendererNet.drawn_colour([full, half])
    assert c[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert (c[0, 2].sum() == 15.0) and c[0, 0, 1:, :].abs().sum() == 0  # the holes take the coarse blue


@pytest.mark.parametrize("eye,width,height", [
    ((0.0, -12.0, 1.0), 64, 48), ((0.0, -3.0, 1.0), 40, 31), ((2.5, -6.0, 0.0), 70, 33),
], ids=["small-in-frame", "fills-frame", "off-centre-padded"])
def test_splat_box_is_the_crop_of_the_full_splat(eye, width, height):
    from plugins._points.splat import splat_box

    cam = _camera(width, height, eye=eye, fov_px=60.0)
    pts = PointSet.from_numpy(_cloud(3000, 7, False) * 0.3)
    full = splat(pts, cam)
    ids, (x0, y0) = splat_box(pts, cam)
    assert x0 % 16 == 0 and y0 % 16 == 0 and ids[0].shape[0] % 16 == 0 and ids[0].shape[1] % 16 == 0
    for s, (f, b) in enumerate(zip(full, ids)):
        h, w = b.shape
        assert torch.equal(f[y0 >> s:(y0 >> s) + h, x0 >> s:(x0 >> s) + w], b), f"scale {s}"
    # nothing drawn outside the box
    outside = full[0].clone()
    outside[y0:y0 + ids[0].shape[0], x0:x0 + ids[0].shape[1]] = -1
    assert (outside == -1).all() and (ids[0] >= 0).any()


def test_splat_box_of_a_cloud_out_of_view_is_none():
    from plugins._points.splat import splat_box

    assert splat_box(PointSet.from_numpy(np.array([[0.0, -5.0, 0.0]])), _camera(16, 16)) is None


def test_rasters_match_the_padded_gather_with_their_gradients():
    from plugins._points.data import point_batch
    from plugins._points.network import PointRendererNet
    from plugins._points.splat import pad_descriptors

    cam = _camera(40, 31)
    pts = PointSet.from_numpy(_cloud(2000, 2, True))
    net = PointRendererNet(pts.n, 5, (4, 4, 4, 4, 4))
    batch = point_batch([t[None] for t in splat(pts, cam)], [cam], [0], [0], (31, 40), "cpu")
    got = net.rasters(batch)
    d = net.texture.descriptors.detach().clone().requires_grad_(True)
    want = [torch.cat([gather(pad_descriptors(d), ids, padded=True), (ids >= 0).float()[:, None]], 1)
            for ids in batch.ids]
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.equal(g, w)
    weights = [torch.randn_like(w) for w in want]
    sum((g * k).sum() for g, k in zip(got, weights)).backward()
    sum((w * k).sum() for w, k in zip(want, weights)).backward()
    torch.testing.assert_close(net.texture.descriptors.grad, d.grad)


def test_render_draws_only_the_box_and_the_background_elsewhere():
    from plugins._nr.model import NRModel
    from plugins._points.fit import render_points
    from plugins._points.network import PointRendererNet
    from plugins._points.splat import splat_box
    from viewer.model.geometry import PointCloud

    p = _cloud(3000, 3, False) * 0.2
    net = PointRendererNet(len(p), 4, (4, 4, 4, 4, 4)).eval()
    model = NRModel(net=net, plugin="npbg", config={}, mesh=None, background=(0.2, 0.4, 0.6), points=PointCloud(p))
    cam = _camera(80, 64, eye=(0.0, -12.0, 1.0), fov_px=60.0)
    ids, (x0, y0) = splat_box(PointSet.from_numpy(p), cam)
    img = render_points(model, cam)
    assert img.shape == (64, 80, 3)
    inside = np.zeros((64, 80), bool)
    inside[y0:y0 + ids[0].shape[0], x0:x0 + ids[0].shape[1]] = True
    assert 0 < inside.mean() < 0.8
    assert np.array_equal(img[~inside], np.broadcast_to(np.float32([0.2, 0.4, 0.6]), img[~inside].shape))
    assert not np.allclose(img[inside], [0.2, 0.4, 0.6], atol=1e-3)


@pytest.mark.parametrize("n,width,height,k,seed", [(50, 16, 16, 2, 0), (2000, 40, 31, 3, 2), (3000, 64, 48, 1, 3)],
                         ids=["50pts-k2", "2k-k3-odd-size", "3k-k1"])
def test_pixel_share_matches_brute_force(n, width, height, k, seed):
    from plugins._points.splat import pixel_share

    proj = project(PointSet.from_numpy(_cloud(n, seed, False)), _camera(width, height))
    hp, wp = raster_sizes(width, height)[0]
    got = pixel_share(proj, hp, wp, k).numpy()
    cells = np.zeros((hp, wp, k, k), bool)
    for u, v, keep in zip(proj.u.numpy(), proj.v.numpy(), proj.keep.numpy()):
        if keep:
            su, sv = int(np.floor(u * k)), int(np.floor(v * k))
            if su < wp * k and sv < hp * k:
                cells[sv // k, su // k, sv % k, su % k] = True
    assert got.shape == (hp, wp) and np.allclose(got, cells.mean((2, 3)))
    assert got.max() > 0 and ((got > 0) == (zbuffer(proj)[0].numpy() >= 0)).all()


def test_a_renderer_reading_the_share_draws_it():
    """A network with ``share`` reads the covered share from the batch (render_points makes it
    for the drawn box); a batch without one is refused, not drawn without it."""
    from plugins._nr.model import NRModel
    from plugins._points.data import point_batch
    from plugins._points.fit import render_points
    from plugins._points.network import PointRendererNet
    from plugins._points.splat import pixel_share, splat_box
    from viewer.model.geometry import PointCloud

    p = _cloud(3000, 3, False) * 0.2
    torch.manual_seed(0)
    net = PointRendererNet(len(p), 4, (4, 4, 4, 4, 4), share=3).eval()
    model = NRModel(net=net, plugin="npbg", config={}, mesh=None, background=(0.2, 0.4, 0.6), points=PointCloud(p))
    cam = _camera(80, 64, eye=(0.0, -12.0, 1.0), fov_px=60.0)
    img = render_points(model, cam)
    assert img.shape == (64, 80, 3) and np.isfinite(img).all()
    ids, (x0, y0) = splat_box(PointSet.from_numpy(p), cam)
    h, w = ids[0].shape
    full = pixel_share(project(PointSet.from_numpy(p), cam), *raster_sizes(80, 64)[0], 3)
    with torch.inference_mode():
        for sh, want in ((full[y0:y0 + h, x0:x0 + w], True), (torch.zeros(h, w), False)):
            rgb, alpha, _ = net(point_batch([t[None] for t in ids], [cam], [x0], [y0], (h, w), "cpu", None, sh[None]))
            drawn = rgb[0].permute(1, 2, 0).numpy() * alpha[0, 0, ..., None].numpy() + (
                1 - alpha[0, 0, ..., None].numpy()) * np.float32([0.2, 0.4, 0.6])
            assert np.allclose(drawn, img[y0:y0 + h, x0:x0 + w], atol=1e-5) == want
        with pytest.raises(ValueError, match="covered share"):
            net(point_batch([t[None] for t in ids], [cam], [x0], [y0], (h, w), "cpu"))


def test_interior_fill_tells_a_dense_cloud_from_a_sparse_one():
    """NPBG's default takes the covered share only where the cloud fills the sub-cells inside the
    object; a cloud of a few points per pixel fills a third of them (the share would be noise)."""
    from plugins._points.data import interior_fill
    from viewer.model.viewset import Frame

    rng = np.random.default_rng(0)
    blank = np.zeros((64, 64, 4), np.uint8)
    frames = [Frame(_camera(64, 64, eye=eye, fov_px=50.0), blank, name=n)
              for n, eye in (("a", (0.0, -4.0, 1.0)), ("b", (3.0, -2.0, 0.5)))]

    def sphere(n):
        p = rng.normal(size=(n, 3))
        return PointSet.from_numpy(p / np.linalg.norm(p, axis=1, keepdims=True))

    dense, sparse = interior_fill(frames, sphere(400_000), 64, 3), interior_fill(frames, sphere(3_000), 64, 3)
    assert dense > 0.9 > 0.6 > sparse > 0.0
    assert interior_fill(frames, sphere(3_000), 64, 1) == 1.0  # one sub-cell: a drawn pixel is full
