"""The neural renderers (``plugins/texture``, ``plugins/dnr``) and their shared machinery.

* Building blocks: the Laplacian texture samples exactly what ``grid_sample`` (bilinear, border,
  align_corners=False) samples with v up / row 0 at the top, and its gradient is exact; the SH
  basis is orthonormal; the U-Net keeps any image size (table-driven).
* A short fit of each method on a tiny capture (pyvista's globe, 64x64, 12 train / 4 test views)
  beats the best constant colour on the held-out views by a clear margin.
* Save/load gives identical renders, also from a worker thread (one rasterizer per thread);
  a cancelled fit keeps a whole, loadable checkpoint.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from plugins._nr.checkpoint import FORMAT, load_checkpoint, read_config
from viewer.analysis.images import psnr
from plugins._nr.networks import LaplacianTexture, UNet2D, _BilinearBag, sh_basis
from plugins.dnr import PLUGIN as DNR
from plugins.texture import PLUGIN as TEXTURE
from tests.plugins import two_threads  # noqa: F401  (autouse: two torch threads)
from viewer.jobs.progress import Progress
from viewer.model.errors import LoadError

SIZE, VIEWS, TEST_FRACTION = 64, 16, 0.25


def capture_scene(out: Path, views: int = VIEWS, size: int = SIZE) -> Path:
    """A Blender-layout capture of pyvista's globe (procedural texture, specular, world lights)."""
    import pyvista.examples

    from viewer.compute.photoset import capture_dataset

    globe = Path(pyvista.examples.__file__).parent / "globe.vtk"
    capture_dataset(str(globe), str(out), views=views, size=size, test_fraction=TEST_FRACTION, seed=1)
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return capture_scene(tmp_path_factory.mktemp("nr") / "globe")


@pytest.fixture(scope="module")
def data(scene):
    from viewer.io import load_path
    from viewer.io.photosets import load_viewset

    return load_viewset(scene), load_path(scene / "mesh.obj")


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory) -> dict:
    """Both methods fitted briefly, with their checkpoints."""
    views, mesh = data
    out = {}
    for plugin, iters in ((TEXTURE, 150), (DNR, 300)):
        ckpt = tmp_path_factory.mktemp(plugin.name) / "ckpt"
        cfg = plugin.Config(iters=iters, minutes=0, val_every=100, seed=0)
        out[plugin.name] = (plugin, plugin.fit(views, mesh, cfg, Progress(), checkpoint_dir=ckpt), ckpt)
    return out


# -- building blocks --------------------------------------------------------------------------
def test_texture_sampling_matches_grid_sample_with_v_up():
    torch.manual_seed(0)
    tex = LaplacianTexture(16, 3, 5, noise=1.0).double()
    uv = torch.rand(400, 2, dtype=torch.float64) * 1.2 - 0.1  # outside 0..1 too: border padding
    ref = 0
    for i in range(3):
        grid = torch.stack([uv[:, 0] * 2 - 1, 1 - 2 * uv[:, 1]], -1).view(1, 1, -1, 2)
        ref = ref + F.grid_sample(tex.level(i)[None], grid, align_corners=False, padding_mode="border")[0, :, 0].t()
    assert torch.allclose(tex(uv), ref, atol=1e-12)
    # the hand-written backward (index_add_ per corner) is the exact gradient
    small = LaplacianTexture(6, 2, 2, noise=1.0).double()
    rows, w = small.corners(uv[:50])
    assert torch.autograd.gradcheck(lambda t: _BilinearBag.apply(t, rows, w), (small.table,))


def test_texture_row_zero_is_the_top():
    tex = LaplacianTexture(4, 1, 1)
    with torch.no_grad():
        tex.table.copy_(torch.arange(16.0).view(16, 1))  # texel (row r, col c) = 4 r + c
    top_left, bottom_left = tex(torch.tensor([[0.0, 1.0], [0.0, 0.0]])).detach()[:, 0]
    assert float(top_left) == 0.0 and float(bottom_left) == 12.0


def test_sh_basis_is_orthonormal():
    d = F.normalize(torch.randn(400000, 3, dtype=torch.float64), dim=1)
    y = sh_basis(d)
    gram = 4 * np.pi * (y.t() @ y) / len(d)
    assert torch.allclose(gram, torch.eye(9, dtype=torch.float64), atol=0.02)


