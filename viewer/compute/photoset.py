"""What ``main.py capture`` writes: a synthetic posed-photo data set of a textured mesh, in the Blender/nerfstudio
layout, for training and testing neural renderers.

    python main.py capture MESH --out DIR [--views N] [--size S] [--test-fraction F]
                           [--texture IMG] [--specular K] [--seed N] [--points P] [--supersample S]

``N`` cameras spread over a sphere around the mesh (all framing its bounding sphere, 40 degree
field of view, world +z up) are split at random (by ``--seed``) into ``round(N * F)`` test views
and the rest for training: ``--views 120 --test-fraction 0.1667`` gives 100 / 20; with ``F = 0``
every view is a training view and no test file is written. A mesh without uv gets an xatlas
atlas; a mesh without a texture, or any mesh with ``--texture``, gets the procedural texture
(1024 px, from ``--seed``) or the given image. Lights are fixed in the world (key, fill, rim).

DIR must be new or empty (never overwritten); it is written under a temporary name and renamed
at the end, so a failure leaves nothing behind. It receives ``train/r_000.png`` ...,
``test/r_000.png`` ... (RGBA, alpha = coverage, colour over white where uncovered),
``transforms_train.json`` / ``transforms_test.json`` (``camera_angle_x``, ``fl_x``, ``fl_y``,
``cx``, ``cy``, ``w``, ``h``, ``background``; frames with ``file_path`` like ``./train/r_000``
and the OpenGL-axes camera-to-world ``transform_matrix``), ``mesh.obj`` + ``mesh.mtl`` +
``mesh.png`` (the mesh as rendered: uv, normals, texture), and ``points.ply``: ``--points``
points sampled uniformly over the rendered surface (area-weighted, seeded), coloured by the
texture at each sample's uv, with the surface's normal there (binary PLY: double x y z, uchar
red green blue, float nx ny nz), for the point renderers. ``--supersample S`` renders S x S samples per pixel and averages them, as a camera's
pixel integrates the light over its area: colours blend and alpha is fractional along the
silhouette (real photos are like this); the default 1 samples each pixel's centre, so alpha is
0 or 1 and matches the renderers' own rasterized masks pixel for pixel. A one-line JSON summary is printed.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from pathlib import Path

import numpy as np

from ..io.guards import load_input, prepare_out_folder
from ..model.errors import LoadError

__all__ = ["capture_dataset", "sample_surface", "write_points_ply", "TEXTURE_SIZE", "VIEW_ANGLE", "SURFACE_POINTS"]

TEXTURE_SIZE = 1024  # procedural texture edge (pixels); xatlas packs its charts for this size
VIEW_ANGLE = 40.0  # degrees, horizontal = vertical (square images)
SURFACE_POINTS = 100_000  # points.ply: samples of the surface


def _check_args(views: int, size: int, test_fraction: float, specular: float) -> tuple[int, int]:
    """(n_train, n_test) or a LoadError naming the bad option."""
    if not 1 <= views <= 100_000:
        raise LoadError("--views", f"must be between 1 and 100000, got {views}")
    if not 16 <= size <= 4096:
        raise LoadError("--size", f"must be between 16 and 4096 pixels, got {size}")
    if not (math.isfinite(test_fraction) and 0.0 <= test_fraction < 1.0):
        raise LoadError("--test-fraction", f"must be in [0, 1), got {test_fraction}")
    if not (math.isfinite(specular) and 0.0 <= specular <= 10.0):
        raise LoadError("--specular", f"must be between 0 and 10, got {specular}")
    n_test = int(round(views * test_fraction))
    if test_fraction > 0 and n_test == 0:
        raise LoadError("--test-fraction", f"{test_fraction} of {views} views is no test view; "
                                           "use more views, a larger fraction, or 0")
    if views - n_test < 1:
        raise LoadError("--test-fraction", "leaves no training view")
    return views - n_test, n_test


def _check_out(out: Path, inputs: list[str]) -> None:
    """New or empty (never overwritten, no --overwrite), and not an input or a folder holding one."""
    prepare_out_folder(out, inputs=inputs, what="capture")


def _load_texture(path: str) -> np.ndarray:
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "no such texture image")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise LoadError(p, f"not a readable image ({exc})") from None


def _prepare_mesh(path: str, texture: str | None, seed: int):
    """The mesh to render: loaded, with uv (its own or xatlas), a texture and normals.
    Returns (mesh, uv source, texture source)."""
    from ..model.geometry import Mesh
    from ..geometry.normals import split_creases
    from ..geometry.primitives import procedural_texture
    from ..geometry.uvatlas import parametrize

    mesh = load_input(path)
    if not isinstance(mesh, Mesh):
        raise LoadError(path, f"not a triangle mesh (it holds a {type(mesh).__name__})")
    if mesh.n_faces == 0:
        raise LoadError(path, "the mesh has no triangles")
    b = np.asarray(mesh.bounds()).reshape(3, 2)
    if not np.all(np.isfinite(mesh.points)) or np.ptp(b, axis=1).max() <= 0:
        raise LoadError(path, "the mesh has non-finite or coincident points")
    uv_from = "mesh"
    if mesh.uv is None:
        mesh = parametrize(mesh, resolution=TEXTURE_SIZE)
        uv_from = "xatlas"
    if texture is not None:
        mesh.texture, tex_from = _load_texture(texture), str(Path(texture))
    elif mesh.texture is None:
        mesh.texture, tex_from = procedural_texture(TEXTURE_SIZE, seed), "procedural"
    else:
        mesh.texture, tex_from = np.ascontiguousarray(mesh.texture[..., :3]), "mesh"
    if mesh.normals is None:  # sharp at creases (> 40 degrees), smooth elsewhere and across seams
        mesh = split_creases(mesh)
    mesh.colors = None
    return mesh, uv_from, tex_from


def _save_and_reload(mesh, folder: Path):
    """Write mesh.obj (+ .mtl, .png) and read it back with our own loader; the reloaded mesh is
    what gets rendered, so the data set's images match the file exactly."""
    from ..io import load_path
    from ..io.meshes import save_mesh

    path = save_mesh(mesh, folder / "mesh.obj")
    for f in folder.iterdir():  # written through mkstemp (0600): give them the folder's umask
        f.chmod(folder.stat().st_mode & 0o666)
    back = load_path(path)
    ok = (back.n_faces == mesh.n_faces and back.uv is not None and back.texture is not None
          and back.uv.shape == mesh.uv.shape and np.abs(back.uv - mesh.uv).max() < 1e-4
          and np.array_equal(back.texture[..., :3], mesh.texture[..., :3]))
    if not ok:
        raise LoadError(path, "the written OBJ does not read back with the same uv and texture")
    return back


