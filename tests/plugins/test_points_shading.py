"""The point renderer's shading and training-crop machinery (plugins/_points): normals estimated
from the points alone (a sphere's are radial, a plane's its normal) or read from the cloud's
file (the estimate only where the file's are unusable), the highlight lobes (1 at
their direction, broader widths never below sharper ones), the shading channels reaching the
U-Net only where a point is drawn, point dropout in training crops (winners only among the
points kept), the coverage prior from the drawn points, and NPBG checkpoints from before the
shading network and the prior load without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugins._points.data import PointView, random_point_batch
from plugins._points.network import Lobes, PointRendererNet, shade_inputs
from plugins._points.normals import estimate_normals
from plugins._points.splat import PointSet, splat
from viewer.model.camera import Camera, look_at


def _sphere(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True) * 2.0 + [10.0, -5.0, 3.0]


def _plane(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(-1, 1, size=(2, n))
    a, b = np.array([1.0, 1.0, 0.0]) / np.sqrt(2), np.array([0.0, 0.0, 1.0])
    return u[:, None] * a + v[:, None] * b


@pytest.mark.parametrize("make,want", [
    (_sphere, lambda p: (p - [10.0, -5.0, 3.0]) / 2.0),
    (_plane, lambda p: np.broadcast_to([1 / np.sqrt(2), -1 / np.sqrt(2), 0.0], p.shape)),
], ids=["sphere-radial", "plane"])
def test_normals_from_points(make, want):
    p = make(4000)
    n = estimate_normals(p)
    assert n.shape == (4000, 3) and n.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    cos = np.abs((n * want(p)).sum(1))  # the sign is free
    assert np.median(cos) > 0.995 and cos.min() > 0.9


def test_a_cloud_with_normals_shades_with_its_own():
    """The file's normals (unit length), the estimate only where they are missing or zero, and
    the estimate for all with ``own`` off or a cloud without."""
    from plugins._points.normals import cloud_normals
    from viewer.model.geometry import PointCloud

    p = _sphere(3000)
    own = np.tile([[0.0, 0.0, 3.0]], (len(p), 1))
    own[:5] = [[np.nan, 0.0, 0.0]] * 3 + [[0.0, 0.0, 0.0]] * 2
    got = cloud_normals(PointCloud(p, normals=own))
    assert got.dtype == np.float32 and np.array_equal(got[5:], np.tile([[0.0, 0.0, 1.0]], (len(p) - 5, 1)))
    est = estimate_normals(p)
    np.testing.assert_array_equal(got[:5], est[:5])
    np.testing.assert_array_equal(cloud_normals(PointCloud(p, normals=own), own=False), est)
    np.testing.assert_array_equal(cloud_normals(PointCloud(p)), est)


@pytest.mark.parametrize("n", [0, 1, 2], ids=["none", "one", "two"])
def test_normals_of_too_few_points_are_a_default(n):
    out = estimate_normals(np.zeros((n, 3)))
    assert out.shape == (n, 3) and np.all(out == [0.0, 0.0, 1.0])


def test_lobes_peak_at_their_direction_and_widths_nest():
    lobes = Lobes(12)
    d = torch.nn.functional.normalize(lobes.dirs.detach(), dim=1)
    inputs = torch.zeros(len(d), 9)
    inputs[:, 6:9] = d  # the mirror direction right on each lobe
    at = lobes(inputs)
    assert at.shape == (4, 12)
    for i in range(4):  # the three widths of direction i peak at 1 there
        torch.testing.assert_close(at[i, 3 * i:3 * i + 3], torch.ones(3))
    off = lobes(torch.cat([torch.zeros(1, 6), torch.nn.functional.normalize(d[:1] + 0.3, dim=1)], 1))[0, :3]
    assert 0 < off[2] < off[1] < off[0] < 1  # broad >= medium >= sharp away from the centre


def test_shade_inputs_mirror_about_the_normal_turned_to_the_camera():
    n = torch.tensor([[0.0, 0.0, 1.0]])
    d = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 1.0]]), dim=1)  # looking at the back side
    x = shade_inputs(n, d)[0]
    torch.testing.assert_close(x[:3], torch.tensor([0.0, 0.0, -1.0]))
    torch.testing.assert_close(x[6:], torch.nn.functional.normalize(torch.tensor([1.0, 0.0, -1.0]), dim=0))


def _camera(size: int = 32) -> Camera:
    return Camera(40.0, 40.0, size / 2, size / 2, size, size, look_at(np.array([10.0, -12.0, 3.0]),
                                                                        np.array([10.0, -5.0, 3.0])))


def test_shading_reaches_the_unet_only_where_a_point_is_drawn():
    from plugins._points.data import point_batch

    p = _sphere(3000)
    cam = _camera()
    pts = PointSet.from_numpy(p)
    net = PointRendererNet(len(p), 8, (4, 4, 4, 4, 4), shade=6, normals=torch.from_numpy(estimate_normals(p)))
    batch = point_batch([t[None] for t in splat(pts, cam)], [cam], [0], [0], (32, 32), "cpu")
    full, g = net.shaded(net.rasters(batch)[0], batch)
    drawn = batch.ids[0] >= 0
    assert g.shape == (1, 6, 32, 32) and full.shape == (1, 9, 32, 32)
    assert (g[0][:, ~drawn[0]] == 0).all() and (g[0][:, drawn[0]].amax(0) > 0).all()
    rgb, alpha, _ = net(batch)
    assert rgb.shape == (1, 3, 32, 32) and torch.isfinite(rgb).all()


@pytest.mark.parametrize("k, sharpness", [(12, 4.0), (48, 4.0), (48, 60.0), (7, 20.0)],
                         ids=["12", "48", "48-sharp", "7-not-a-multiple"])
def test_lobes_are_the_closed_form_and_drawing_fills_the_same(k, sharpness):
    """Channel 3 i + j = exp(s_i w_j (r . l_i - 1)), 0 where the exponent is under the cut; the
    drawing path (``fill``, in place, from the mirror directions alone) writes the same numbers,
    and the gradients are finite (sharp lobes far from their direction underflow)."""
    from plugins._nr.networks import _CUT

    torch.manual_seed(1)
    lobes = Lobes(k, sharpness=sharpness)
    r = torch.nn.functional.normalize(torch.randn(500, 3), dim=1)
    inputs = torch.cat([torch.randn(500, 6), r], 1)
    got = lobes(inputs)
    n = lobes.dirs.shape[0]
    e = (r @ torch.nn.functional.normalize(lobes.dirs.detach(), dim=1).t() - 1.0)[..., None] \
        * (lobes.log_sharpness.detach() * Lobes._SCALE).exp()[:, None] * torch.tensor(Lobes._WIDTHS)
    want = torch.where(e < _CUT, 0.0, e.exp()).flatten(1)  # (500, 3 n)
    want = torch.cat([want, want[:, :max(0, k - 3 * n)]], 1)[:, :k]
    # a sharpness of 960 turns cos's float rounding (1e-7) into 1e-4 of the exponent
    torch.testing.assert_close(got, want, atol=1e-6, rtol=3e-4)
    assert (got == 0).any() or sharpness < 10  # the cut is exercised by the sharp cases
    got.sum().backward()
    assert torch.isfinite(lobes.dirs.grad).all() and torch.isfinite(lobes.log_sharpness.grad).all()
    if k % 3 == 0:
        buf = torch.full((500, k + 5), float("nan"))
        with torch.no_grad():
            lobes.fill(r, buf[:, 2:2 + k])  # rows of stride k + 5, as the U-Net's input buffer
        torch.testing.assert_close(buf[:, 2:2 + k], got.detach(), atol=1e-6, rtol=1e-5)
        assert buf[:, :2].isnan().all() and buf[:, 2 + k:].isnan().all()  # nothing written beside


@pytest.mark.parametrize("shade, channels", [(48, 8), (6, 8), (12, 4)], ids=["default", "few-lobes", "few-channels"])
def test_drawing_builds_the_unet_input_in_place_with_the_same_numbers(shade, channels):
    """Without gradients the U-Net's first input is written into one buffer (no concatenations);
    the picture is the one the training path (``shaded`` + ``cat``) draws."""
    from plugins._points.data import point_batch

    torch.manual_seed(0)
    p = _sphere(3000)
    cam = _camera()
    net = PointRendererNet(len(p), channels, (4, 4, 4, 4, 4), shade=shade, normals=torch.from_numpy(estimate_normals(p)))
    with torch.no_grad():
        net.shade.log_sharpness.uniform_(0.0, 0.4)  # sharp lobes too: values near the cuts
        net.texture.descriptors.normal_()
    batch = point_batch([t[None] for t in splat(PointSet.from_numpy(p), cam)], [cam], [0], [0], (32, 32), "cpu")
    with torch.no_grad():
        assert net._fast_input()
        fast = net(batch)
        net._slow_input = True
        assert not net._fast_input()
        slow = net(batch)
    for a, b in zip(fast[:2], slow[:2]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.equal(fast[0], torch.zeros_like(fast[0]))


@pytest.mark.parametrize("dropout", [0.0, 0.5, 0.9], ids=["none", "half", "most"])
def test_point_dropout_draws_winners_among_the_points_kept(dropout):
    p = _sphere(3000)
    cam = _camera()
    pts = PointSet.from_numpy(p)
    ids = [t.to(torch.int32) for t in splat(pts, cam)]
    view = PointView("v", cam, uv=None, mask=ids[0][:32, :32] >= 0, target=torch.zeros(32, 32, 3), ids=ids)
    batch, target = random_point_batch([view], 1, 32, np.random.default_rng(0), points=pts, dropout=dropout)
    got = batch.ids[0][0]
    full = ids[0].long()
    assert target.shape == (1, 3, 32, 32)
    if dropout == 0.0:
        assert torch.equal(got, full)
        return
    drawn = (got >= 0).sum().item()
    assert 0 < drawn <= (full >= 0).sum().item()
    # a pixel's winner after dropout is never nearer than the winner of all the points
    proj_z = torch.from_numpy(np.linalg.norm(p - cam.center, axis=1))
    both = (got >= 0) & (full >= 0)
    assert (proj_z[got[both]] >= proj_z[full[both]] - 1e-9).all()
    assert not torch.equal(got, full)


def test_npbg_checkpoints_from_before_shading_build_without_it():
    from plugins.npbg import PLUGIN as NPBG

    old = {"channels": 8, "unet_base": 4, "n_points": 10}  # a stored config from before both settings
    net = NPBG.build(dict(old), {})
    assert net.shade is None and net.alpha_prior == 0.0
    new = NPBG.build({**old, "shade": 6, "alpha_prior": 3.0}, {})
    assert new.shade is not None and new.normals.shape == (10, 3) and new.alpha_prior == 3.0


def test_alpha_prior_starts_the_coverage_where_points_are_drawn():
    from plugins._points.data import point_batch

    p = _sphere(3000)
    cam = _camera()
    batch = point_batch([t[None] for t in splat(PointSet.from_numpy(p), cam)], [cam], [0], [0], (32, 32), "cpu")
    drawn = PointRendererNet.drawn(PointRendererNet(len(p), 4, (4, 4, 4, 4, 4)).rasters(batch))[0, 0] > 0
    assert 0.05 < drawn.float().mean() < 0.9
    with torch.no_grad():
        plain = PointRendererNet(len(p), 4, (4, 4, 4, 4, 4))(batch)[1][0, 0]
        prior = PointRendererNet(len(p), 4, (4, 4, 4, 4, 4), alpha_prior=6.0)(batch)[1][0, 0]
    assert (plain - 0.5).abs().max() < 0.2  # no prior: no idea yet where the object is
    assert prior[drawn].min() > 0.9 and prior[~drawn].max() < 0.1


def test_lobes_train():
    lobes = Lobes(6)
    inputs = torch.nn.functional.normalize(torch.randn(50, 9), dim=1)
    lobes(inputs).sum().backward()
    assert lobes.dirs.grad is not None and torch.isfinite(lobes.dirs.grad).all()
    assert lobes.log_sharpness.grad.abs().sum() > 0