@pytest.mark.parametrize("channels, shape", [((8, 8), (1, 5, 16, 16)), ((4, 4, 8, 16, 16), (2, 5, 70, 50)),
                                             ((4, 4, 8, 16, 16), (1, 5, 17, 33))])
def test_unet_keeps_the_image_size(channels, shape):
    net = UNet2D(shape[1], 4, channels)
    assert net(torch.zeros(shape)).shape == (shape[0], 4, *shape[2:])


# -- fitting ------------------------------------------------------------------------------------
def test_fits_beat_a_constant_colour(data, fitted):
    views, _ = data
    test = views.split("test")
    gts = [f.rgb(views.background) for f in test]
    mean = np.mean([g.reshape(-1, 3).mean(0) for g in gts], axis=0)
    constant = np.mean([psnr(np.broadcast_to(mean, g.shape), g) for g in gts])
    scores = {}
    for name, (plugin, model, _) in fitted.items():
        scores[name] = np.mean([psnr(plugin.render(model, f.camera, views.background), g) for f, g in zip(test, gts)])
        assert model.metrics["heldout_from"] == "test"
        assert model.metrics["heldout_psnr"] == pytest.approx(scores[name], abs=0.5)  # same views, same size
    # measured: constant 10.0 dB, texture 25.2 dB, DNR 23.4 dB (300 steps only)
    assert scores["texture"] > constant + 8.0, (scores, constant)
    assert scores["dnr"] > constant + 8.0, (scores, constant)


def test_checkpoint_round_trip_renders_identically(data, fitted):
    views, _ = data
    cam = views.split("test")[1].camera.scaled(80, 80)
    for plugin, model, ckpt in fitted.values():
        cfg = read_config(ckpt)
        assert cfg["format"] == FORMAT and cfg["plugin"] == plugin.name
        assert (ckpt / "mesh.npz").is_file() and not list(ckpt.glob("*.part*"))
        loaded = plugin.load(ckpt)
        a, b = plugin.render(model, cam), plugin.render(loaded, cam)
        assert a.shape == (80, 80, 3) and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        # the GUI renders from a worker thread: it gets its own rasterizer and the same image
        box = {}
        th = threading.Thread(target=lambda: box.update(img=plugin.render(loaded, cam)))
        th.start()
        th.join()
        np.testing.assert_array_equal(box["img"], a)


def test_any_image_size_and_views_of_nothing(data, fitted):
    from viewer.model.camera import Camera, look_at

    views, _ = data
    cam = views.split("test")[0].camera
    odd = cam.scaled(37, 23)
    away = Camera(odd.fx, odd.fy, odd.cx, odd.cy, 37, 23, look_at(cam.center, 2 * cam.center))  # faces away
    for plugin, model, _ in fitted.values():
        assert plugin.render(model, odd).shape == (23, 37, 3)
        np.testing.assert_array_equal(plugin.render(model, away, (0.2, 0.4, 0.6)),
                                      np.broadcast_to(np.float32([0.2, 0.4, 0.6]), (23, 37, 3)))


