"""What the masks alone say about the object (numpy, no torch): the volume every camera sees, the
visual hull carved from the masks, and from it the scene normalisation IDR works in (the object
inside the unit sphere). The same carving is the peer the bench compares IDR's surface with.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from viewer.model.camera import Camera

__all__ = ["axes_meeting_point", "carve", "check_in_view", "common_volume", "MASK_SIDE"]

MASK_SIDE = 128  # masks are carved at this longer side at most: the hull only frames the scene


def axes_meeting_point(cameras: Sequence[Camera]) -> np.ndarray:
    """The point nearest (least squares) to every camera's optical axis."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for c in cameras:
        f = c.forward / np.linalg.norm(c.forward)
        p = np.eye(3) - np.outer(f, f)
        a += p
        b += p @ c.center
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _small(camera: Camera, mask: np.ndarray) -> tuple[Camera, np.ndarray]:
    """The camera and its mask at :data:`MASK_SIDE` (nearest sampling): carving needs no more."""
    h, w = mask.shape
    s = MASK_SIDE / max(h, w)
    if s >= 1:
        return camera, mask
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    rows = np.minimum((np.arange(nh) + 0.5) * h / nh, h - 1).astype(int)
    cols = np.minimum((np.arange(nw) + 0.5) * w / nw, w - 1).astype(int)
    return camera.scaled(nw, nh), mask[rows][:, cols]


def carve(views: Sequence[tuple[Camera, np.ndarray]], lo: np.ndarray, hi: np.ndarray, res: int,
          min_seen: float = 0.5) -> np.ndarray:
    """(res, res, res) bool occupancy, indexed [i, j, k] along x, y, z, of voxel centres in the
    box ``lo``..``hi`` that every camera seeing them sees inside its mask (``views``: camera and
    (H, W) bool mask). A voxel in view of fewer than ``min_seen`` of the cameras (at least two)
    is dropped: the photos frame the object, and what few of them see is what nothing carved."""
    axes = [np.linspace(lo[i], hi[i], res, endpoint=False) + (hi[i] - lo[i]) / (2 * res) for i in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    keep = np.ones(len(pts), bool)
    seen = np.zeros(len(pts), np.int32)
    for cam, mask in views:
        cam, mask = _small(cam, np.asarray(mask, bool))
        uv, z = cam.project(pts)
        with np.errstate(invalid="ignore"):
            u, v = np.floor(uv[:, 0]), np.floor(uv[:, 1])
            inside = (z > 0) & (u >= 0) & (v >= 0) & (u < cam.width) & (v < cam.height)
        ui, vi = u[inside].astype(int), v[inside].astype(int)
        hit = np.zeros(len(pts), bool)
        hit[inside] = mask[vi, ui]
        keep &= hit | ~inside
        seen += inside
    need = max(min(2, len(views)), int(np.ceil(min_seen * len(views))))
    return (keep & (seen >= need)).reshape(res, res, res)


def check_in_view(cams: Sequence[Camera], point: np.ndarray, what: str, share: float = 0.8) -> None:
    """ValueError unless ``point`` (world) is in front of and inside the image of at least
    ``share`` of the cameras: otherwise they do not look at a common volume."""
    p = np.asarray(point, float)[None]
    seen = 0
    for c in cams:
        uv, z = c.project(p)
        seen += bool(z[0] > 0 and 0 <= uv[0, 0] < c.width and 0 <= uv[0, 1] < c.height)
    if seen < share * len(cams):
        raise ValueError(f"the cameras do not look at a common volume: {what} is in view of only "
                         f"{seen} of {len(cams)} cameras")


def common_volume(views: Sequence[tuple[Camera, np.ndarray]], res: int = 48) -> tuple[np.ndarray, float]:
    """(centre, radius) of a sphere holding the visual hull of the masks.

    Raises ValueError when the cameras do not look at a common volume: the point nearest their
    optical axes is behind or outside the image of most of them, or the masks carve it all away.
    """
    cams = [c for c, _ in views]
    if len(cams) < 2:
        raise ValueError("at least two views with masks are needed to find the object")
    c0 = axes_meeting_point(cams)
    check_in_view(cams, c0, "the point nearest their optical axes")
    dist = np.linalg.norm(np.array([c.center for c in cams]) - c0, axis=1)
    half_fov = np.array([np.arctan(0.5 * max(c.width / c.fx, c.height / c.fy)) for c in cams])
    half = float(np.median(dist * np.tan(half_fov)))
    for _ in range(3):  # grow the box while the hull touches its sides
        lo, hi = c0 - half, c0 + half
        occ = carve(views, lo, hi, res)
        if not occ.any():
            raise ValueError("the masks carve away every point the cameras share: the cameras do not look "
                             "at a common volume (or the masks are not of the same object)")
        touches = occ[[0, -1]].any() or occ[:, [0, -1]].any() or occ[:, :, [0, -1]].any()
        if not touches:
            break
        half *= 2.0
    idx = np.argwhere(occ)
    step = (hi - lo) / res
    pmin, pmax = lo + idx.min(0) * step, lo + (idx.max(0) + 1) * step
    centre = (pmin + pmax) / 2
    return centre, float(np.linalg.norm(pmax - pmin) / 2)
