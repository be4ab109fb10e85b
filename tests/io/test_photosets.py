"""View sets from real little scenes on disk: transforms.json variants, Blender splits, COLMAP text
models, every bad input as a one-line LoadError, and save_transforms -> load_viewset round trips."""

from __future__ import annotations

import json
import zlib
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.io import kind_of, load_path
from viewer.io.photosets import LLFF_HOLD, load_viewset, read_rgba, save_transforms
from viewer.model.camera import Camera, look_at
from viewer.model.errors import LoadError
from viewer.model.viewset import Frame, ViewSet

W, H = 16, 12


def _cams(n: int, w: int = W, h: int = H, fx: float = 20.0, fy: float | None = None,
          cx: float | None = None, cy: float | None = None, seed: int = 0) -> list[Camera]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        eye = rng.normal(size=3)
        eye = 4 * eye / np.linalg.norm(eye)
        out.append(Camera(fx, fy or fx, w / 2 if cx is None else cx, h / 2 if cy is None else cy, w, h,
                          look_at(eye, rng.uniform(-0.3, 0.3, 3)), name=f"r_{i}"))
    return out


def _image(path: Path, w: int = W, h: int = H, mode: str = "RGBA", seed: int = 0) -> np.ndarray:
    """Write a random image; returns what it holds as RGBA uint8."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if mode == "RGBA":
        a[0, 0, 3], a[0, 1, 3], a[0, 2, 3] = 0, 128, 255
        Image.fromarray(a, "RGBA").save(path)
        return a
    if mode == "RGB":
        Image.fromarray(a[..., :3], "RGB").save(path)
    elif mode == "L":
        Image.fromarray(a[..., 0], "L").save(path)
        a[..., 1], a[..., 2] = a[..., 0], a[..., 0]
    elif mode == "LA":
        Image.fromarray(a[..., :2], "LA").save(path)
        a[..., 3] = a[..., 1]
        a[..., 1], a[..., 2] = a[..., 0], a[..., 0]
        return a
    a[..., 3] = 255
    return a


def _png16(path: Path, a: np.ndarray) -> None:
    """A 16-bit grey or RGBA PNG written by hand (Pillow writes neither 16-bit RGBA)."""
    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[r].astype(">u2").tobytes() for r in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path.parent


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _nerf(folder: Path, cams: list[Camera], top: dict | None = None, per_frame=None, ext: str = ".png",
          keep_ext: bool = False, sub: str = "train", name: str = "transforms.json", mode: str = "RGBA") -> Path:
    """A NeRF-style scene: images in ``sub/`` and a transforms file; returns the json path."""
    frames = []
    for i, c in enumerate(cams):
        _image(folder / sub / f"{c.name}{ext}", c.width, c.height, mode=mode, seed=i)
        fr = {"file_path": f"./{sub}/{c.name}{ext if keep_ext else ''}",
              "transform_matrix": c.opengl_c2w().tolist()}
        fr.update((per_frame or (lambda i, c: {}))(i, c))
        frames.append(fr)
    return _write_json(folder / name, {**(top or {}), "frames": frames})


def _angle_x(c: Camera) -> dict:
    return {"camera_angle_x": float(2 * np.arctan(c.width / 2 / c.fx))}


def _colmap(folder: Path, cams: list[Camera], model: str = "PINHOLE", sparse: str = "sparse/0",
            points: bool = True, images: bool = True) -> Path:
    mdir = folder / sparse if sparse else folder
    mdir.mkdir(parents=True, exist_ok=True)
    c = cams[0]
    params = {"PINHOLE": f"{c.fx!r} {c.fy!r} {c.cx!r} {c.cy!r}", "SIMPLE_PINHOLE": f"{c.fx!r} {c.cx!r} {c.cy!r}",
              "SIMPLE_RADIAL": f"{c.fx!r} {c.cx!r} {c.cy!r} 0.01", "OPENCV": "20 20 8 6 0.1 0 0 0"}[model]
    (mdir / "cameras.txt").write_text(f"# Camera list\n1 {model} {c.width} {c.height} {params}\n")
    lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, ..., NAME"]
    for i, cam in reversed(list(enumerate(cams))):  # ids out of name order on purpose
        q, t = cam.colmap_qvec_tvec()
        lines.append(f"{i + 1} {' '.join(map(repr, map(float, q)))} {' '.join(map(repr, map(float, t)))} 1 "
                     f"img_{i:03d}.png")
        lines.append("" if i % 2 else "1.5 2.5 -1 3.0 4.0 1")  # some images have no 2D points
        if images:
            _image(folder / "images" / f"img_{i:03d}.png", cam.width, cam.height, mode="RGB", seed=i)
    (mdir / "images.txt").write_text("\n".join(lines) + "\n")
    if points:
        (mdir / "points3D.txt").write_text("# 3D point list\n1 0.1 0.2 0.3 255 0 10 0.5 1 0\n"
                                           "2 -1 -2 -3 0 128 255 0.2 2 0 3 1\n")
    return folder


def _assert_same_cameras(got: list[Camera], want: list[Camera]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.c2w, w.c2w, atol=1e-9)
        np.testing.assert_allclose([g.fx, g.fy, g.cx, g.cy], [w.fx, w.fy, w.cx, w.cy], atol=1e-9)
        assert (g.width, g.height) == (w.width, w.height)


# -- good scenes -------------------------------------------------------------------------------

GOOD = {
    "blender_angle_x_no_ext": lambda d, c: (_nerf(d, c, _angle_x(c[0])), {}),
    "angle_x_and_y": lambda d, c: (_nerf(d, c, {"camera_angle_x": float(2 * np.arctan(8 / 20)),
                                                "camera_angle_y": float(2 * np.arctan(6 / 25))}),
                                   {"fy": 25.0}),
    "fl_cx_cy_w_h_jpg": lambda d, c: (_nerf(d, c, {"fl_x": 20.0, "fl_y": 23.0, "cx": 7.0, "cy": 5.5, "w": W,
                                                   "h": H}, ext=".jpg", keep_ext=True, mode="RGB"),
                                      {"fy": 23.0, "cx": 7.0, "cy": 5.5}),
    "per_frame_intrinsics_jpeg": lambda d, c: (_nerf(d, c, {"camera_angle_x": 1.0}, ext=".jpeg", mode="RGB",
                                                     per_frame=lambda i, _: {"fl_x": 20.0, "fl_y": 21.0 + i,
                                                                             "cx": 8.5, "cy": 6.0}),
                                               {"cx": 8.5, "fy_per_frame": True}),
    "only_fl_x_grey": lambda d, c: (_nerf(d, c, {"fl_x": 20.0}, mode="L"), {}),
    "three_by_four_pose_la": lambda d, c: (_write_json(
        d / "transforms.json", {"fl_x": 20.0, "frames": [
            {**json.loads(json.dumps(f)), "transform_matrix": f["transform_matrix"][:3]}
            for f in json.loads(_nerf(d, c, {"fl_x": 20.0}, mode="LA").read_text())["frames"]]}), {}),
}


@pytest.mark.parametrize("variant", list(GOOD))
def test_transforms_variants(tmp_path, variant):
    cams = _cams(3)
    json_path, changes = GOOD[variant](tmp_path, cams)
    want = []
    for i, c in enumerate(cams):
        fy = 21.0 + i if changes.get("fy_per_frame") else changes.get("fy", c.fy)
        want.append(Camera(c.fx, fy, changes.get("cx", c.cx), changes.get("cy", c.cy), W, H, c.c2w))
    for target in (tmp_path, json_path):  # the folder or the file
        vs = load_viewset(target)
        _assert_same_cameras(vs.cameras, want)
        assert [f.split for f in vs.frames] == ["train"] * 3
        assert vs.background == (1.0, 1.0, 1.0) and vs.points is None
        ext = Path(json.loads(json_path.read_text())["frames"][0]["file_path"]).suffix
        assert vs.frames[0].name.startswith("r_0.") and (not ext or vs.frames[0].name.endswith(ext))
        assert kind_of(target) == "viewset"


def test_pixels_keep_their_alpha_and_composite(tmp_path):
    cams = _cams(2)
    _nerf(tmp_path, cams, {**_angle_x(cams[0]), "background": [0.0, 0.0, 0.0]})
    vs = load_viewset(tmp_path)
    want = _image(tmp_path / "check.png", seed=0)
    np.testing.assert_array_equal(vs.frames[0].rgba, want)
    assert vs.background == (0.0, 0.0, 0.0)
    rgb = vs.frames[0].rgb(vs.background)
    np.testing.assert_allclose(rgb[0, 0], 0.0)  # alpha 0 -> the black background
    np.testing.assert_allclose(rgb[0, 1], want[0, 1, :3] / 255 * 128 / 255, atol=1e-6)
    np.testing.assert_allclose(rgb[0, 2], want[0, 2, :3] / 255, atol=1e-6)
    white = vs.frames[0].rgb((1.0, 1.0, 1.0))
    np.testing.assert_allclose(white[0, 0], 1.0)
    np.testing.assert_allclose(white[0, 1], want[0, 1, :3] / 255 * 128 / 255 + 127 / 255, atol=1e-6)


@pytest.mark.parametrize("top, background", [
    ({"white_transparent": True}, (1.0, 1.0, 1.0)), ({"black_transparent": True}, (0.0, 0.0, 0.0)),
    ({"white_transparent": False}, (1.0, 1.0, 1.0)), ({"background": [0.2, 0.4, 0.6]}, (0.2, 0.4, 0.6)),
    ({"background": [51, 102, 153]}, (0.2, 0.4, 0.6)), ({}, (1.0, 1.0, 1.0)),
])
def test_background_keys(tmp_path, top, background):
    cams = _cams(1)
    _nerf(tmp_path, cams, {**_angle_x(cams[0]), **top})
    np.testing.assert_allclose(load_viewset(tmp_path).background, background)


def test_masks_and_split_keys(tmp_path):
    cams = _cams(4)
    mask = np.zeros((H, W), np.uint8)
    mask[2:8, 3:9] = 255
    Image.fromarray(mask, "L").save(tmp_path / "m.png")
    splits = ["train", "val", "test", "validation"]
    _nerf(tmp_path, cams, _angle_x(cams[0]),
          per_frame=lambda i, c: {"split": splits[i], **({"mask_path": "m.png"} if i == 0 else {})})
    vs = load_viewset(tmp_path)
    assert [f.split for f in vs.frames] == ["train", "val", "test", "val"]
    np.testing.assert_array_equal(vs.frames[0].mask, mask > 0)
    np.testing.assert_allclose(vs.frames[0].alpha, mask / 255)
    assert vs.frames[1].mask is None
    # nerfstudio's lists of file names
    _nerf(tmp_path, cams, {**_angle_x(cams[0]), "train_filenames": ["train/r_0.png", "train/r_2.png"],
                           "val_filenames": ["./train/r_1.png"], "test_filenames": ["train/r_3.png"]})
    assert [f.split for f in load_viewset(tmp_path).frames] == ["train", "val", "train", "test"]


def test_blender_split_files(tmp_path):
    groups = {"train": _cams(3, seed=1), "val": _cams(2, seed=2), "test": _cams(1, seed=3)}
    for split, cams in groups.items():
        _nerf(tmp_path, cams, _angle_x(cams[0]), sub=split, name=f"transforms_{split}.json")
    assert kind_of(tmp_path) == "viewset"
    vs = load_path(tmp_path)
    assert isinstance(vs, ViewSet) and vs.splits == ["test", "train", "val"]
    for split, cams in groups.items():
        _assert_same_cameras([f.camera for f in vs.split(split)], cams)
    assert vs.meta["format"] == "blender"
    # one split file opened alone
    only = load_viewset(tmp_path / "transforms_val.json")
    assert [f.split for f in only.frames] == ["val", "val"]
    assert kind_of(tmp_path / "transforms_val.json") == "viewset"


@pytest.mark.parametrize("png, want", [
    ("grey16", lambda a: np.repeat(np.rint(a[..., :1] / 257), 3, 2)),
    ("rgba16", lambda a: a[..., :3] / 257),
])
def test_sixteen_bit_images_become_eight_bit(tmp_path, png, want):
    a = np.random.default_rng(0).integers(0, 65536, (H, W, 4)).astype(np.uint16)
    a = a[..., :1] if png == "grey16" else a
    _png16(tmp_path / "x.png", a)
    got = read_rgba(tmp_path / "x.png")
    assert got.dtype == np.uint8 and got.shape == (H, W, 4)
    np.testing.assert_allclose(got[..., :3], want(a.astype(np.float64)), atol=1)
    np.testing.assert_allclose(got[..., 3], 255 if png == "grey16" else a[..., 3] / 257, atol=1)


def test_palette_image_with_transparency(tmp_path):
    im = Image.new("P", (W, H), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.save(tmp_path / "p.png", transparency=0)
    got = read_rgba(tmp_path / "p.png")
    assert tuple(got[0, 0]) == (0, 0, 0, 0) and tuple(got[5, 5]) == (255, 0, 0, 255)


# -- COLMAP ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sparse, model, opened", [
    ("sparse/0", "PINHOLE", "."), ("sparse", "PINHOLE", "."), ("", "SIMPLE_PINHOLE", "."),
    ("sparse/0", "PINHOLE", "sparse/0"), ("sparse", "PINHOLE", "sparse"), ("", "PINHOLE", "cameras.txt"),
])
def test_colmap_models(tmp_path, sparse, model, opened):
    fy = 20.0 if model == "SIMPLE_PINHOLE" else 24.0
    cams = _cams(10, fx=20.0, fy=fy, cx=7.25, cy=5.5)
    _colmap(tmp_path, cams, model=model, sparse=sparse)
    target = tmp_path / opened
    if target.is_dir():
        assert kind_of(target) == "viewset"
    vs = load_viewset(target)
    assert [f.name for f in vs.frames] == [f"img_{i:03d}.png" for i in range(10)]  # by name
    _assert_same_cameras(vs.cameras, cams)
    assert [f.split for f in vs.frames] == ["test" if i % LLFF_HOLD == 0 else "train" for i in range(10)]
    assert vs.split("test") == [vs.frames[0], vs.frames[8]]
    np.testing.assert_allclose(vs.points.points, [[0.1, 0.2, 0.3], [-1, -2, -3]])
    np.testing.assert_array_equal(vs.points.colors, [[255, 0, 10], [0, 128, 255]])
    assert vs.frames[0].rgba[..., 3].min() == 255
    np.testing.assert_array_equal(vs.frames[3].rgba[..., :3], _image(tmp_path / "c.png", mode="RGB", seed=3)[..., :3])


def test_colmap_without_points_and_through_load_path(tmp_path):
    _colmap(tmp_path, _cams(3), points=False)
    vs = load_path(tmp_path)
    assert isinstance(vs, ViewSet) and vs.points is None and vs.meta["format"] == "colmap"


# -- bad scenes ----------------------------------------------------------------------------------

def _bad_nerf(**kw):
    def build(d: Path) -> Path:
        cams = _cams(2)
        top = kw.pop("top", _angle_x(cams[0]))
        _nerf(d, cams, top, **kw)
        return d
    return build


def _edit_json(build, edit, name: str = "transforms.json"):
    def run(d: Path) -> Path:
        build(d)
        p = d / name
        obj = json.loads(p.read_text())
        edit(obj)
        p.write_text(json.dumps(obj))
        return d
    return run


def _frame0(key, value):
    return lambda obj: obj["frames"][0].__setitem__(key, value)


def _bad_pose(m):
    return _frame0("transform_matrix", m)


def _blender_empty_val(d: Path) -> Path:
    cams = _cams(2)
    _nerf(d, cams, _angle_x(cams[0]), name="transforms_train.json")
    _write_json(d / "transforms_val.json", {**_angle_x(cams[0]), "frames": []})
    return d


def _colmap_edit(file: str, old: str, new: str, **kw):
    def run(d: Path) -> Path:
        _colmap(d, _cams(3), **kw)
        p = d / "sparse/0" / file
        p.write_text(p.read_text().replace(old, new, 1))
        return d
    return run


def _colmap_image_edit(image_id: int, values: dict[int, str]):
    """Set tokens of one image line of images.txt (0: IMAGE_ID, 1-4: qvec, 5-7: tvec, 8: CAMERA_ID)."""
    def run(d: Path) -> Path:
        _colmap(d, _cams(3))
        p = d / "sparse/0/images.txt"
        lines = p.read_text().split("\n")
        for k, line in enumerate(lines):
            tok = line.split()
            if len(tok) == 10 and tok[0] == str(image_id):
                for i, v in values.items():
                    tok[i] = v
                lines[k] = " ".join(tok)
        p.write_text("\n".join(lines))
        return d
    return run


def _colmap_resized(d: Path) -> Path:
    _colmap(d, _cams(3))
    _image(d / "images" / "img_001.png", 20, 12)
    return d


def _corrupt_image(d: Path) -> Path:
    _bad_nerf()(d)
    (d / "train" / "r_1.png").write_bytes(b"not a png at all")
    return d


BAD = {
    "empty_folder": (lambda d: d, "no transforms.json"),
    "unreadable_json": (lambda d: _write_text(d / "transforms.json", "{frames: ["), "not valid JSON (line 1"),
    "no_frames_key": (lambda d: _write_json(d / "transforms.json", {"camera_angle_x": 1}).parent,
                      "no 'frames' list"),
    "missing_image": (_edit_json(_bad_nerf(), _frame0("file_path", "./train/nope")), "image ./train/nope not found"),
    "size_vs_w_h": (_bad_nerf(top={"fl_x": 20.0, "w": 32, "h": 24}), "is 16x12 but the intrinsics say w=32, h=24"),
    "cx_cy_for_another_size": (_bad_nerf(top={"fl_x": 20.0, "cx": 400.0, "cy": 300.0}), "principal point cx=400"),
    "nan_pose": (_edit_json(_bad_nerf(), _bad_pose([[float("nan")] * 4] * 4)), "NaN or infinite"),
    "singular_pose": (_edit_json(_bad_nerf(), _bad_pose([[0, 0, 0, 1]] * 3 + [[0, 0, 0, 1]])), "not invertible"),
    "scaled_pose": (_edit_json(_bad_nerf(), _bad_pose(np.diag([2.0, 2, 2, 1]).tolist())), "scale or shear"),
    "projective_pose": (_edit_json(_bad_nerf(), _bad_pose((2 * np.eye(4)).tolist())), "last row is not 0 0 0 1"),
    "pose_wrong_shape": (_edit_json(_bad_nerf(), _bad_pose([[1, 0], [0, 1]])), "not a 4x4 matrix"),
    "empty_split": (_blender_empty_val, "the val split is empty"),
    "no_focal": (_bad_nerf(top={"w": W, "h": H}), "no focal length"),
    "distortion": (_bad_nerf(top={"fl_x": 20.0, "k1": 0.1}), "lens distortion (k1=0.1)"),
    "fisheye": (_bad_nerf(top={"fl_x": 20.0, "camera_model": "OPENCV_FISHEYE"}), "OPENCV_FISHEYE"),
    "unknown_split": (_edit_json(_bad_nerf(), _frame0("split", "holdout")), "unknown split 'holdout'"),
    "mask_size": (_edit_json(lambda d: (_image(d / "m.png", 8, 8), _bad_nerf()(d))[1],
                             _frame0("mask_path", "m.png")), "mask m.png is 8x8"),
    "missing_mask": (_edit_json(_bad_nerf(), _frame0("mask_path", "gone.png")), "mask gone.png not found"),
    "corrupt_image": (_corrupt_image, "cannot read the image"),
    "several_transforms": (lambda d: (_bad_nerf(name="transforms_a.json")(d),
                                      _bad_nerf(name="transforms_b.json")(d))[1], "several transforms files"),
    "colmap_simple_radial": (lambda d: _colmap(d, _cams(2), model="SIMPLE_RADIAL"), "SIMPLE_RADIAL model"),
    "colmap_opencv": (lambda d: _colmap(d, _cams(2), model="OPENCV"), "OPENCV model"),
    "colmap_missing_image": (lambda d: _colmap(d, _cams(2), images=False), "image img_000.png not found"),
    "colmap_size": (_colmap_resized, "image img_001.png is 20x12 but camera 1 says 16x12"),
    "colmap_nan_pose": (_colmap_image_edit(1, {7: "nan"}), "the pose of img_000.png has NaN or infinite"),
    "colmap_zero_quaternion": (_colmap_image_edit(2, {1: "0", 2: "0", 3: "0", 4: "0"}),
                               "the pose of img_001.png is not invertible"),
    "colmap_unknown_camera": (_colmap_image_edit(3, {8: "7"}), "image img_002.png uses camera 7"),
    "colmap_bad_line": (_colmap_edit("cameras.txt", "1 PINHOLE 16", "1 PINHOLE sixteen"), "line 2: expected"),
    "colmap_no_images_txt": (lambda d: (_colmap(d, _cams(2)), (d / "sparse/0/images.txt").unlink())[0],
                             "lacks images.txt"),
    # binary models are read (tests/io/test_colmap*.py); one missing its images.bin says so
    "colmap_binary_incomplete": (lambda d: ((d / "sparse/0").mkdir(parents=True),
                                            (d / "sparse/0/cameras.bin").write_bytes(b"x"), d)[2],
                                 "lacks images.bin"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_scenes_say_what_is_wrong(tmp_path, case):
    build, words = BAD[case]
    target = build(tmp_path)
    with pytest.raises(LoadError) as err:
        load_viewset(target)
    msg = str(err.value)
    assert words in msg and "\n" not in msg, msg
    if case != "empty_folder":  # an empty folder is no view set: load_path tries DICOM there
        with pytest.raises(LoadError) as err2:
            load_path(target)
        assert words in str(err2.value)


# -- dispatch ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make, kind", [
    (lambda d: _write_json(d / "transforms.json", {"frames": []}), "viewset"),
    (lambda d: _write_json(d / "transforms_train.json", {"frames": []}), "viewset"),
    (lambda d: _write_json(d / "my.lucid3d.json", {}), "scene"),
    (lambda d: _write_json(d / "other.json", {}), "scene"),
    (lambda d: _write_json(d / "transforms.lucid3d.json", {}), "scene"),
])
def test_kind_of_files(tmp_path, make, kind):
    assert kind_of(make(tmp_path)) == kind


@pytest.mark.parametrize("make, kind", [
    (lambda d: _write_json(d / "transforms.json", {}), "viewset"),
    (lambda d: _write_json(d / "transforms_test.json", {}), "viewset"),
    (lambda d: (d / "cameras.txt").write_text("x"), "viewset"),
    (lambda d: ((d / "sparse/0").mkdir(parents=True), (d / "sparse/0/images.txt").write_text("x")), "viewset"),
    (lambda d: ((d / "sparse").mkdir(), (d / "sparse/cameras.txt").write_text("x")), "viewset"),
    (lambda d: (d / "a.dcm").write_bytes(b"x"), "dicom"),
    (lambda d: None, "dicom"),
])
def test_kind_of_folders(tmp_path, make, kind):
    make(tmp_path)
    assert kind_of(tmp_path) == kind


# -- save_transforms ---------------------------------------------------------------------------

def test_save_then_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    cams = _cams(3, fx=19.5, fy=23.25, cx=7.125, cy=5.75, seed=7) + _cams(2, w=20, h=10, fx=17.0, seed=8)
    frames = []
    for i, c in enumerate(cams):
        c = Camera(c.fx, c.fy, c.cx, c.cy, c.width, c.height, c.c2w, name=f"view_{i}.jpg")
        rgba = rng.integers(0, 256, (c.height, c.width, 4), dtype=np.uint8)
        mask = rng.random((c.height, c.width)) > 0.5 if i == 1 else None
        frames.append(Frame(c, rgba, name=c.name, split=["train", "val", "test"][i % 3], mask=mask))
    (tmp_path / "out").mkdir()
    out = save_transforms(tmp_path / "out", ViewSet(frames, background=(0.25, 0.5, 0.75)))
    assert out == tmp_path / "out" / "transforms.json"
    assert not list((tmp_path / "out").rglob("*.part*"))
    data = json.loads(out.read_text())
    for key in ("camera_angle_x", "fl_x", "fl_y", "cx", "cy", "w", "h"):
        assert key in data
    assert data["frames"][0]["file_path"] == "./images/view_0"  # no extension, like Blender
    assert np.asarray(data["frames"][0]["transform_matrix"]).shape == (4, 4)
    assert "fl_x" not in data["frames"][1] and data["frames"][3]["w"] == 20
    vs = load_viewset(out)
    _assert_same_cameras(vs.cameras, [f.camera for f in frames])
    assert [f.split for f in vs.frames] == [f.split for f in frames]
    assert [f.name for f in vs.frames] == [f"view_{i}.png" for i in range(5)]
    for got, want in zip(vs.frames, frames):
        np.testing.assert_array_equal(got.rgba, want.rgba)
    np.testing.assert_array_equal(vs.frames[1].mask, frames[1].mask)
    assert vs.background == (0.25, 0.5, 0.75)


def test_save_cameras_only_and_blender_angle(tmp_path):
    cams = _cams(3, fx=20.0)
    out = save_transforms(tmp_path / "transforms_train.json", cams, image_folder="train")
    data = json.loads(out.read_text())
    assert data["camera_angle_x"] == pytest.approx(2 * np.arctan(8 / 20))
    assert [f["file_path"] for f in data["frames"]] == ["./train/r_0", "./train/r_1", "./train/r_2"]
    assert "split" not in data["frames"][0] and not (tmp_path / "train").exists()
    for c in cams:  # images made elsewhere, then the scene loads
        _image(tmp_path / "train" / f"{c.name}.png")
    vs = load_viewset(tmp_path)
    _assert_same_cameras(vs.cameras, cams)
    with pytest.raises(ValueError):
        save_transforms(tmp_path / "x.json", [])
    with pytest.raises(ValueError, match="r_0"):
        save_transforms(tmp_path / "x.json", [cams[0], cams[0]])
    with pytest.raises(LoadError, match="input file"):
        save_transforms(out, cams, protect=[out])