def test_load_refuses_damaged_checkpoints(fitted, tmp_path):
    import shutil

    _, _, ckpt = fitted["dnr"]
    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    with open(bad / "model.safetensors", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(LoadError, match="truncated"):
        DNR.load(bad)
    with pytest.raises(LoadError, match="not a Lucid3D renderer checkpoint"):
        DNR.load(tmp_path)
    with pytest.raises(LoadError):
        load_checkpoint(tmp_path / "missing", lambda c: None)


def test_cancel_keeps_a_loadable_checkpoint(data, tmp_path):
    views, mesh = data
    progress = Progress()
    steps = []

    def on_update(step, total, message):
        if message.startswith("step"):
            steps.append(step)
            if len(steps) >= 3:
                progress.cancel()

    progress._on_update = on_update
    cfg = DNR.Config(iters=100000, minutes=0, val_every=5, texture_size=64, levels=2)
    model = DNR.fit(views, mesh, cfg, progress, checkpoint_dir=tmp_path / "ckpt")
    assert model.metrics["stopped_by"] == "cancelled"
    loaded = DNR.load(tmp_path / "ckpt")
    assert loaded.metrics["stopped_by"] == "cancelled"
    img = DNR.render(loaded, views.split("test")[0].camera)
    assert img.shape == (SIZE, SIZE, 3) and np.isfinite(img).all()


def test_fit_refuses_a_mesh_that_covers_nothing(data):
    views, mesh = data
    far = replace(mesh, points=mesh.points + 1e3 * np.ptp(mesh.points, axis=0).max())
    with pytest.raises(ValueError, match="covers no pixel"):
        TEXTURE.fit(views, far, TEXTURE.Config(iters=5, minutes=0), Progress())


# -- normals, the box the learned view renders, older checkpoints, scan-like captures ---------------
def _crease_mesh():
    """A cube (sharp edges) with an xatlas atlas: corner normals must stay split at its edges."""
    import pyvista as pv

    from viewer.model.geometry import Mesh
    from viewer.geometry.uvatlas import parametrize

    cube = pv.Cube().triangulate()
    faces = np.asarray(cube.faces).reshape(-1, 4)[:, 1:]
    return parametrize(Mesh(np.asarray(cube.points), faces))


@pytest.mark.parametrize("which", ["globe", "cube"])
def test_normals_are_those_the_capture_shades_with(data, which):
    """Corner normals from points and faces alone equal split_creases' (what capture renders)."""
    from plugins._nr.shading import MeshShading
    from viewer.geometry.normals import split_creases

    mesh = data[1] if which == "globe" else _crease_mesh()
    reference = split_creases(mesh)  # same faces, same order; vertices split at creases
    sh = MeshShading(mesh)
    got = sh.corner.reshape(-1, 3)
    want = reference.normals[reference.faces].reshape(-1, 3)
    cos = np.einsum("ij,ij->i", got, want)
    assert np.percentile(cos, 1) > 0.999, np.percentile(cos, [0, 1, 50])
    if which == "cube":  # flat faces: every corner normal is its face's axis
        assert np.allclose(np.abs(got).max(1), 1.0, atol=1e-6)


def test_pixel_normals_interpolate_the_corners():
    from plugins._nr.shading import MeshShading

    mesh = _crease_mesh()
    sh = MeshShading(mesh)
    f = 5
    uv3 = mesh.uv[mesh.faces[f]]
    uv = np.stack([uv3[0], uv3[1], uv3[2], uv3.mean(0)])[None].astype(np.float32)  # (1, 4, 2)
    face = np.array([[f, f, f, -1]])
    n = sh.normals(face, uv)
    np.testing.assert_allclose(n[0, :3], sh.corner[f], atol=1e-4)
    assert np.all(n[0, 3] == 0)  # an uncovered pixel has no normal


@pytest.mark.parametrize("mask_box, shape, want", [
    ((50, 60, 3, 9), (128, 128), (0, 34, 32, 82)),  # margin 16, sizes rounded up to 16
    ((0, 128, 0, 1), (128, 128), (0, 0, 32, 128)),  # clipped at the image's edges
    ((120, 121, 127, 128), (128, 128), (96, 96, 128, 128)),  # a corner pixel: the box moves inwards
    ((5, 6, 5, 6), (20, 30), (0, 0, 30, 20)),  # an image smaller than the rounding: all of it
    (None, (40, 40), None),  # nothing covered: no box
], ids=["middle", "edge", "corner", "small-image", "empty"])
def test_cover_box(mask_box, shape, want):
    from plugins._nr.data import cover_box

    mask = np.zeros(shape, bool)
    if mask_box is not None:
        r0, r1, c0, c1 = mask_box
        mask[r0:r1, c0:c1] = True
    assert cover_box(mask) == want
    if want is not None:  # everything covered is inside
        x0, y0, x1, y1 = want
        assert mask[y0:y1, x0:x1].sum() == mask.sum()


def test_learned_view_box_matches_the_whole_frame(data, fitted):
    """Rendering only the box around the mesh changes nothing a viewer can see."""
    from plugins._nr.data import camera_batch
    from plugins._nr.model import composite
    from plugins._nr.shading import mesh_shading

    views, _ = data
    plugin, model, _ = fitted["dnr"]
    for f in views.split("test"):
        cam = f.camera.scaled(128, 128)
        boxed = plugin.render(model, cam)
        m = model.rasterizer().rasterize(cam)
        with torch.inference_mode():
            normal = mesh_shading(model.mesh).normals(m.face, m.uv) if model.net.uses_normals else None
            rgb, alpha, _ = model.net(camera_batch(cam, m.uv, m.mask, "cpu", normal))
            whole = composite(rgb, alpha, model.background)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        assert psnr(boxed, whole) > 45.0
        assert np.abs(boxed - whole).max() < 0.05


def test_dnr_with_pixel_coverage_fits_and_renders_as_it_scored(data, tmp_path):
    """``coverage=3``: the fit sees each pixel's covered share (fractional along the silhouette);
    the checkpoint renders through the same path (the rasterizer's coverage) what the fit scored,
    and the image's coverage starts from the share rather than from the centre mask."""
    from plugins._nr.data import camera_batch
    from plugins._nr.shading import mesh_shading

    views, mesh = data
    cfg = DNR.Config(iters=40, minutes=0, val_every=100, seed=0, coverage=3, texture_size=64)
    model = DNR.fit(views, mesh, cfg, Progress(), checkpoint_dir=tmp_path / "ck")
    assert model.net.coverage_samples == 3
    loaded = DNR.load(tmp_path / "ck")
    assert loaded.net.coverage_samples == 3
    test = views.split("test")
    cam = test[0].camera
    m = loaded.rasterizer().rasterize(cam, coverage=3)
    assert ((m.coverage > 0) & (m.coverage < 1)).sum() > 20
    with torch.inference_mode():
        net = DNR.build(dict(model.config), {"covered_pixels": 4096})  # untrained: the prior alone
        net.eval()
        normal = mesh_shading(loaded.mesh).normals(m.face, m.uv) if net.uses_normals else None
        _, alpha, _ = net(camera_batch(cam, m.uv, m.mask, "cpu", normal, coverage=m.coverage))
    a = alpha[0, 0].numpy()
    edge = (m.coverage > 0.2) & (m.coverage < 0.8)
    assert np.all((a[edge] > 0.01) & (a[edge] < 0.99))  # neither 0 nor 1 where the share is not
    assert np.all(a[m.coverage == 1] > 0.99)
    scores = [psnr(DNR.render(loaded, f.camera), f.rgb(views.background)) for f in test]
    assert np.mean(scores) == pytest.approx(model.metrics["heldout_psnr"], abs=0.05)


def _disc_frame(alpha: str, size: int = 64, mask: bool = False):
    """A frame of a disc on transparency: alpha "binary" (pixel centres), "blended" (each
    pixel's covered share, 4 x 4 samples) or "none" (opaque everywhere, as a camera's photo)."""
    from viewer.model.camera import Camera, look_at
    from viewer.model.viewset import Frame

    s = 4
    yy, xx = (np.mgrid[0:size * s, 0:size * s] + 0.5) / s
    fine = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2).reshape(size, s, size, s).mean((1, 3))
    centre = (np.mgrid[0:size, 0:size] + 0.5 - size / 2) ** 2
    binary = centre.sum(0) < (size / 3) ** 2
    a = {"binary": binary * 255.0, "blended": fine * 255.0, "none": np.full((size, size), 255.0)}[alpha]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.rint(a).astype(np.uint8)
    cam = Camera(50.0, 50.0, size / 2, size / 2, size, size, look_at([0, 0, 3], [0, 0, 0], [0, 1, 0]))
    return Frame(cam, rgba, mask=binary if mask else None)


