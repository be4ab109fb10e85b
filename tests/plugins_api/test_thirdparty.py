"""A plugin written outside the project (tests/thirdparty: a threshold segmenter and a flat-colour
renderer, a few dozen lines, docs/PLUGINS.md), installed with pip, works through the command line
with no change to viewer/; a broken entry point beside it is listed with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(env, *args, timeout=180):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _ball_case(folder: Path, seed: int, centre=(20, 22, 18), radius=7) -> tuple[Path, Path, np.ndarray]:
    """A bright ball in noise, with its label (value 3), as NIfTI files."""
    rng = np.random.default_rng(seed)
    ijk = np.indices((40, 44, 36)).transpose(1, 2, 3, 0)
    ball = np.linalg.norm(ijk - np.array(centre), axis=-1) <= radius
    image = (rng.normal(100, 15, ball.shape) + 120 * ball).astype(np.float32)
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    img, lab = folder / f"img{seed}.nii.gz", folder / f"lab{seed}.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), img)
    nib.save(nib.Nifti1Image(ball.astype(np.uint8) * 3, affine), lab)
    return img, lab, ball


def test_listed_with_the_builtins_and_the_broken_one_says_why(thirdparty_env):
    r = _cli(thirdparty_env, "plugins")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["threshold"]["available"] and rows["threshold"]["kind"] == "segmenter"
    assert rows["flat"]["available"] and rows["flat"]["kind"] == "renderer"
    assert rows["threshold"]["distribution"] == "lucid3d-threshold"
    assert not rows["broken"]["available"]
    assert "No module named 'lucid3d_threshold_missing'" in rows["broken"]["problem"]
    assert {"unet3d", "texture", "dnr"} <= {n for n, row in rows.items() if row["available"]}
    # each method's settings: what `--set FIELD=VALUE` accepts, with defaults and help
    subsample = rows["deepmedic"]["settings"]["subsample"]
    assert subsample["default"] == "3,5" and "x5" in subsample["help"]
    assert "settings" not in rows["broken"]


def test_threshold_segmenter_trains_and_segments_from_the_command_line(thirdparty_env, tmp_path):
    img, lab, _ = _ball_case(tmp_path, 0)
    test_img, _, truth = _ball_case(tmp_path, 1, centre=(18, 20, 20), radius=8)
    ckpt, mask = tmp_path / "ckpt", tmp_path / "mask.nii.gz"
    r = _cli(thirdparty_env, "train-segmenter", "--model", "threshold", "--image", img, "--label", lab,
             "--out", ckpt, "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json"]
    r = _cli(thirdparty_env, "segment", "--checkpoint", ckpt, "--input", test_img, "--output", mask, "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["3"]["voxels"] > 0
    pred = np.asarray(nib.load(mask).dataobj)
    dice = 2 * np.sum((pred == 3) & truth) / (np.sum(pred == 3) + truth.sum())
    assert dice > 0.9, dice  # an unseen case, a threshold learned from another
    # a post-processing setting it has not (the built-in segmenters' CRF) is refused by name
    r = _cli(thirdparty_env, "segment", "--checkpoint", ckpt, "--input", test_img, "--output", tmp_path / "crf.nii.gz",
             "--crf", "--quiet")
    assert r.returncode == 2 and r.stderr.strip() == "error: --crf: the threshold segmenter has no such setting"
    assert not (tmp_path / "crf.nii.gz").exists()
    # its checkpoint folder is its own: --overwrite replaces it, a folder of something else is refused
    r = _cli(thirdparty_env, "train-segmenter", "--model", "threshold", "--image", img, "--label", lab,
             "--out", ckpt, "--overwrite", "--quiet")
    assert r.returncode == 0, r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = _cli(thirdparty_env, "train-segmenter", "--model", "threshold", "--image", img, "--label", lab,
             "--out", other, "--overwrite", "--quiet")
    assert r.returncode == 2 and (other / "notes.txt").read_text() == "mine"


def _flat_scene(folder: Path) -> tuple[Path, Path]:
    """Four photos of one colour (train 3, test 1) and a mesh, as a transforms.json scene."""
    from viewer.geometry.primitives import uv_sphere
    from viewer.io.meshes import save_mesh
    from viewer.io.photosets import save_transforms
    from viewer.model.camera import sphere_cameras
    from viewer.model.viewset import Frame, ViewSet

    cams = sphere_cameras(4, (0, 0, 0), 4.0, 32)
    colour = np.array([200, 80, 40, 255], np.uint8)
    frames = [Frame(c, np.broadcast_to(colour, (32, 32, 4)).copy(), name=f"f{i}.png",
                    split="test" if i == 3 else "train") for i, c in enumerate(cams)]
    scene = save_transforms(folder / "scene", ViewSet(frames))
    mesh = save_mesh(uv_sphere(), folder / "mesh.ply")
    return scene.parent, mesh


def test_flat_renderer_fits_renders_and_evaluates_from_the_command_line(thirdparty_env, tmp_path):
    (tmp_path / "scene").mkdir()
    scene, mesh = _flat_scene(tmp_path)
    ckpt, out = tmp_path / "flat", tmp_path / "renders"
    r = _cli(thirdparty_env, "fit", "flat", "--scene", scene, "--mesh", mesh, "--out", ckpt, "--quiet")
    assert r.returncode == 0, r.stderr
    r = _cli(thirdparty_env, "render", "--checkpoint", ckpt, "--scene", scene, "--out", out)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    img = np.asarray(Image.open(out / "f3.png"))
    assert img.shape == (32, 32, 3) and np.abs(img.astype(int) - [200, 80, 40]).max() <= 1
    r = _cli(thirdparty_env, "evaluate", "--checkpoint", ckpt, "--scene", scene)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["psnr"] > 40


def test_options_the_method_lacks_are_refused_by_name(thirdparty_env, tmp_path):
    img, lab, _ = _ball_case(tmp_path, 0)
    r = _cli(thirdparty_env, "train-segmenter", "--model", "threshold", "--image", img, "--label", lab,
             "--out", tmp_path / "c", "--patch", "32")
    assert r.returncode == 2 and r.stderr.strip() == "error: --patch: the threshold segmenter has no such setting"
    assert not (tmp_path / "c").exists()
    (tmp_path / "scene").mkdir()
    scene, mesh = _flat_scene(tmp_path)
    r = _cli(thirdparty_env, "fit", "flat", "--scene", scene, "--mesh", mesh, "--out", tmp_path / "f", "--minutes", "1")
    assert r.returncode == 2 and "--minutes: the flat renderer has no such setting" in r.stderr
    r = _cli(thirdparty_env, "render", "--checkpoint", _fit_flat(thirdparty_env, scene, mesh, tmp_path / "f2"),
             "--orbit", "3", "--out", tmp_path / "orbit")
    assert r.returncode == 2 and "does not know where to fly around" in r.stderr


def _fit_flat(env, scene, mesh, out):
    r = _cli(env, "fit", "flat", "--scene", scene, "--mesh", mesh, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def test_unknown_method_names_what_is_installed(thirdparty_env, tmp_path):
    img, lab, _ = _ball_case(tmp_path, 0)
    r = _cli(thirdparty_env, "train-segmenter", "--model", "broken", "--image", img, "--label", lab,
             "--out", tmp_path / "c")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "broken" in r.stderr and "unavailable" in r.stderr


@pytest.mark.parametrize("kind", ["segmenter", "renderer"])
def test_in_process_discovery_sees_the_installed_package(thirdparty_installed, kind):
    from viewer.plugins import discover, get_plugin

    name = {"segmenter": "threshold", "renderer": "flat"}[kind]
    assert name in discover()
    assert get_plugin(name, kind).kind == kind
