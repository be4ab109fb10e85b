"""Neural Point-Based Graphics (plugins/npbg) on a tiny capture of pyvista's globe, whose
``points.ply`` the capture samples from the mesh surface.

* ``capture`` writes points.ply: on the surface, coloured by the texture.
* A short fit scores a finite held-out PSNR, better than after its first step; the checkpoint
  (config.json, model.safetensors, points.npz) loads and renders identical pixels.
* The CLI: fit (from points.ply and from a COLMAP points3D.bin), render and evaluate; bad clouds
  (no point in any camera's view, NaN coordinates, too many points) exit 2 with one line and
  write nothing.
* ``--val-fraction`` carves val views out of train (split_views, and texture from the CLI).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from plugins._nr.fit import split_views
from plugins.npbg import PLUGIN as NPBG
from tests.plugins import two_threads  # noqa: F401  (autouse: two torch threads)
from tests.plugins.test_texture_dnr import capture_scene
from viewer.cli import main as cli_main
from viewer.jobs.progress import Progress
from viewer.model.camera import Camera, look_at
from viewer.model.viewset import Frame


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return capture_scene(tmp_path_factory.mktemp("npbg") / "globe")


@pytest.fixture(scope="module")
def data(scene):
    from viewer.io import load_path
    from viewer.io.photosets import load_viewset

    return load_viewset(scene), load_path(scene / "points.ply"), load_path(scene / "mesh.obj")


def _fit(data, ckpt, iters):
    views, cloud, _ = data
    cfg = NPBG.Config(iters=iters, minutes=0, val_every=100, seed=0, size=48, crop=48)
    return NPBG.fit(views, cloud, cfg, Progress(), checkpoint_dir=ckpt)


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("npbgfit") / "ckpt"
    return _fit(data, ckpt, 200), ckpt


def test_capture_samples_the_surface_with_the_texture_colours(data):
    _, cloud, mesh = data
    assert cloud.n_points == 100_000 and cloud.colors is not None
    lo, hi = np.asarray(mesh.bounds()).reshape(3, 2).T
    assert np.all(cloud.points >= lo - 1e-6 * np.abs(lo).max()) and np.all(cloud.points <= hi + 1e-6 * np.abs(hi).max())
    # the globe is nearly a sphere: every sample lies within the radii of its vertices
    c = mesh.points.mean(0)
    r, rv = np.linalg.norm(cloud.points - c, axis=1), np.linalg.norm(mesh.points - c, axis=1)
    assert r.max() <= rv.max() * (1 + 1e-9) and r.min() >= rv.min() * 0.95
    assert len(np.unique(cloud.colors, axis=0)) > 50  # the procedural texture, not one colour


def test_fit_beats_its_first_step_and_round_trips(data, fitted, tmp_path):
    model, ckpt = fitted
    first = _fit(data, tmp_path / "one", 1)
    assert np.isfinite(model.metrics["heldout_psnr"])
    # (the coverage prior makes the first step already draw the silhouette: +1.8 dB measured)
    assert model.metrics["heldout_psnr"] > first.metrics["heldout_psnr"] + 1.0
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors", "points.npz"]
    assert NPBG.owns_checkpoint(ckpt)
    # 64² photos shrunk to 48² blend the silhouette: the share of 3 x 3 sub-cells, decided and stored
    assert model.config["coverage"] == 3 and model.net.share == 3
    back = NPBG.load(ckpt)
    assert back.config["coverage"] == 3 and back.net.share == 3
    views = data[0]
    for f in views.split("test")[:2]:
        a, b = NPBG.render(model, f.camera), NPBG.render(back, f.camera)
        assert a.shape == (f.camera.height, f.camera.width, 3) and np.array_equal(a, b)
    assert np.array_equal(back.points.points, data[1].points) and np.array_equal(back.points.colors, data[1].colors)


def test_orbit_frames_the_cloud(fitted):
    model, _ = fitted
    o = NPBG.orbit(model)
    assert o.radius > 0 and np.all(np.isfinite(o.center))


def _points3d_bin(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    out = [struct.pack("<Q", len(xyz))]
    for i, (p, c) in enumerate(zip(xyz, rgb)):
        out.append(struct.pack("<Q3d3BdQ", i + 1, *p, *c, 0.5, 0))
    path.write_bytes(b"".join(out))


def test_cli_fit_render_evaluate(scene, data, tmp_path, capsys):
    cloud = data[1]
    pick = np.random.default_rng(0).choice(cloud.n_points, 5000, replace=False)
    pts = tmp_path / "points3D.bin"
    _points3d_bin(pts, cloud.points[pick], cloud.colors[pick])
    out = tmp_path / "ck"
    assert cli_main(["fit", "npbg", "--scene", str(scene), "--points", str(pts), "--out", str(out), "--iters", "8",
                     "--size", "32", "--val-fraction", "0.25", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 8 and summary["heldout_from"] == "val (carved out of train)"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["points"]["n_points"] == 5000 and cfg["points"]["source"] == str(pts.resolve())
    renders = tmp_path / "renders"
    assert cli_main(["render", "--checkpoint", str(out), "--scene", str(scene), "--out", str(renders)]) == 0
    assert len(list(renders.glob("*.png"))) == 4
    capsys.readouterr()
    assert cli_main(["evaluate", "--checkpoint", str(out), "--scene", str(scene)]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["psnr"])


def _xyz(path: Path, pts: np.ndarray) -> Path:
    path.write_text("\n".join(" ".join(map(str, p)) for p in pts) + "\n")
    return path


def _ply(path: Path, pts: np.ndarray) -> Path:
    from viewer.compute.photoset import write_points_ply
    from viewer.model.geometry import PointCloud

    write_points_ply(PointCloud(pts), path)
    return path


def _unseen(d: Path, scene: Path) -> Path:
    """A small cloud far out in a direction none of the scene's cameras looks at."""
    from viewer.io.photosets import load_viewset

    cams = [f.camera for f in load_viewset(scene).frames]
    centre = np.mean([c.center for c in cams], 0)
    reach = 100 * max(np.linalg.norm(c.center - centre) for c in cams)
    for v in np.random.default_rng(0).normal(size=(500, 3)):
        pts = centre + reach * v / np.linalg.norm(v) + np.random.default_rng(1).normal(size=(50, 3))
        if not any(np.any((z > 0) & (uv >= 0).all(1) & (uv[:, 0] < c.width) & (uv[:, 1] < c.height))
                   for c in cams for uv, z in [c.project(pts)]):
            return _xyz(d / "far.xyz", pts)
    raise AssertionError("every direction is seen")