@pytest.mark.parametrize("alpha, size, mask, want", [
    ("binary", 64, False, False),   # a render sampled at pixel centres: the centre mask is exact
    ("binary", 32, False, True),    # ... shrunk to train at 32: area-filtered, blended
    ("blended", 64, False, True),   # anti-aliased render
    ("none", 64, False, True),      # a camera's photo without transparency
    ("none", 64, True, False),      # a separate binary mask decides coverage
])
def test_photos_blend_edges_decides_pixel_coverage(alpha, size, mask, want):
    from plugins._nr.data import photos_blend_edges

    assert photos_blend_edges([_disc_frame(alpha, mask=mask)] * 3, size) is want


def test_dnr_coverage_from_the_photos_is_stored_as_decided(data, tmp_path):
    """``coverage=0`` (the default): the globe capture's alpha is 0 or 1 at its own size, so the
    fit takes the centre mask (1) and stores 1; fitted at half the size the targets blend (3)."""
    views, mesh = data
    for size, want in ((0, 1), (32, 3)):
        cfg = DNR.Config(iters=2, minutes=0, val_every=100, seed=0, texture_size=32, size=size)
        assert cfg.coverage == 0
        model = DNR.fit(views, mesh, cfg, Progress(), checkpoint_dir=tmp_path / f"ck{size}")
        assert model.config["coverage"] == want and model.net.coverage_samples == want
        assert read_config(tmp_path / f"ck{size}")["config"]["coverage"] == want


