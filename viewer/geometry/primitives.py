"""Meshes and textures made from nothing, for demos, tests and benchmarks: a uv sphere, midpoint
subdivision, a seeded procedural texture. numpy only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..model.geometry import Mesh

__all__ = ["procedural_texture", "uv_sphere", "subdivide"]


def procedural_texture(size: int = 512, seed: int = 0) -> np.ndarray:
    """A seeded, colourful texture with detail at several scales.

    Hue, saturation and value are each a sum of random sinusoids (1 to 24 cycles across the
    image) plus soft blobs of random size; a fine checker and a set of thin stripes at a random
    angle add texel-scale detail. A learned texture has to work to reproduce it.

    Parameters
    ----------
    size : edge in pixels (square image).
    seed : the same seed gives the same image.

    Returns
    -------
    (size, size, 3) uint8 RGB, row 0 at the top.
    """
    size = int(size)
    if size < 4:
        raise ValueError(f"texture size must be at least 4, got {size}")
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0.0, 1.0, size, endpoint=False),
                       np.linspace(0.0, 1.0, size, endpoint=False), indexing="ij")

    def waves(n: int, fmin: float, fmax: float) -> np.ndarray:
        out = np.zeros_like(x)
        for _ in range(n):
            f = np.exp(rng.uniform(np.log(fmin), np.log(fmax)))
            a = rng.uniform(0, 2 * np.pi)
            out += np.sin(2 * np.pi * f * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 2 * np.pi)) / f ** 0.5
        return out / np.abs(out).max()

    def blobs(n: int) -> np.ndarray:
        out = np.zeros_like(x)
        for _ in range(n):
            cx, cy = rng.uniform(0, 1, 2)
            r = np.exp(rng.uniform(np.log(0.02), np.log(0.25)))
            out += rng.choice([-1.0, 1.0]) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        return out

    hue = (rng.uniform() + 0.6 * waves(8, 1.0, 24.0) + 0.15 * blobs(12)) % 1.0
    sat = np.clip(0.6 + 0.25 * waves(6, 1.0, 16.0), 0.2, 0.95)
    val = 0.8 + 0.15 * waves(6, 2.0, 24.0) + 0.08 * np.tanh(blobs(16))
    cells = int(rng.integers(24, 48))
    checker = ((np.floor(x * cells) + np.floor(y * cells)) % 2) * 2 - 1
    a = rng.uniform(0, np.pi)
    stripes = np.sin(2 * np.pi * rng.uniform(40, 80) * (x * np.cos(a) + y * np.sin(a)))
    region = waves(4, 1.0, 6.0)  # checker in some regions, stripes in others
    val = val + 0.08 * checker * (region > 0.2) + 0.1 * (stripes > 0.6) * (region < -0.2)
    rgb = _hsv_to_rgb(hue, sat, np.clip(val, 0.05, 1.0))
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV in 0..1 (any shape) -> RGB (..., 3) float in 0..1."""
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        out[sel] = np.stack([r[sel], g[sel], b[sel]], -1)
    return out


def uv_sphere(n_lat: int = 32, n_lon: int = 64, radius: float = 1.0,
              center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Mesh:
    """A latitude-longitude sphere with a uv map, vertices split along the date-line seam: the one
    uv sphere of the code base (the demo's fallback globe is this one, turned and textured).

    ``n_lat`` rows of quads from pole to pole, ``n_lon`` columns around z; ``radius`` in the
    caller's units, ``center`` (3,) in the same frame.

    ``u`` = longitude / 360 deg (from +x towards +y), ``v`` = 1 at the north pole (+z), 0 at the
    south pole; outward-facing triangles (counter-clockwise seen from outside);
    ``2 * n_lat * n_lon`` triangles (the pole rows hold degenerate ones, which draw nothing).
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError("a sphere needs n_lat >= 2 and n_lon >= 3")
    th, ph = np.meshgrid(np.linspace(0.0, np.pi, n_lat + 1), np.linspace(0.0, 2 * np.pi, n_lon + 1),
                         indexing="ij")
    unit = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1)
    unit[:, -1] = unit[:, 0]  # the seam's two copies at exactly one position
    unit[0], unit[-1] = (0.0, 0.0, 1.0), (0.0, 0.0, -1.0)  # and the poles
    pts = unit.reshape(-1, 3) * float(radius) + np.asarray(center, float)
    uv = np.stack([ph / (2 * np.pi), 1.0 - th / np.pi], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    a = i * (n_lon + 1) + j
    b, c = a + 1, a + n_lon + 1
    d = c + 1
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return Mesh(pts, faces, uv=uv, normals=unit.reshape(-1, 3).copy(), name="uv_sphere")


def subdivide(mesh: Mesh, levels: int = 1) -> Mesh:
    """Split every triangle into four at its edge midpoints, ``levels`` times (x4 triangles each).

    Positions, uv, colours and normals of the new vertices are edge-midpoint averages (normals
    re-normalised); an edge shared by two triangles gets one midpoint. The texture is kept.
    """
    out = mesh
    for _ in range(int(levels)):
        f = np.asarray(out.faces, np.int64)
        n = out.n_points
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        key = np.sort(edges, axis=1)
        uniq, inv = np.unique(key[:, 0] * n + key[:, 1], return_inverse=True)
        ea, eb = uniq // n, uniq % n
        mid = n + inv.reshape(3, -1)  # (3, M): midpoints of edges 01, 12, 20

        def grow(arr: np.ndarray | None) -> np.ndarray | None:
            if arr is None:
                return None
            arr = np.asarray(arr)
            m = (arr[ea].astype(float) + arr[eb].astype(float)) / 2.0
            return np.concatenate([arr, np.rint(m) if arr.dtype.kind in "iu" else m]).astype(arr.dtype)

        m01, m12, m20 = mid
        faces = np.concatenate([np.stack([f[:, 0], m01, m20], 1), np.stack([m01, f[:, 1], m12], 1),
                                np.stack([m20, m12, f[:, 2]], 1), np.stack([m01, m12, m20], 1)])
        normals = grow(out.normals)
        if normals is not None:
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        out = replace(out, points=grow(out.points), faces=faces, uv=grow(out.uv),
                      colors=grow(out.colors), normals=normals,
                      meta={k: v for k, v in out.meta.items() if k != "vmapping"})
    return out