def sample_surface(mesh, n: int, seed: int = 0):
    """``n`` points uniformly on ``mesh``'s triangles (area-weighted), as a PointCloud coloured
    by the texture at each point's uv (nearest texel), else by the interpolated vertex colours,
    else uncoloured."""
    from ..model.geometry import PointCloud

    rng = np.random.default_rng(seed)
    p, f = np.asarray(mesh.points, np.float64), np.asarray(mesh.faces, np.int64)
    area = 0.5 * np.linalg.norm(np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]]), axis=1)
    if not np.isfinite(area).all() or area.sum() <= 0:
        raise ValueError("the mesh has no area to sample")
    tri = rng.choice(len(f), size=int(n), p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(int(n))), rng.random(int(n))
    w = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)  # uniform barycentrics on each triangle
    corners = f[tri]
    pts = np.einsum("nk,nkc->nc", w, p[corners])
    colors = None
    if mesh.uv is not None and mesh.texture is not None:
        uv = np.einsum("nk,nkc->nc", w, np.asarray(mesh.uv, np.float64)[corners])
        tex = np.asarray(mesh.texture)
        h, wd = tex.shape[:2]
        col = np.clip((uv[:, 0] % 1.0) * wd, 0, wd - 1).astype(np.int64)
        row = np.clip((1.0 - uv[:, 1] % 1.0) * h, 0, h - 1).astype(np.int64)  # v up, row 0 at the top
        colors = tex[row, col, :3].astype(np.uint8)
    elif mesh.colors is not None:
        colors = np.clip(np.einsum("nk,nkc->nc", w, np.asarray(mesh.colors, np.float64)[corners]).round(), 0, 255)
        colors = colors.astype(np.uint8)
    # the surface's normal at each sample: the mesh's vertex normals interpolated, as the renderer
    # shades with them (else the triangle's); a photogrammetry cloud (COLMAP's fused.ply) carries
    # normals too, and the point renderers' shading reads them
    face = np.cross(p[f[tri, 1]] - p[f[tri, 0]], p[f[tri, 2]] - p[f[tri, 0]])
    normals = face
    if mesh.normals is not None:
        normals = np.einsum("nk,nkc->nc", w, np.asarray(mesh.normals, np.float64)[corners])
        flat = np.linalg.norm(normals, axis=1) < 1e-9  # opposite vertex normals cancelled
        normals[flat] = face[flat]
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
    return PointCloud(pts, colors, normals=normals.astype(np.float32), name="points")


