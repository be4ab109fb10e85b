"""COLMAP binary models (cameras.bin, images.bin, points3D.bin) written here with struct in
COLMAP's layout, read as a ViewSet and as a coloured PointCloud (points3D text and binary); the
same cameras as the text model; distorted camera models, truncated files and lying counts give
one line naming the file."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.io.colmap import load_colmap_points
from viewer.io.photosets import load_viewset
from viewer.model.camera import Camera, look_at
from viewer.model.errors import LoadError

W, H = 16, 12
MODEL_IDS = {"SIMPLE_PINHOLE": 0, "PINHOLE": 1, "SIMPLE_RADIAL": 2, "RADIAL": 3, "OPENCV": 4}


def _cams(n: int) -> list[Camera]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        eye = rng.normal(size=3)
        out.append(Camera(20.0, 21.0, 8.2, 5.9, W, H, look_at(4 * eye / np.linalg.norm(eye), np.zeros(3))))
    return out


def _params(model: str, c: Camera) -> list[float]:
    return {"PINHOLE": [c.fx, c.fy, c.cx, c.cy], "SIMPLE_PINHOLE": [c.fx, c.cx, c.cy],
            "SIMPLE_RADIAL": [c.fx, c.cx, c.cy, 0.01], "RADIAL": [c.fx, c.cx, c.cy, 0.01, 0.0],
            "OPENCV": [c.fx, c.fy, c.cx, c.cy, 0.1, 0, 0, 0]}[model]


def _points() -> tuple[np.ndarray, np.ndarray, list[int]]:
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(7, 3))
    rgb = rng.integers(0, 256, (7, 3)).astype(np.uint8)
    return xyz, rgb, [0, 3, 1, 0, 5, 2, 1]  # track lengths, some empty


def _points_bin(path: Path) -> None:
    xyz, rgb, tracks = _points()
    out = [struct.pack("<Q", len(xyz))]
    for i, (p, c, n) in enumerate(zip(xyz, rgb, tracks)):
        out.append(struct.pack("<Q3d3BdQ", i + 1, *p, *c, 0.5, n))
        out.extend(struct.pack("<ii", 1, k) for k in range(n))
    path.write_bytes(b"".join(out))


def _points_txt(path: Path) -> None:
    xyz, rgb, tracks = _points()
    lines = ["# 3D point list"]
    for i, (p, c, n) in enumerate(zip(xyz, rgb, tracks)):
        lines.append(f"{i + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} {c[0]} {c[1]} {c[2]} 0.5 " + " ".join(f"1 {k}" for k in range(n)))
    path.write_text("\n".join(lines) + "\n")


def _model(folder: Path, cams: list[Camera], model: str = "PINHOLE", images: bool = True) -> Path:
    m = folder / "sparse" / "0"
    m.mkdir(parents=True)
    c = cams[0]
    p = _params(model, c)
    (m / "cameras.bin").write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, MODEL_IDS[model], W, H)
                                     + struct.pack(f"<{len(p)}d", *p))
    out = [struct.pack("<Q", len(cams))]
    for i, cam in reversed(list(enumerate(cams))):  # ids out of name order
        q, t = cam.colmap_qvec_tvec()
        out.append(struct.pack("<i7di", i + 1, *q, *t, 1) + f"img_{i:03d}.png".encode() + b"\0")
        n2d = i % 3
        out.append(struct.pack("<Q", n2d) + b"".join(struct.pack("<ddq", 1.5, 2.5, -1) for _ in range(n2d)))
        if images:
            (folder / "images").mkdir(exist_ok=True)
            Image.fromarray(np.full((H, W, 3), 25 * i, np.uint8)).save(folder / "images" / f"img_{i:03d}.png")
    (m / "images.bin").write_bytes(b"".join(out))
    _points_bin(m / "points3D.bin")
    return folder


def test_binary_model_reads_the_cameras_and_points(tmp_path):
    cams = _cams(9)
    vs = load_viewset(_model(tmp_path, cams))
    got = sorted(vs.frames, key=lambda f: f.name)
    assert [f.name for f in got] == [f"img_{i:03d}.png" for i in range(9)]
    for f, c in zip(got, cams):
        np.testing.assert_allclose(f.camera.c2w, c.c2w, atol=1e-9)
        assert (f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy) == (c.fx, c.fy, c.cx, c.cy)
    assert [f.split for f in got].count("test") == 2  # every 8th by name, from the first
    xyz, rgb, _ = _points()
    np.testing.assert_array_equal(vs.points.points, xyz)
    np.testing.assert_array_equal(vs.points.colors, rgb)


@pytest.mark.parametrize("name,write", [("points3D.bin", _points_bin), ("points3D.txt", _points_txt)],
                         ids=["binary", "text"])
def test_points3d_alone_is_a_coloured_cloud(tmp_path, name, write):
    write(tmp_path / name)
    from viewer.io import kind_of, load_path
    from viewer.io.photosets import load_viewset

    xyz, rgb, _ = _points()
    # read directly, and as the window and `fit --points` open any file
    assert kind_of(tmp_path / name) == "points"
    for cloud in (load_colmap_points(tmp_path / name), load_path(tmp_path / name)):
        np.testing.assert_allclose(cloud.points, xyz, rtol=0, atol=0)
        np.testing.assert_array_equal(cloud.colors, rgb)
    with pytest.raises(LoadError, match="lacks"):  # the file alone is no photo set
        load_viewset(tmp_path / name)


def _cut(file: str, keep: int):
    def make(d: Path) -> Path:
        _model(d, _cams(3))
        p = d / "sparse/0" / file
        p.write_bytes(p.read_bytes()[:keep])
        return d
    return make


def _patch(file: str, offset: int, data: bytes):
    def make(d: Path) -> Path:
        _model(d, _cams(3))
        p = d / "sparse/0" / file
        b = bytearray(p.read_bytes())
        b[offset:offset + len(data)] = data
        p.write_bytes(bytes(b))
        return d
    return make


def _append(file: str, data: bytes):
    def make(d: Path) -> Path:
        _model(d, _cams(3))
        p = d / "sparse/0" / file
        p.write_bytes(p.read_bytes() + data)
        return d
    return make


BAD = {
    "opencv": (lambda d: _model(d, _cams(2), model="OPENCV"), "cameras.bin: camera 1 uses the OPENCV model"),
    "radial": (lambda d: _model(d, _cams(2), model="RADIAL"), "cameras.bin: camera 1 uses the RADIAL model"),
    "unknown_model_id": (_patch("cameras.bin", 12, struct.pack("<i", 99)), "unknown camera model id 99"),
    "cameras_truncated": (_cut("cameras.bin", 40), r"cameras.bin: (truncated|the count of 1 cameras claims)"),
    "images_truncated": (_cut("images.bin", 100), r"images.bin: (truncated|the count of 3 images claims)"),
    "points_truncated": (_cut("points3D.bin", 400), "points3D.bin: truncated: 3D point 7 of 7"),
    "points_cut_in_the_header": (_cut("points3D.bin", 100), "points3D.bin: the count of 7 3D points claims"),
    "points_lying_count": (_patch("points3D.bin", 0, struct.pack("<Q", 10**12)), "points3D.bin: the count of"),
    "images_lying_count": (_patch("images.bin", 0, struct.pack("<Q", 2**63)), "images.bin: the count of"),
    "points_lying_track": (_patch("points3D.bin", 8 + 43, struct.pack("<Q", 2**40)), "points3D.bin: truncated"),
    "trailing_bytes": (_append("cameras.bin", b"\0" * 5), "cameras.bin: 5 bytes after the last record"),
    "missing_image": (lambda d: _model(d, _cams(2), images=False), "image img_000.png not found"),
    "no_images_bin": (lambda d: (_model(d, _cams(2)), (d / "sparse/0/images.bin").unlink())[0],
                      "the COLMAP model lacks images.bin"),
}


@pytest.mark.parametrize("name", list(BAD), ids=list(BAD))
def test_bad_binary_models_say_one_line(tmp_path, name):
    make, want = BAD[name]
    scene = make(tmp_path / "scene")
    with pytest.raises(LoadError) as err:
        load_viewset(scene)
    msg = str(err.value)
    assert re.search(want, msg) and "\n" not in msg


def test_lying_count_allocates_nothing(tmp_path):
    import tracemalloc

    p = tmp_path / "points3D.bin"
    p.write_bytes(struct.pack("<Q", 10**15) + b"\0" * 100)
    tracemalloc.start()
    with pytest.raises(LoadError, match="the count of"):
        load_colmap_points(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 << 20
