"""`main.py screenshot` with no X server: the pixels show the phantom where it is."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PHANTOM_AFFINE, SPHERE_IJK, run_cli, sphere_ras
from viewer.render.slicing import plane_axes

SIZE = 256


def _bright_centroid(img: np.ndarray) -> tuple[float, float]:
    # the sphere is the only white: 1500 HU saturates every window used here; lines are coloured
    white = np.all(img > 235, axis=2)
    ys, xs = np.nonzero(white)
    assert len(xs) > 10, "the bright sphere is not in the picture"
    return xs.mean(), ys.mean()


def _expected_pixel(view: str) -> tuple[float, float]:
    """Where the sphere must land: the view fits the volume's display box, centred."""
    u, v, _ = plane_axes(view)
    n = np.array([64, 56, 40]) - 1
    corners = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])], float)
    world = corners @ PHANTOM_AFFINE[:3, :3].T + PHANTOM_AFFINE[:3, 3]
    du, dv = world @ u, world @ v
    cx, cy = (du.min() + du.max()) / 2, (dv.min() + dv.max()) / 2
    half = max(dv.max() - dv.min(), du.max() - du.min()) / 2 * 1.05
    s = sphere_ras()
    px = SIZE / 2 + (u @ s - cx) / half * SIZE / 2
    py = SIZE / 2 - (v @ s - cy) / half * SIZE / 2
    return px, py


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_sphere_lands_where_it_is_in_each_view(phantom_files, tmp_path, view):
    img_path, _ = phantom_files
    out = tmp_path / f"{view}.png"
    r = run_cli("screenshot", img_path, "-o", out, "--view", view, "--size", f"{SIZE}x{SIZE}",
                "--cursor", *map(str, sphere_ras()), "--preset", "bone")
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (SIZE, SIZE, 3)
    x, y = _bright_centroid(img)
    ex, ey = _expected_pixel(view)
    assert abs(x - ex) < 3 and abs(y - ey) < 3, (view, (x, y), (ex, ey))


def test_sphere_is_on_the_patients_left_in_axial(phantom_files, tmp_path):
    """Radiological convention: the patient's left is on the screen's right."""
    img_path, _ = phantom_files
    assert sphere_ras()[0] < 0  # the sphere is in the patient's left half (RAS x < 0)
    out = tmp_path / "ax.png"
    r = run_cli("screenshot", img_path, "-o", out, "--size", "200x200",
                "--cursor", *map(str, sphere_ras()), "--window", "400", "--level", "40")
    assert r.returncode == 0, r.stderr
    x, _ = _bright_centroid(np.asarray(Image.open(out).convert("RGB")))
    assert x > 100


def test_label_overlay_colours_the_slice(phantom_files, tmp_path):
    img_path, lab_path = phantom_files
    plain, over = tmp_path / "plain.png", tmp_path / "over.png"
    cursor = PHANTOM_AFFINE[:3, :3] @ [24, 30, 15] + PHANTOM_AFFINE[:3, 3]
    for out, extra in ((plain, []), (over, ["--labels", lab_path])):
        r = run_cli("screenshot", img_path, "-o", out, "--size", "200x200", "--cursor", *map(str, cursor), *extra)
        assert r.returncode == 0, r.stderr
    a = np.asarray(Image.open(plain).convert("RGB")).astype(int)
    b = np.asarray(Image.open(over).convert("RGB")).astype(int)
    changed = np.abs(a - b).sum(axis=2) > 30
    # label 1 is a disc of radius 6 voxels (12 mm) => hundreds of pixels change colour, not grey
    assert changed.sum() > 300
    assert np.mean(np.ptp(b[changed], axis=1)) > 20  # coloured, not grey


def test_3d_view_renders_volume_and_surfaces(phantom_files, tmp_path):
    img_path, lab_path = phantom_files
    out = tmp_path / "3d.png"
    r = run_cli("screenshot", img_path, "--labels", lab_path, "-o", out, "--view", "3d", "--size", "240x200")
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape == (200, 240, 3)
    background = img[2, 2]
    differs = np.abs(img - background).sum(axis=2) > 60
    assert differs.mean() > 0.01


def test_window_level_changes_pixels(phantom_files, tmp_path):
    img_path, _ = phantom_files
    outs = []
    for preset in ("lung", "brain"):
        out = tmp_path / f"{preset}.png"
        assert run_cli("screenshot", img_path, "-o", out, "--size", "128x128", "--preset", preset).returncode == 0
        outs.append(np.asarray(Image.open(out).convert("L")).astype(int))
    # soft tissue (40 HU) is mid-grey in a lung window and white-ish in a brain window (L40 W80: grey 50 %)
    assert np.abs(outs[0] - outs[1]).max() > 40


@pytest.mark.parametrize("args, message", [
    (["--view", "oblique"], "invalid choice"),
    (["--size", "10x10"], "size must be"),
    (["--preset", "nosuch"], "unknown preset"),
])
def test_screenshot_bad_options(phantom_files, tmp_path, args, message):
    img_path, _ = phantom_files
    r = run_cli("screenshot", img_path, "-o", tmp_path / "x.png", *args)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and message in r.stderr and r.stderr.count("\n") == 1
