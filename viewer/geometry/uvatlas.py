"""Texture atlases and textures for meshes: an xatlas parametrisation, a seeded procedural
texture, and two mesh makers (a uv sphere, midpoint subdivision) for tests and benchmarks.

numpy and xatlas only (no VTK). Conventions of :class:`~viewer.model.geometry.Mesh`: ``uv`` in
0..1 with the origin at the texture's bottom-left (OpenGL), texture images with row 0 at the top.

Examples
--------
>>> mesh = parametrize(mesh)                          # doctest: +SKIP
>>> mesh.texture = procedural_texture(512, seed=3)    # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from ..model.geometry import Mesh

__all__ = ["parametrize"]


def parametrize(mesh: Mesh, resolution: int = 1024, padding: int = 2) -> Mesh:
    """A uv atlas for ``mesh`` by xatlas (charts cut at seams, packed into the unit square).

    Parameters
    ----------
    mesh : triangle mesh; any uv it has is replaced.
    resolution : texture size (pixels) the charts are packed for; ``padding`` texels are kept
        between charts at that size, so a texture of about this size does not bleed across them.

    Returns
    -------
    Mesh : a new mesh with vertices split along chart seams (so uv is per vertex), ``uv`` (N, 2)
        in 0..1 with the origin bottom-left, the same triangles in the same order and winding,
        points, colours and normals carried over through xatlas' vertex map; ``texture`` None;
        ``meta["vmapping"]`` (N,) the source vertex of each new vertex.

    Raises
    ------
    ValueError : the mesh has no triangles.
    """
    import xatlas

    if mesh.n_faces == 0:
        raise ValueError("the mesh has no triangles to parametrize")
    # xatlas works in float32 and crashes (SIGSEGV) on large coordinates with degenerate
    # triangles (pyvista's globe, in metres, 6e9): give it the mesh centred and scaled to a unit
    # box; the atlas does not depend on position or scale
    pts = np.asarray(mesh.points, np.float64)
    lo, hi = pts.min(0), pts.max(0)
    scale = float(np.max(hi - lo)) or 1.0
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray((pts - (lo + hi) / 2) / scale, np.float32),
                   np.ascontiguousarray(mesh.faces, np.uint32))
    chart = xatlas.ChartOptions()
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(chart, pack)
    vmap, faces, uv = atlas[0]
    vmap = np.asarray(vmap, np.int64)
    uv = np.clip(np.asarray(uv, np.float64), 0.0, 1.0)
    return Mesh(points=mesh.points[vmap], faces=np.asarray(faces, np.int64).reshape(-1, 3), uv=uv,
                texture=None,
                colors=None if mesh.colors is None else mesh.colors[vmap],
                normals=None if mesh.normals is None else mesh.normals[vmap],
                name=mesh.name, source=mesh.source, meta={**mesh.meta, "vmapping": vmap})


