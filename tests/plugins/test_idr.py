"""IDR (``plugins/idr``): the pieces against analytic answers, a short fit on a captured ellipsoid,
and the command line's bad inputs.

* The geometrically initialised SDF network is a sphere of the chosen radius (its sign inside and
  outside, its value near the shell), for CPU and paper-like sizes.
* Sphere tracing meets an analytic sphere at the analytic depth; with few steps the sampled
  bracket + secant refinement is far closer than plain sphere tracing.
* The differentiable intersection's derivative in the radius of a sphere (and in the camera
  centre) matches finite differences of the analytic intersection.
* ``fit idr`` on a tiny capture of an ellipsoid lowers the mask loss, and the surface that
  ``export-mesh`` writes is within a Chamfer bound of the true ellipsoid; the checkpoint renders
  and ``evaluate`` scores it; ``--refine-cameras`` stores a pose correction per training view.
* An IDR folder (cameras.npz, image/, mask/) fits with its masks and its scale matrix.
* Bad input (views without masks, cameras looking away from each other or a scale matrix off to
  the side, an empty surface at export, an existing --out) is one line, exit 2, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.plugins import one_thread  # noqa: F401  (autouse: one torch thread, faster under contention)
from viewer.cli import main as cli_main

# the captured ellipsoid: semi-axes and centre (world)
AXES, CENTRE = np.array([1.0, 0.7, 0.5]), np.array([0.3, -0.2, 0.1])
FIT = ["--iters", "40", "--size", "32", "--quiet"]


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- the networks and the tracer ------------------------------------------------------------------

@pytest.mark.parametrize("width,layers,freqs,radius", [(128, 4, 6, 0.6), (128, 2, 0, 0.5), (512, 8, 6, 0.6)],
                         ids=["cpu-default", "shallow-no-encoding", "paper-size"])
def test_geometric_init_is_a_sphere(width, layers, freqs, radius):
    from plugins.idr.network import SDFNet

    torch.manual_seed(0)
    net = SDFNet(width, layers, freqs, 16, radius)
    u = torch.nn.functional.normalize(torch.randn(256, 3), dim=1)
    with torch.no_grad():
        inside, outside = net.sdf(0.4 * radius * u), net.sdf(1.6 * radius * u)
        shell = torch.cat([net.sdf(r * u) - (r - radius) for r in (0.8 * radius, radius, 1.2 * radius)])
        on = net.sdf(radius * u)
    assert bool((inside < 0).all()) and bool((outside > 0).all())
    assert float(shell.abs().mean()) < 0.06 and abs(float(on.mean())) < 0.01


def _sphere_rays(n: int = 1500, radius: float = 0.5):
    """Rays from (0, 0, -3) through a square around an analytic sphere at the origin, and the
    analytic depth of those that meet it."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, 3, generator=g) * 1.4 - 0.7
    target[:, 2] = 0
    o = torch.tensor([0.0, 0.0, -3.0]).expand(n, 3)
    d = torch.nn.functional.normalize(target - o, dim=1)
    b = (o * d).sum(1)
    disc = b * b - ((o * o).sum(1) - radius ** 2)
    return o, d, disc > 0, -b - torch.sqrt(disc.clamp_min(0))


@pytest.mark.parametrize("steps,samples,secant,bound", [(64, 0, 0, 2e-3), (64, 32, 8, 2e-3), (6, 32, 8, 1e-3)],
                         ids=["plain-64-steps", "secant-64-steps", "secant-6-steps"])
def test_sphere_tracing_meets_an_analytic_sphere(steps, samples, secant, bound):
    from plugins.idr.tracing import sphere_bounds, sphere_trace

    o, d, truth, depth = _sphere_rays()
    near, far, _ = sphere_bounds(o, d)
    t, hit = sphere_trace(lambda x: x.norm(dim=-1) - 0.5, o, d, near, far, steps=steps, samples=samples, secant=secant)
    assert float((hit == truth).float().mean()) > 0.995
    both = hit & truth
    assert float((t - depth)[both].abs().median()) < bound


