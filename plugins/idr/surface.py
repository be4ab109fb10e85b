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

from .model import IDRModel
from .network import gradient

__all__ = ["sdf_grid", "extract_mesh"]


@torch.no_grad()
def sdf_grid(model: IDRModel, resolution: int, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, float]:
    """(values (R, R, R) float32 indexed [i, j, k] along x, y, z, origin (3,), spacing) of the SDF
    on the cube [-1, 1]^3 of the normalised frame."""
    axis = torch.linspace(-1.0, 1.0, resolution)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    out = [model.net.sdf.sdf(pts[i:i + chunk].to(model.device)).cpu() for i in range(0, len(pts), chunk)]
    values = torch.cat(out).reshape(resolution, resolution, resolution).numpy().astype(np.float32)
    return values, np.full(3, -1.0), 2.0 / (resolution - 1)


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