def test_a_checkpoint_from_before_the_shading_network_loads():
    """Configs stored before ``shade``/``unet_convs`` existed build the network they describe."""
    from dataclasses import asdict

    cfg = asdict(DNR.Config(texture_size=32, levels=2))
    old = {k: v for k, v in cfg.items() if k not in ("shade", "unet_convs")}
    net = DNR.build(old, {})
    assert net.shade is None and not net.uses_normals
    assert "unet.down.0.0.weight" in net.state_dict()  # the old key layout (one conv per level)
    assert DNR.build(dict(cfg), {"covered_pixels": 4096}).uses_normals


def test_shading_lobes_and_the_mlp_of_older_checkpoints():
    """``lobes`` makes the shading network highlight lobes; a config stored before ``lobes``
    existed (with a shading network) builds the MLP it was fitted with, and its weights load."""
    from dataclasses import asdict

    import torch

    from plugins._nr.networks import Lobes

    cfg = asdict(DNR.Config(texture_size=32, levels=2, lobes=True, shade=12))
    net = DNR.build(dict(cfg), {"covered_pixels": 4096})
    assert isinstance(net.shade, Lobes) and net.shade.k == 12
    old = {k: v for k, v in cfg.items() if k != "lobes"}
    old["shade"] = 8
    mlp = DNR.build(old, {})
    assert isinstance(mlp.shade, torch.nn.Sequential)
    mlp.load_state_dict(DNR.build(dict(old, lobes=False), {"covered_pixels": 4096}).state_dict())
    # a lobe is 1 where the mirror direction meets its direction and falls off with the angle
    lobes = Lobes(3)
    d = torch.nn.functional.normalize(lobes.dirs.detach(), dim=1)[0]
    inputs = torch.zeros(2, 9)
    inputs[0, 6:9] = d
    inputs[1, 6:9] = -d
    out = lobes(inputs).detach()
    assert torch.allclose(out[0], torch.ones(3)) and float(out[1].max()) < 1e-3


@pytest.mark.parametrize("skip, dense, want", [(True, 512, 512), (False, 512, 0), (True, 0, 0)],
                         ids=["skip-dense", "no-skip-no-dense", "dense-off"])
def test_dense_colour_loss_only_with_the_texture_skip(skip, dense, want):
    """The direct colour loss fits features 0..2 to the photo: only where they ARE the colour."""
    from dataclasses import asdict

    cfg = asdict(DNR.Config(texture_size=32, levels=2, texture_skip=skip, dense=dense))
    net = DNR.build(cfg, {"covered_pixels": 4096, "mean_rgb": torch.tensor([0.2, 0.4, 0.6])})
    assert cfg["dense"] == want
    uv = torch.rand(10, 2)
    if skip:  # the colour starts at the photos' mean (plus the texture's small noise)
        assert torch.allclose(net.dense_colour(uv), torch.tensor([0.2, 0.4, 0.6]).expand(10, 3), atol=0.1)


def test_fit_with_the_dense_colour_loss(data, tmp_path):
    views, mesh = data
    cfg = DNR.Config(iters=40, minutes=0, val_every=20, texture_size=64, levels=2, dense=2048)
    model = DNR.fit(views, mesh, cfg, Progress())
    assert model.metrics["steps"] == 40 and np.isfinite(model.metrics["heldout_psnr"])
    assert model.config["dense"] == 2048


@pytest.mark.parametrize("name, min_faces", [("ant", 20_000), ("nut", 5_000)])
def test_scan_colours_makes_a_uv_free_vertex_coloured_mesh(name, min_faces):
    import pyvista.examples

    from viewer.io import load_path
    from viewer.compute.capture import scan_colours

    mesh = load_path(Path(pyvista.examples.__file__).parent / f"{name}.ply")
    scan = scan_colours(mesh, seed=3, min_faces=min_faces)
    assert scan.n_faces >= min_faces and scan.uv is None and scan.texture is None
    assert scan.colors.shape == (scan.n_points, 3) and scan.colors.dtype == np.uint8
    assert len(np.unique(scan.colors, axis=0)) > 100  # detail, not a flat colour
    assert scan.normals is not None
    np.testing.assert_array_equal(scan_colours(mesh, seed=3, min_faces=min_faces).colors, scan.colors)