def test_secant_refinement_beats_plain_tracing():
    from plugins.idr.tracing import sphere_bounds, sphere_trace

    o, d, truth, depth = _sphere_rays()
    near, far, _ = sphere_bounds(o, d)
    sdf = lambda x: x.norm(dim=-1) - 0.5  # noqa: E731
    errors = {}
    for name, kw in {"plain": {"samples": 0, "secant": 0}, "secant": {"samples": 32, "secant": 8}}.items():
        t, hit = sphere_trace(sdf, o, d, near, far, steps=6, **kw)
        err = torch.where(hit, (t - depth).abs(), torch.full_like(t, 1.0))  # a missed hit counts as 1
        errors[name] = float(err[truth].mean())
    assert errors["secant"] < errors["plain"] / 10, errors


@pytest.mark.parametrize("radius,offset", [(0.5, 0.0), (0.7, 0.3), (0.4, -0.2)],
                         ids=["centred", "larger-shifted", "smaller-shifted"])
def test_differentiable_intersection_matches_finite_differences(radius, offset):
    from plugins.idr.tracing import differentiable_points, sphere_bounds, sphere_trace

    torch.set_default_dtype(torch.float64)
    try:
        c = torch.tensor([offset, 0.1, 0.0])
        r = torch.tensor(radius, requires_grad=True)
        o0 = torch.tensor([0.05, -0.1, -3.0])
        ends = torch.tensor([[0.1, 0.05, 0.0], [-0.2, 0.1, 0.0], [0.0, -0.25, 0.0]]) + c
        d = torch.nn.functional.normalize(ends - o0, dim=1)
        o = o0.expand(3, 3).clone().requires_grad_(True)
        sdf = lambda x: (x - c).norm(dim=-1) - r  # noqa: E731

        def grad_at(x):
            return torch.nn.functional.normalize(x - c, dim=-1)

        near, far, _ = sphere_bounds(o.detach() - c, d)
        t0, hit = sphere_trace(lambda x: sdf(x).detach(), o.detach(), d, near, far + 10, steps=200, eps=1e-10)
        assert bool(hit.all())
        x = differentiable_points(sdf, grad_at, o, d, t0)
        w = torch.tensor([0.3, -0.5, 0.8])
        (x @ w).sum().backward()

        def analytic(rad: float, origin: torch.Tensor) -> torch.Tensor:
            oc = origin - c
            b = (oc * d).sum(1)
            t = -b - torch.sqrt(b * b - ((oc * oc).sum(1) - rad ** 2))
            return origin + t[:, None] * d

        h = 1e-6
        fd_r = float(((analytic(radius + h, o0.expand(3, 3)) - analytic(radius - h, o0.expand(3, 3))) @ w).sum() / (2 * h))
        assert abs(float(r.grad) - fd_r) < 1e-5 * max(1.0, abs(fd_r))
        e = torch.zeros(3, 3)
        e[:, 0] = h  # every ray's origin moved along x
        fd_o = float(((analytic(radius, o0 + e) - analytic(radius, o0 - e)) @ w).sum() / (2 * h))
        assert abs(float(o.grad[:, 0].sum()) - fd_o) < 1e-5 * max(1.0, abs(fd_o))
    finally:
        torch.set_default_dtype(torch.float32)


# -- a short fit on a captured ellipsoid -------------------------------------------------------------

@pytest.fixture(scope="module")
def ellipsoid(tmp_path_factory) -> Path:
    """A 16-view 32x32 capture of an ellipsoid (RGBA, alpha = mask), test split of 3."""
    from viewer.compute.photoset import capture_dataset
    from viewer.geometry.primitives import uv_sphere
    from viewer.io.meshes import save_mesh

    root = tmp_path_factory.mktemp("idr")
    m = uv_sphere(24, 48, 1.0)
    m.points[:] = m.points * AXES + CENTRE
    save_mesh(m, root / "ellipsoid.ply")
    capture_dataset(str(root / "ellipsoid.ply"), str(root / "scene"), views=16, size=32, test_fraction=0.2, seed=0)
    return root / "scene"


