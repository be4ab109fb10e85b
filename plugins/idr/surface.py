"""The learned surface as a triangle mesh: the SDF on a grid over the unit sphere's cube, its zero
level set by VTK's flying edges, moved to the world frame, coloured by the rendering network.

Vertex colours: the rendering network needs a view direction. By default each vertex takes the
mean direction from the training cameras in front of it (those on the side its normal faces) to
it, or its reversed normal when no camera faces it: the colour an average training view saw.
A ``view_dir`` (world) gives every vertex the same one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from viewer.model.geometry import Mesh
from viewer.model.volume import Volume

from .model import IDRModel
from .network import gradient

__all__ = ["sdf_grid", "extract_mesh"]


BLOCK = 8  # grid points per block side in :func:`sdf_grid`'s coarse pass
LIPSCHITZ = 1.5  # how much faster than distance the SDF may change (the eikonal loss keeps it near 1)


@torch.no_grad()
def _sdf(model: IDRModel, pts: torch.Tensor, chunk: int) -> torch.Tensor:
    out = [model.net.sdf.sdf(pts[i:i + chunk].to(model.device)).cpu() for i in range(0, len(pts), chunk)]
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def sdf_grid(model: IDRModel, resolution: int, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, float]:
    """(values (R, R, R) float32 indexed [i, j, k] along x, y, z, origin (3,), spacing) of the SDF
    on the cube [-1, 1]^3 of the normalised frame.

    Coarse to fine: the SDF at the centre of each block of :data:`BLOCK`^3 grid points says
    whether the surface can pass through the block (|f| below :data:`LIPSCHITZ` times the
    block's half diagonal); only those blocks are evaluated point by point, the others take their
    centre's value (the right sign, and no zero crossing is near them). Blocks next to an
    evaluated one are evaluated too, so that every edge the surface crosses has both ends exact.
    """
    r = int(resolution)
    step = 2.0 / (r - 1)
    nb = -(-r // BLOCK)
    centre_idx = np.minimum(np.arange(nb) * BLOCK + (BLOCK - 1) / 2, r - 1)
    cax = torch.tensor(-1.0 + centre_idx * step, dtype=torch.float32)
    centres = torch.stack(torch.meshgrid(cax, cax, cax, indexing="ij"), -1).reshape(-1, 3)
    fc = _sdf(model, centres, chunk).reshape(nb, nb, nb)
    values = fc.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)[:r, :r, :r].clone()
    near = (fc.abs() < LIPSCHITZ * (BLOCK - 1) / 2 * step * 3 ** 0.5).float()
    # and their neighbours: a crossing edge between two blocks then has both ends evaluated
    near = torch.nonzero(torch.nn.functional.max_pool3d(near[None, None], 3, stride=1, padding=1)[0, 0] > 0)
    local = torch.stack(torch.meshgrid(*(torch.arange(BLOCK),) * 3, indexing="ij"), -1).reshape(-1, 3)
    for i in range(0, len(near), max(1, chunk // BLOCK ** 3)):
        idx = (near[i:i + chunk // BLOCK ** 3, None, :] * BLOCK + local[None]).reshape(-1, 3)
        idx = idx[(idx < r).all(1)]
        f = _sdf(model, -1.0 + idx.float() * step, chunk)
        values[idx[:, 0], idx[:, 1], idx[:, 2]] = f
    return values.numpy().astype(np.float32), np.full(3, -1.0), step


def _zero_level_set(values: np.ndarray, origin: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3), triangles (M, 3)) of the zero level set by vtkFlyingEdges3D."""
    import pyvista as pv

    grid = pv.ImageData(dimensions=values.shape, spacing=(spacing,) * 3, origin=tuple(origin))
    grid.point_data["sdf"] = values.ravel(order="F")  # VTK's x varies fastest
    surf = grid.contour([0.0], scalars="sdf", method="flying_edges").triangulate()
    if surf.n_points == 0 or surf.n_cells == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    faces = np.asarray(surf.faces).reshape(-1, 4)[:, 1:]
    return np.asarray(surf.points, float), faces.astype(np.int64)


def _view_dirs(model: IDRModel, x: np.ndarray, n: np.ndarray, view_dir: Sequence[float] | None) -> np.ndarray:
    """(N, 3) unit view directions (camera -> surface) in the normalised frame."""
    if view_dir is not None:
        v = np.asarray(view_dir, float)
        return np.broadcast_to(v / np.linalg.norm(v), x.shape).copy()
    centres = model.to_normalised(np.asarray(model.meta.get("camera_centres") or np.zeros((0, 3)), float).reshape(-1, 3))
    total = np.zeros_like(x)
    for c in centres:
        d = x - c
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        facing = (d * n).sum(1) < 0
        total[facing] += d[facing]
    norm = np.linalg.norm(total, axis=1, keepdims=True)
    return np.where(norm > 1e-9, total / np.maximum(norm, 1e-12), -n)


def extract_mesh(model: IDRModel, resolution: int = 128, view_dir: Sequence[float] | None = None,
                 chunk: int = 1 << 15) -> Mesh | None:
    """The zero level set in the world frame with vertex colours and normals; None if empty."""
    values, origin, spacing = sdf_grid(model, resolution)
    pts, faces = _zero_level_set(values, origin, spacing)
    if len(faces) == 0:
        return None
    colours, normals = [], []
    for i in range(0, len(pts), chunk):
        x = torch.tensor(pts[i:i + chunk], dtype=torch.float32, device=model.device)
        out, g = gradient(model.net.sdf, x, create_graph=False)
        n = F.normalize(g.detach(), dim=-1)
        v = torch.tensor(_view_dirs(model, pts[i:i + chunk], n.cpu().numpy().astype(float), view_dir),
                         dtype=torch.float32, device=model.device)
        with torch.no_grad():
            colours.append(model.net.render(x, n, v, out[:, 1:].detach()).cpu().numpy())
        normals.append(n.cpu().numpy())
    rgb = (np.clip(np.concatenate(colours), 0, 1) * 255 + 0.5).astype(np.uint8)
    return Mesh(model.to_world(pts), faces, colors=rgb, normals=np.concatenate(normals).astype(np.float32))


def sdf_volume(model: IDRModel, resolution: int = 128) -> Volume:
    """The signed distance on a ``resolution``³ grid over the object's bounding sphere, in world
    units and the world frame (RAS mm for a scan-like scene): negative inside, zero on the surface."""
    values, origin, step = sdf_grid(model, resolution)
    affine = np.eye(4)
    affine[:3, :3] *= step * model.scale  # voxel index -> world, as to_world does to the grid
    affine[:3, 3] = model.to_world(origin)
    return Volume(values * np.float32(model.scale), affine, name=f"{model.plugin} signed distance")
