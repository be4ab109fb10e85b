"""IDR / NeuS scene folders (``viewer/io/idr_cameras.py``): ``cameras.npz`` written with numpy
from known intrinsics and poses reads back as the same cameras (any sign or scale of the
projection, 3x4 or 4x4), masks from ``mask/``, the scale matrix as the normalisation, the LLFF
test split; :func:`save_idr_cameras` round-trips; bad folders are one-line LoadErrors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from viewer.io.idr_cameras import save_idr_cameras
from viewer.io.photosets import is_viewset_path, load_viewset
from viewer.model.camera import Camera, look_at
from viewer.model.errors import LoadError

W, H = 40, 30


def _truth(n: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(K, camera-to-world) of ``n`` cameras around the origin, with different intrinsics."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        eye = rng.normal(size=3)
        eye = 3 * eye / np.linalg.norm(eye)
        k = np.array([[50 + 3 * i, 0, 19.5 + 0.1 * i], [0, 48 + 2 * i, 14.5 - 0.1 * i], [0, 0, 1]])
        out.append((k, look_at(eye, rng.normal(size=3) * 0.1)))
    return out


def _write_scene(root, truth, *, factor: float = 1.0, rows: int = 4, masks: bool = True, scale_mat=True,
                 name: str = "cameras.npz"):
    """An IDR folder written with numpy and Pillow only: world_mat_i = factor * K [R | t]."""
    (root / "image").mkdir(parents=True)
    arrays = {}
    s = np.diag([2.0, 2.0, 2.0, 1.0])
    s[:3, 3] = [0.1, -0.2, 0.3]
    for i, (k, c2w) in enumerate(truth):
        w2c = np.linalg.inv(c2w)
        p = np.eye(4)
        p[:3, :4] = factor * (k @ w2c[:3, :4])
        arrays[f"world_mat_{i}"] = p[:rows]
        if scale_mat:
            arrays[f"scale_mat_{i}"] = s
        img = np.zeros((H, W, 3), np.uint8) + i
        Image.fromarray(img).save(root / "image" / f"{i:06d}.png")
        if masks:
            (root / "mask").mkdir(exist_ok=True)
            m = np.zeros((H, W), np.uint8)
            m[5 + i % 3:20, 10:30] = 255
            Image.fromarray(m).save(root / "mask" / f"{i:03d}.png")
    np.savez(root / name, **arrays)
    return root


@pytest.mark.parametrize("factor,rows,name", [(1.0, 4, "cameras.npz"), (-2.5, 3, "cameras.npz"),
                                              (1e-3, 4, "cameras_sphere.npz")],
                         ids=["4x4", "3x4-negative-scale", "neus-file-tiny-scale"])
def test_cameras_round_trip(tmp_path, factor, rows, name):
    truth = _truth()
    scene = _write_scene(tmp_path / "s", truth, factor=factor, rows=rows, name=name)
    assert is_viewset_path(scene)
    vs = load_viewset(scene)
    assert len(vs.frames) == len(truth)
    for f, (k, c2w) in zip(vs.frames, truth):
        cam = f.camera
        got = [cam.fx, cam.fy, cam.cx, cam.cy]
        assert np.allclose(got, [k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5], atol=1e-6)
        assert np.allclose(cam.c2w, c2w, atol=1e-8)
        assert f.mask is not None and f.mask.shape == (H, W)
    assert vs.frames[1].mask[5, 10] == False and vs.frames[1].mask[6, 10] == True  # noqa: E712 (mask 1 starts at row 6)
    assert [f.split for f in vs.frames[:9]] == ["test"] + ["train"] * 7 + ["test"]
    assert vs.meta["normalization"] == {"center": [0.1, -0.2, 0.3], "scale": 2.0}


def test_saved_cameras_read_back(tmp_path):
    cams = [Camera(k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5, W, H, c2w) for k, c2w in _truth(4)]
    scene = _write_scene(tmp_path / "s", _truth(4), masks=False, scale_mat=False)
    save_idr_cameras(scene / "cameras.npz", cams, center=(1, 2, 3), scale=0.5)
    vs = load_viewset(scene / "cameras.npz")
    for f, c in zip(vs.frames, cams):
        assert np.allclose(f.camera.c2w, c.c2w, atol=1e-9) and np.isclose(f.camera.fx, c.fx)
        assert f.mask is None
    assert vs.meta["normalization"] == {"center": [1.0, 2.0, 3.0], "scale": 0.5}


def _drop_camera(root):
    z = dict(np.load(root / "cameras.npz"))
    del z["world_mat_3"]
    np.savez(root / "cameras.npz", **z)


def _nan_camera(root):
    z = dict(np.load(root / "cameras.npz"))
    z["world_mat_2"][0, 0] = np.nan
    np.savez(root / "cameras.npz", **z)


def _singular_camera(root):
    z = dict(np.load(root / "cameras.npz"))
    z["world_mat_1"][:3, 2] = 0
    np.savez(root / "cameras.npz", **z)


def _huge_member(root):
    z = dict(np.load(root / "cameras.npz"))
    z["world_mat_0"] = np.zeros((1000, 1000))
    np.savez(root / "cameras.npz", **z)


def _missing_mask(root):
    (root / "mask" / "004.png").unlink()


def _nonuniform_scale(root):
    z = dict(np.load(root / "cameras.npz"))
    z["scale_mat_0"] = np.diag([1.0, 2.0, 3.0, 1.0])
    np.savez(root / "cameras.npz", **z)


def _not_a_zip(root):
    (root / "cameras.npz").write_bytes(b"not a zip file at all")


@pytest.mark.parametrize("damage,words", [
    (_drop_camera, "has no world_mat_3"), (_nan_camera, "world_mat_2 has NaN"),
    (_singular_camera, "world_mat_1 is not a camera projection"), (_huge_member, "not a camera matrix"),
    (_missing_mask, "holds 9 masks for 10 photos"), (_nonuniform_scale, "not a uniform scale"),
    (_not_a_zip, "unreadable cameras file"),
], ids=["missing-camera", "nan", "singular", "huge-member", "mask-count", "non-uniform-scale", "not-a-zip"])
def test_bad_idr_folders_say_what_is_wrong(tmp_path, damage, words):
    scene = _write_scene(tmp_path / "s", _truth())
    damage(scene)
    with pytest.raises(LoadError) as err:
        load_viewset(scene)
    msg = f"{err.value.path}: {err.value.reason}"
    assert words in msg and "\n" not in msg, msg
