"""Photos with cameras: the input of every neural renderer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .camera import Camera
from .geometry import PointCloud

__all__ = ["Frame", "ViewSet"]


@dataclass(eq=False)
class Frame:
    """One photo and its camera.

    Parameters
    ----------
    camera : the camera; its width/height equal the image's.
    rgba : (H, W, 4) uint8 image, row 0 at the top; alpha 255 where the photo had none.
    name : the frame's file name as the scene names it (``file_path``'s last part, with the
        extension the file on disk has), used to name rendered images.
    split : "train", "val" or "test".
    mask : optional (H, W) bool foreground mask from a separate mask file (alpha is used otherwise).
    """

    camera: Camera
    rgba: np.ndarray
    name: str = ""
    split: str = "train"
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        a = np.asarray(self.rgba)
        if a.ndim != 3 or a.shape[2] != 4 or a.dtype != np.uint8:
            raise ValueError(f"frame image must be (H, W, 4) uint8, got {a.shape} {a.dtype}")
        if a.shape[:2] != (self.camera.height, self.camera.width):
            raise ValueError(f"image is {a.shape[1]}x{a.shape[0]} but its camera says "
                             f"{self.camera.width}x{self.camera.height}")

    @property
    def alpha(self) -> np.ndarray:
        """(H, W) float coverage in 0..1: the mask if there is one, else the image's alpha."""
        if self.mask is not None:
            return np.asarray(self.mask, dtype=np.float32)
        return self.rgba[..., 3].astype(np.float32) / 255.0

    def rgb(self, background=(1.0, 1.0, 1.0)) -> np.ndarray:
        """(H, W, 3) float32 image in 0..1 composited over ``background``."""
        a = self.alpha[..., None]
        c = self.rgba[..., :3].astype(np.float32) / 255.0
        return c * a + np.asarray(background, np.float32) * (1.0 - a)


@dataclass(eq=False)
class ViewSet:
    """A scene of posed photos: frames in splits, a background colour, optional sparse points.

    Coordinates are the scene's own world frame; cameras use :class:`Camera`'s OpenCV axes.
    """

    frames: list[Frame]
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    points: PointCloud | None = None
    name: str = ""
    source: str | None = None
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Frame]:
        """The frames of one split ("train", "val", "test"), in file order."""
        return [f for f in self.frames if f.split == name]

    @property
    def splits(self) -> list[str]:
        return sorted({f.split for f in self.frames})

    @property
    def cameras(self) -> list[Camera]:
        return [f.camera for f in self.frames]

    def bounds(self) -> list[float]:
        """[xmin, xmax, ymin, ymax, zmin, zmax] of the camera centres (and points, if any)."""
        pts = [f.camera.center for f in self.frames]
        if self.points is not None and self.points.n_points:
            pts.extend(self.points.points)
        if not pts:
            return [0.0] * 6
        p = np.asarray(pts)
        lo, hi = p.min(0), p.max(0)
        return [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])]