def write_points_ply(cloud, path: Path) -> None:
    """A binary little-endian PLY of the cloud's points (double), colours (uchar) and normals
    (float), the last two if it has them."""
    fields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
    if cloud.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if cloud.normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    rec = np.empty(cloud.n_points, dtype=fields)
    for i, k in enumerate("xyz"):
        rec[k] = cloud.points[:, i]
    if cloud.colors is not None:
        for i, k in enumerate(("red", "green", "blue")):
            rec[k] = cloud.colors[:, i]
    if cloud.normals is not None:
        for i, k in enumerate(("nx", "ny", "nz")):
            rec[k] = np.asarray(cloud.normals)[:, i]
    names = {"<f8": "double", "<f4": "float", "u1": "uchar"}
    props = "".join(f"property {names[t]} {k}\n" for k, t in fields)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {cloud.n_points}\n{props}end_header\n"
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(rec.tobytes())


def _transforms(cams, names: list[str], split: str, background) -> dict:
    c = cams[0]
    return {"camera_angle_x": 2.0 * math.atan(0.5 * c.width / c.fx),
            "camera_angle_y": 2.0 * math.atan(0.5 * c.height / c.fy),
            "fl_x": c.fx, "fl_y": c.fy, "cx": c.cx, "cy": c.cy, "w": c.width, "h": c.height,
            "background": [float(v) for v in background],
            "frames": [{"file_path": f"./{split}/{n}", "transform_matrix": cam.opengl_c2w().tolist()}
                       for cam, n in zip(cams, names)]}


def capture_dataset(mesh_path: str, out: str, *, views: int = 100, size: int = 256,
                    test_fraction: float = 0.2, texture: str | None = None, specular: float = 0.5,
                    seed: int = 0, background=(1.0, 1.0, 1.0), points: int = SURFACE_POINTS,
                    supersample: int = 1) -> dict:
    """Render the data set described in this module's docstring; returns the summary dict.

    Raises
    ------
    LoadError : a bad option, an unreadable mesh or texture, an output folder that exists and
        is not empty.
    """
    from PIL import Image

    from .capture import frame_cameras, render_views

    t0 = time.perf_counter()
    n_train, n_test = _check_args(views, size, test_fraction, specular)
    if not 1 <= points <= 20_000_000:
        raise LoadError("--points", f"must be between 1 and 20000000, got {points}")
    if not 1 <= supersample <= 8:
        raise LoadError("--supersample", f"must be between 1 and 8, got {supersample}")
    out_dir = Path(out)
    if not 0 <= seed <= 2**32 - 1:
        raise LoadError("--seed", f"must be in [0, {2**32 - 1}], got {seed}")
    inputs = [mesh_path] + ([texture] if texture else [])
    _check_out(out_dir, inputs)
    mesh, uv_from, tex_from = _prepare_mesh(mesh_path, texture, seed)
    cams = frame_cameras(mesh, views, size, VIEW_ANGLE, seed=seed)
    order = np.random.default_rng(seed).permutation(views)
    splits = {"train": sorted(order[n_test:].tolist()), "test": sorted(order[:n_test].tolist())}
    parent = out_dir.resolve().parent
    tmp = parent / f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    tmp.mkdir()  # beside DIR (same file system, for the rename); the user's umask applies
    try:
        rendered = _save_and_reload(mesh, tmp)
        write_points_ply(sample_surface(rendered, points, seed), tmp / "points.ply")
        for split, idx in splits.items():
            if not idx:
                continue
            (tmp / split).mkdir()
            split_cams = [cams[i] for i in idx]
            names = [f"r_{k:03d}" for k in range(len(idx))]
            images = render_views(rendered, split_cams, specular=specular, background=background,
                                  supersample=supersample)
            for name, img in zip(names, images):
                Image.fromarray(img, "RGBA").save(tmp / split / f"{name}.png", format="PNG")
            (tmp / f"transforms_{split}.json").write_text(
                json.dumps(_transforms(split_cams, names, split, background), indent=1), encoding="utf-8")
        _check_out(out_dir, inputs)  # nobody wrote there meanwhile
        tmp.replace(out_dir)  # an empty folder is replaced atomically
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out_dir), "train": n_train, "test": n_test, "size": size,
            "n_points": rendered.n_points, "n_faces": rendered.n_faces, "uv": uv_from,
            "texture": tex_from, "specular": specular, "seed": seed, "surface_points": points,
            "supersample": supersample,
            "seconds": round(time.perf_counter() - t0, 2)}