@pytest.fixture(scope="module")
def fitted(ellipsoid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("idrck") / "ck"
    assert cli_main(["fit", "idr", "--scene", str(ellipsoid), "--out", str(out), *FIT]) == 0
    return out


def _chamfer_percent(points: np.ndarray) -> float:
    """Symmetric mean Chamfer-L1 distance (% of the bounding-box diagonal) to the true ellipsoid."""
    from scipy.spatial import cKDTree

    from viewer.geometry.primitives import uv_sphere

    truth = uv_sphere(96, 192, 1.0).points * AXES + CENTRE
    a = cKDTree(truth).query(points)[0].mean()
    b = cKDTree(points).query(truth)[0].mean()
    return 100 * (a + b) / 2 / np.linalg.norm(truth.max(0) - truth.min(0))


def test_fit_lowers_the_mask_loss_and_exports_the_surface(fitted, tmp_path, capsys):
    from viewer.io import load_path

    cfg = json.loads((fitted / "config.json").read_text())
    losses = cfg["metrics"]["losses"]
    assert cfg["plugin"] == "idr" and cfg["metrics"]["steps"] == 40
    assert losses[-1]["mask"] < losses[0]["mask"] / 3, (losses[0], losses[-1])
    out = tmp_path / "surface.ply"
    rc, stdout, err = _run(capsys, "export-mesh", "--checkpoint", fitted, "--out", out, "--resolution", 48)
    assert rc == 0, err
    assert json.loads(stdout)["faces"] > 100
    mesh = load_path(out)
    assert mesh.colors is not None and mesh.colors.shape == (mesh.n_points, 3)
    assert _chamfer_percent(mesh.points) < 3.0


def test_checkpoint_renders_and_evaluates(fitted, ellipsoid, capsys):
    from plugins.idr import PLUGIN
    from viewer.io.photosets import load_viewset

    model = PLUGIN.load(fitted)
    cam = load_viewset(ellipsoid).split("test")[0].camera
    img = PLUGIN.render(model, cam, (1.0, 1.0, 1.0))
    assert img.shape == (32, 32, 3) and img.dtype == np.float32
    assert (img < 0.9).any(axis=2).mean() > 0.1  # the object is drawn, not only the white background
    rc, stdout, err = _run(capsys, "evaluate", "--checkpoint", fitted, "--scene", ellipsoid)
    assert rc == 0, err
    assert json.loads(stdout)["psnr"] > 12
    assert PLUGIN.owns_checkpoint(fitted)
    o = PLUGIN.orbit(model)
    assert np.allclose(o.center, CENTRE, atol=0.15)


def test_refine_cameras_stores_a_correction_per_view(ellipsoid, tmp_path, capsys):
    out = tmp_path / "ck"
    rc, stdout, err = _run(capsys, "fit", "idr", "--scene", ellipsoid, "--out", out, "--refine-cameras",
                           "--iters", "3", "--size", "24", "--quiet")
    assert rc == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["refine_cameras"] is True
    n_train = len(json.loads((ellipsoid / "transforms_train.json").read_text())["frames"])
    assert cfg["pose_views"] == n_train and len(cfg["metrics"]["pose_corrections"]) == n_train


# -- bad input -----------------------------------------------------------------------------------------

def _opaque_scene(src: Path, dst: Path) -> Path:
    """``src`` with every photo's alpha set to 255: views without masks."""
    import shutil

    shutil.copytree(src, dst)
    for p in dst.rglob("r_*.png"):
        im = np.asarray(Image.open(p).convert("RGBA")).copy()
        im[..., 3] = 255
        Image.fromarray(im).save(p)
    return dst


def _looking_away_scene(src: Path, dst: Path) -> Path:
    """``src`` with each camera turned to look away from the others (random directions)."""
    import shutil

    shutil.copytree(src, dst)
    rng = np.random.default_rng(0)
    for js in dst.glob("transforms_*.json"):
        data = json.loads(js.read_text())
        for fr in data["frames"]:
            m = np.asarray(fr["transform_matrix"])
            q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            m[:3, :3] = q * np.sign(np.linalg.det(q))
            fr["transform_matrix"] = m.tolist()
        js.write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize("make,words", [(_opaque_scene, "have no mask"),
                                        (_looking_away_scene, "do not look at a common volume")],
                         ids=["no-masks", "cameras-looking-away"])
def test_bad_scenes_are_one_line_and_write_nothing(ellipsoid, tmp_path, capsys, make, words):
    scene = make(ellipsoid, tmp_path / "scene")
    out = tmp_path / "ck"
    rc, _, err = _run(capsys, "fit", "idr", "--scene", scene, "--out", out, *FIT)
    assert rc == 2 and words in _one_error_line(err)
    assert not out.exists()


def _idr_folder(src: Path, dst: Path, centre) -> Path:
    """``src`` in IDR's layout: opaque photos in image/, masks in mask/, cameras.npz whose scale
    matrix is centred on ``centre``."""
    from viewer.io.idr_cameras import save_idr_cameras
    from viewer.io.photosets import load_viewset

    frames = load_viewset(src).frames
    (dst / "image").mkdir(parents=True)
    (dst / "mask").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(np.ascontiguousarray(f.rgba[..., :3])).save(dst / "image" / f"{i:06d}.png")
        Image.fromarray(((f.rgba[..., 3] >= 128) * 255).astype(np.uint8)).save(dst / "mask" / f"{i:06d}.png")
    save_idr_cameras(dst / "cameras.npz", [f.camera for f in frames], center=centre, scale=1.5)
    return dst


@pytest.mark.parametrize("centre,words", [(CENTRE, None), (CENTRE + 50.0, "do not look at a common volume")],
                         ids=["masks-from-mask-folder", "scale-matrix-off-to-the-side"])
def test_fit_reads_an_idr_folder(ellipsoid, tmp_path, capsys, centre, words):
    scene = _idr_folder(ellipsoid, tmp_path / "idr", centre)
    out = tmp_path / "ck"
    rc, _, err = _run(capsys, "fit", "idr", "--scene", scene, "--out", out, "--iters", "2", "--size", "24", "--quiet")
    if words is None:
        assert rc == 0, err
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["normalised_by"] == "scale matrix" and cfg["normalisation"]["scale"] == 1.5
    else:
        assert rc == 2 and words in _one_error_line(err) and not out.exists()


def _empty_checkpoint(fitted: Path, dst: Path) -> Path:
    """A checkpoint whose SDF is positive everywhere: no surface."""
    from plugins.idr import PLUGIN

    model = PLUGIN.load(fitted)
    with torch.no_grad():
        model.net.sdf.lins[-1].bias[0] += 100.0
    PLUGIN.save(model, dst)
    return dst


def test_export_refuses_an_empty_surface_and_an_existing_file(fitted, tmp_path, capsys):
    empty = _empty_checkpoint(fitted, tmp_path / "empty")
    out = tmp_path / "surface.ply"
    rc, _, err = _run(capsys, "export-mesh", "--checkpoint", empty, "--out", out, "--resolution", 24)
    assert rc == 2 and "surface is empty" in _one_error_line(err)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    out.write_bytes(b"mine")
    rc, _, err = _run(capsys, "export-mesh", "--checkpoint", fitted, "--out", out, "--resolution", 24)
    assert rc == 2 and "exists" in _one_error_line(err) and out.read_bytes() == b"mine"


def test_fit_reports_its_surface_while_it_trains(ellipsoid):
    """A MeshPreview of the surface so far every ``surface_minutes`` (the window shows it as a
    mesh layer), and the kept model's at the end, in the scene's world frame."""
    from plugins.idr import PLUGIN
    from viewer.io.photosets import load_viewset
    from viewer.jobs.progress import MeshPreview, Progress

    seen = []
    progress = Progress(on_preview=seen.append)
    cfg = PLUGIN.Config(iters=30, size=32, minutes=0, surface_minutes=1e-6, val_every=1000, seed=0)
    PLUGIN.fit(load_viewset(ellipsoid), None, cfg, progress)
    surfaces = [p for p in seen if isinstance(p, MeshPreview)]
    assert len(surfaces) >= 2  # while training, and the final one
    final = surfaces[-1].mesh
    assert final.n_faces > 50 and _chamfer_percent(final.points) < 6.0  # a 64³ grid after 30 steps


def test_signed_distance_volume_is_in_the_world_frame(fitted):
    """The SDF as a Volume: negative at the ellipsoid's centre, positive at its box's corners,
    and its zero crossings (voxel centres through the affine) near the true surface."""
    from plugins.idr import PLUGIN

    model = PLUGIN.load(fitted)
    vol = PLUGIN.learned_volume(model, 48)
    a = vol.array
    ijk = np.indices(a.shape).reshape(3, -1).T
    ras = ijk @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    inside = np.linalg.norm((ras - CENTRE) / AXES, axis=1)
    assert a.ravel()[np.argmin(inside)] < 0 and a.ravel()[np.argmax(inside)] > 0
    near_zero = np.abs(a.ravel()) < 0.5 * np.abs(vol.affine[0, 0])
    assert near_zero.any() and abs(float(np.median(inside[near_zero])) - 1.0) < 0.15


@pytest.mark.parametrize("size,wanted,expected", [
    ((128, 128), 2, 2),   # a held-out view: 2x2 rays, 65,536 in all
    ((128, 128), 3, 2),   # 3x3 would pass a 256² frame's rays
    ((175, 135), 2, 1),   # a moving learned-view frame: one ray per pixel
    ((32, 32), 4, 4),
    ((64, 64), 1, 1),
], ids=["heldout", "capped", "learned-view", "tiny", "off"])
def test_rays_per_pixel_stay_within_a_256_frame(size, wanted, expected):
    from plugins.idr.model import samples_per_axis
    from viewer.model.camera import Camera

    cam = Camera(fx=50.0, fy=50.0, cx=size[0] / 2, cy=size[1] / 2, width=size[0], height=size[1], c2w=np.eye(4))
    assert samples_per_axis(cam, wanted) == expected


def test_a_supersampled_pixel_is_the_mean_of_its_rays(fitted, ellipsoid):
    """2x2 supersampling is the box mean of the render at twice the size: the silhouette's edge
    pixels fall between the object and the background, as a photo's do."""
    from plugins.idr.model import render_image
    from viewer.io import load_path
    from viewer.plugins import get_plugin

    plugin = get_plugin("idr")
    model = plugin.load(fitted)
    cam = load_path(ellipsoid).split("test")[0].camera
    bg = (1.0, 1.0, 1.0)
    fine = render_image(model, cam.scaled(cam.width * 2, cam.height * 2), bg, supersample=1)
    aa = render_image(model, cam, bg, supersample=2)
    np.testing.assert_allclose(aa, fine.reshape(cam.height, 2, cam.width, 2, 3).mean((1, 3)), atol=1e-5)
    hard = render_image(model, cam, bg, supersample=1)
    assert set(np.unique(hard.min(-1) >= 0.999)) == {False, True}  # object and background both seen
    assert (aa != hard).any(axis=-1).sum() > 0
    assert np.array_equal(plugin.render(model, cam, bg), aa)  # the checkpoint's setting: 2
    assert np.array_equal(plugin.render(model, cam, bg, preview=True), hard)  # a moving learned-view frame
