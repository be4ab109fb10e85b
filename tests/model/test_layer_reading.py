"""Layers read at a glance: frusta small beside the object a rig circles (spaced like the cameras
of a forward-facing rig), and names that say more than `mesh.obj` or `0`."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model import Camera, Frame, ViewSet
from viewer.model.layer import default_frustum_scale


def _look_from(center, target) -> np.ndarray:
    """OpenCV camera-to-world pose at ``center`` looking at ``target`` (+z forward, +y down)."""
    z = np.asarray(target, float) - center
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    c2w[:3, 3] = center
    return c2w


def _views(centers, targets) -> ViewSet:
    rgba = np.zeros((8, 8, 4), np.uint8)
    frames = [Frame(Camera(10.0, 10.0, 4.0, 4.0, 8, 8, _look_from(c, t)), rgba, split="train")
              for c, t in zip(centers, targets)]
    return ViewSet(frames)


def _sphere_rig(n: int, radius: float) -> ViewSet:
    golden = np.pi * (3 - np.sqrt(5))
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    r = np.sqrt(1 - z**2)
    centers = radius * np.stack([r * np.cos(golden * k), r * np.sin(golden * k), z], axis=1)
    return _views(centers, np.zeros_like(centers))


def _forward_rig(n: int, spacing: float) -> ViewSet:
    centers = np.stack([np.arange(n) * spacing, np.zeros(n), np.zeros(n)], axis=1)
    return _views(centers, centers + [0.0, 10.0, 0.0])


@pytest.mark.parametrize("views, at_most, at_least", [
    (_sphere_rig(120, 3.0), 0.06 * 3.0, 0.05 * 3.0),  # around an object: 6 % of the distance to it
    (_sphere_rig(12, 3.0), 0.06 * 3.0, 0.05 * 3.0),
    (_sphere_rig(120, 3e9), 0.06 * 3e9, 0.05 * 3e9),  # any unit
    (_forward_rig(40, 0.5), 0.6 * 0.5, 0.59 * 0.5),  # parallel axes, no points: by the spacing
], ids=["sphere-120", "sphere-12", "sphere-km", "forward-facing"])
def test_default_frustum_depth(views, at_most, at_least):
    assert at_least <= default_frustum_scale(views) <= at_most * (1 + 1e-9)


@pytest.mark.parametrize("name, source, expect", [
    ("mesh.obj", "/data/capture-knot/mesh.obj", "capture-knot/mesh.obj"),
    ("0", "/data/garden/sparse/0", "garden"),
    ("points3D.ply", "/data/garden/sparse/0/points3D.ply", "garden/points3D.ply"),
    ("brain.nii.gz", "/data/x/brain.nii.gz", "brain.nii.gz"),  # says what it is: kept
    ("mesh.obj", "demo:rendering/0", "mesh.obj"),
    ("mesh.obj", None, "mesh.obj"),
], ids=["capture-mesh", "colmap-folder", "colmap-points", "specific", "demo", "no-source"])
def test_generic_file_names_get_their_folder(name, source, expect):
    from viewer.model.layer import readable_name

    assert readable_name(name, source) == expect