BAD = {  # case -> (cloud file maker, what the one line says)
    "outside_every_view": (_unseen, "no point of the cloud is in any training camera's view"),
    "nan_in_xyz": (lambda d, _: _xyz(d / "nan.xyz", np.r_[np.zeros((5, 3)), [[np.nan, 0, 0]]]), "NaN or infinite"),
    "nan_in_ply": (lambda d, _: _ply(d / "nan.ply", np.r_[np.zeros((5, 3)), [[0, np.inf, 0]]]), "NaN or infinite"),
    "too_many_points": (lambda d, _: _xyz(d / "many.xyz", np.zeros((30, 3))), "30 points; at most 20 are supported"),
    "a_mesh_method": (None, "dnr renders a triangle mesh: give --mesh, not --points"),
    "vgg_weights_missing": (None, "no such file or folder (--vgg-weights)"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_clouds_exit_2_and_write_nothing(case, scene, tmp_path, capsys, monkeypatch):
    import viewer.cli.fit as fit_cli

    make, says = BAD[case]
    if case == "too_many_points":
        monkeypatch.setattr(fit_cli, "MAX_POINTS", 20)  # a 20 M-point file would be 500 MB
    pts = make(tmp_path, scene) if make else scene / "points.ply"
    out = tmp_path / "out"
    args = ["fit", "npbg", "--scene", scene, "--points", pts, "--out", out, "--iters", 3, "--size", 32, "--quiet"]
    if case == "a_mesh_method":
        args[1] = "dnr"
    if case == "vgg_weights_missing":
        args += ["--vgg-weights", tmp_path / "vgg19.pth"]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = cli_main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err
    if case in ("outside_every_view", "nan_in_xyz", "nan_in_ply"):  # said of the cloud's file
        assert lines[0].startswith(f"error: {pts}: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _frames(n: int) -> list[Frame]:
    cam = Camera(10, 10, 4, 4, 8, 8, look_at(np.array([0.0, -3.0, 0.0]), np.zeros(3)))
    return [Frame(cam, np.zeros((8, 8, 4), np.uint8), name=f"f{i}", split="train") for i in range(n)]


@pytest.mark.parametrize("n,fraction,n_val", [(10, 0.2, 2), (10, 0.01, 1), (3, 0.9, 2), (1, 0.5, 0)],
                         ids=["20pct", "at-least-one", "never-all", "one-frame-none"])
def test_val_fraction_carves_val_out_of_train(n, fraction, n_val):
    train, held, where = split_views(_frames(n), 4, fraction)
    if n_val == 0:
        assert where.startswith("train") and len(train) == 1
        return
    assert len(held) == n_val and len(train) == n - n_val and where == "val (carved out of train)"
    assert not {f.name for f in train} & {f.name for f in held}


@pytest.mark.parametrize("method", ["texture", "dnr"])
def test_val_fraction_for_the_mesh_renderers(method, scene, tmp_path, capsys):
    out = tmp_path / "ck"
    assert cli_main(["fit", method, "--scene", str(scene), "--mesh", str(scene / "mesh.obj"), "--out", str(out),
                     "--iters", "3", "--size", "32", "--val-fraction", "0.25", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["heldout_from"] == "val (carved out of train)"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["val_fraction"] == 0.25 and len(cfg["metrics"]["heldout_views"]) == 3  # 12 train x 0.25


def test_learned_points_are_the_cloud_and_its_descriptors(fitted, data):
    model, _ = fitted
    cloud, desc = NPBG.learned_points(model)
    assert cloud.n_points == data[1].n_points and desc.shape == (cloud.n_points, 8) and desc.dtype == np.float32
    assert np.isfinite(desc).all() and desc.std(0).min() > 0


def test_coverage_off_for_photos_at_their_own_size(data, tmp_path):
    """Photos whose alpha is 0 or 1 at the training size (renders sampled at pixel centres): the
    default decides no share (as DNR's), and a checkpoint without the setting loads as none."""
    import json

    views, cloud, _ = data
    cfg = NPBG.Config(iters=1, minutes=0, val_every=100, seed=0, size=64, crop=48)
    model = NPBG.fit(views, cloud, cfg, Progress(), checkpoint_dir=tmp_path / "ck")
    assert model.config["coverage"] == 1 and model.net.share == 0
    conf = json.loads((tmp_path / "ck" / "config.json").read_text())
    conf["config"].pop("coverage")
    (tmp_path / "ck" / "config.json").write_text(json.dumps(conf))
    assert NPBG.load(tmp_path / "ck").net.share == 0
