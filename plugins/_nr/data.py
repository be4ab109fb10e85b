"""Training data of the neural renderers: per frame, the mesh's uv map at the training size, the
photo composited over the scene's background, the coverage mask, and the camera to compute
per-pixel view directions; random crops of a few frames per step.

Frames: cameras are :class:`~viewer.model.camera.Camera` (OpenCV axes, camera-to-world); every
image array has row 0 at the TOP; uv has its origin at the texture's bottom-left (``Mesh.uv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from viewer.model.camera import Camera
from viewer.model.geometry import Mesh
from viewer.model.viewset import Frame

from .shading import MeshShading, mesh_shading

__all__ = ["ViewData", "PixelBatch", "training_size", "training_camera", "evenly_spaced", "resize_image", "make_rasterizer", "prepare_views",
           "prepare_view", "full_batch", "random_batch", "camera_batch", "cover_box", "photos_blend_edges"]


def make_rasterizer(mesh: Mesh):
    """A :class:`viewer.compute.raster.UVRasterizer` for ``mesh`` (VTK offscreen; use it in the
    thread that made it). Tests replace this function to run without VTK."""
    from viewer.compute.raster import UVRasterizer

    return UVRasterizer(mesh)


@dataclass(eq=False)
class ViewData:
    """One frame at the training size.

    Attributes
    ----------
    name : the frame's name.
    camera : its camera scaled to the training size.
    uv : (H, W, 2) float32 texture coordinates (origin bottom-left), 0 where not covered.
    mask : (H, W) bool, the mesh covers the pixel centre.
    target : (H, W, 3) float32 photo in 0..1 composited over the background (area-resampled).
    normal : (H, W, 3) float32 unit world normals (:mod:`.shading`), 0 where not covered.
    coverage : (H, W) float32 share of each pixel the mesh covers (``prepare_view(coverage=s)``),
        or None.
    """

    name: str
    camera: Camera
    uv: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    normal: torch.Tensor | None = None
    coverage: torch.Tensor | None = None
    _covered: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    @property
    def covered(self) -> torch.Tensor:
        """(N,) int64 flat indices of the covered pixels (computed once)."""
        if self._covered is None:
            self._covered = torch.nonzero(self.mask.reshape(-1)).squeeze(1)
        return self._covered


@dataclass(eq=False)
class PixelBatch:
    """What a renderer network sees: B images of H x W, of which the N covered pixels carry uv and
    a view direction.

    Attributes
    ----------
    shape : (B, H, W).
    pix : (N,) int64 flat indices of the covered pixels into B x H x W.
    uv : (N, 2) float texture coordinates of those pixels (origin bottom-left).
    dirs : (N, 3) float unit ray directions, camera -> surface, world frame.
    mask : (B, 1, H, W) float coverage (1 covered, 0 not).
    normals : (N, 3) float unit world normals of those pixels (None if not computed).
    coverage : (B, 1, H, W) float share of each pixel's area the mesh covers (None if not
        computed): fractional along the silhouette, where ``mask`` says only whether the centre is.
    """

    shape: tuple[int, int, int]
    pix: torch.Tensor
    uv: torch.Tensor
    dirs: torch.Tensor
    mask: torch.Tensor
    normals: torch.Tensor | None = None
    coverage: torch.Tensor | None = None


def training_size(camera: Camera, size: int) -> tuple[int, int]:
    """(width, height) with the longer side at most ``size``, the camera's aspect kept: frames
    larger than ``size`` are scaled down, smaller ones keep their size (as does every frame if 0)."""
    if not size or size <= 0 or max(camera.width, camera.height) <= size:
        return camera.width, camera.height
    s = size / max(camera.width, camera.height)
    return max(1, round(camera.width * s)), max(1, round(camera.height * s))


def training_camera(camera: Camera, size: int) -> Camera:
    """``camera`` at :func:`training_size` (itself when that is its own size)."""
    w, h = training_size(camera, size)
    return camera.scaled(w, h) if (w, h) != (camera.width, camera.height) else camera


def evenly_spaced(frames: Sequence[Frame], n: int) -> list[Frame]:
    """Up to ``n`` of ``frames``, evenly spaced from the first to the last."""
    return [frames[int(i)] for i in np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round())]


def resize_image(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W, C) float32 -> (h, w, C), antialiased bilinear (area-like when shrinking)."""
    if img.shape[:2] == (h, w):
        return np.ascontiguousarray(img, np.float32)
    t = torch.from_numpy(np.ascontiguousarray(img, np.float32)).permute(2, 0, 1)[None]
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).clamp_(0.0, 1.0).numpy()


def photos_blend_edges(frames: Sequence[Frame], size: int, sample: int = 16) -> bool:
    """Whether the training targets blend colours along the object's silhouette, as a camera's
    pixels do (each integrates the light over its area), rather than taking each pixel's centre.

    True when a frame is shrunk to the training size (area-filtered), when the photos carry no
    transparency at all (a camera's photos), or when their alpha is fractional along the
    silhouette (anti-aliased renders; more than a quarter of the pixels where alpha changes).
    False for renders whose alpha is 0 or 1 everywhere (one sample at each pixel centre, as
    ``main.py capture`` writes by default) or a separate binary mask used at the photo's size:
    there the rasterized centre mask is exactly the target's coverage. Looks at up to ``sample``
    frames, evenly spaced.
    """
    if not frames:
        return False
    picks = evenly_spaced(frames, sample)
    any_transparent, fractional, edge = False, 0, 0
    for f in picks:
        if training_size(f.camera, size) != (f.camera.width, f.camera.height):
            return True
        if f.mask is not None:
            a = np.where(np.asarray(f.mask, bool), 255, 0).astype(np.uint8)
        else:
            a = f.rgba[..., 3]
        if a.min() == 255:
            continue
        any_transparent = True
        part = (a > 0) & (a < 255)
        # pixels where coverage changes: partial ones, and full ones next to an empty pixel
        near_empty = ndimage.binary_dilation(a == 0)  # 4-neighbourhood
        fractional += int(part.sum())
        edge += int(part.sum()) + int(((a == 255) & near_empty).sum())
    if not any_transparent:
        return True
    return edge > 0 and fractional > 0.25 * edge


def prepare_view(frame: Frame, rasterizer, size: int, background: Sequence[float],
                 shading: MeshShading | None = None, coverage: int = 1) -> ViewData:
    """One frame's :class:`ViewData` at the training size (longer side ``size``); per-pixel
    normals too if ``shading`` is given, and with ``coverage`` s > 1 each pixel's covered share
    from s x s samples."""
    cam = training_camera(frame.camera, size)
    w, h = cam.width, cam.height
    m = rasterizer.rasterize(cam, coverage=coverage)
    target = resize_image(frame.rgb(background), w, h)
    normal = None if shading is None else torch.from_numpy(shading.normals(m.face, m.uv))
    return ViewData(name=frame.name or frame.camera.name, camera=cam,
                    uv=torch.from_numpy(np.ascontiguousarray(m.uv, np.float32)),
                    mask=torch.from_numpy(np.ascontiguousarray(m.mask, bool)), target=torch.from_numpy(target),
                    normal=normal, coverage=None if m.coverage is None else torch.from_numpy(m.coverage))


def prepare_views(frames: Sequence[Frame], mesh: Mesh, size: int, background: Sequence[float],
                  report: Callable[[int, int], None] | None = None, coverage: int = 1) -> list[ViewData]:
    """Rasterize every frame once (the uv maps are cached for the whole fit), in this thread."""
    rast = make_rasterizer(mesh)
    shading = mesh_shading(mesh)
    try:
        out = []
        for i, f in enumerate(frames):
            out.append(prepare_view(f, rast, size, background, shading, coverage))
            if report is not None:
                report(i + 1, len(frames))
        return out
    finally:
        rast.close()


def _cam_params(cams: Sequence[Camera], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 4) fx, fy, cx, cy and (B, 3, 3) camera-to-world rotations, float32."""
    k = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cams], dtype=torch.float32, device=device)
    r = torch.tensor(np.stack([c.c2w[:3, :3] for c in cams]), dtype=torch.float32, device=device)
    return k, r


def _dirs(k: torch.Tensor, r: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unit world directions (N, 3) through pixel centres (x + 0.5, y + 0.5) of cameras ``b``."""
    kb = k[b]
    d = torch.stack([(x + 0.5 - kb[:, 2]) / kb[:, 0], (y + 0.5 - kb[:, 3]) / kb[:, 1], torch.ones_like(kb[:, 0])], 1)
    d = torch.einsum("nij,nj->ni", r[b], d)
    return F.normalize(d, dim=1)


def _batch(uv: torch.Tensor, mask: torch.Tensor, cams: Sequence[Camera], x0: torch.Tensor,
           y0: torch.Tensor, device, normal: torch.Tensor | None = None,
           coverage: torch.Tensor | None = None) -> PixelBatch:
    """A PixelBatch from stacked crops uv (B, H, W, 2), mask (B, H, W) (and normals (B, H, W, 3),
    coverage (B, H, W)) whose top-left corners are (x0, y0) (B,) in their frames' pixel grids."""
    b, h, w = mask.shape
    mask = mask.to(device)
    flat = mask.reshape(-1)
    pix = torch.nonzero(flat).squeeze(1)
    bi = torch.div(pix, h * w, rounding_mode="floor")
    rem = pix - bi * h * w
    yy = torch.div(rem, w, rounding_mode="floor")
    xx = rem - yy * w
    k, r = _cam_params(cams, device)
    dirs = _dirs(k, r, bi, (xx + x0.to(device)[bi]).float(), (yy + y0.to(device)[bi]).float())
    normals = None if normal is None else normal.reshape(-1, 3)[pix.to(normal.device)].to(device)
    return PixelBatch(shape=(b, h, w), pix=pix, uv=uv.to(device).reshape(-1, 2)[pix], dirs=dirs,
                      mask=mask[:, None].float(), normals=normals,
                      coverage=None if coverage is None else coverage[:, None].to(device, torch.float32))


def full_batch(view: ViewData, device="cpu") -> PixelBatch:
    """The whole frame as a batch of one."""
    z = torch.zeros(1, dtype=torch.long)
    return _batch(view.uv[None], view.mask[None], [view.camera], z, z, device,
                  None if view.normal is None else view.normal[None],
                  None if view.coverage is None else view.coverage[None])


def camera_batch(camera: Camera, uv: np.ndarray, mask: np.ndarray, device="cpu",
                 normal: np.ndarray | None = None, origin: tuple[int, int] = (0, 0),
                 coverage: np.ndarray | None = None) -> PixelBatch:
    """A batch of one from a rasterizer's uv (H, W, 2) and mask (H, W) (and the normals (H, W, 3)
    of :meth:`MeshShading.normals`, the coverage (H, W)) for ``camera``; ``origin`` (x0, y0) is
    the arrays' top-left pixel in the camera's image when they are a crop of it."""
    x0, y0 = torch.tensor([int(origin[0])]), torch.tensor([int(origin[1])])
    return _batch(torch.from_numpy(np.ascontiguousarray(uv, np.float32))[None],
                  torch.from_numpy(np.ascontiguousarray(mask, bool))[None], [camera], x0, y0, device,
                  None if normal is None else torch.from_numpy(np.ascontiguousarray(normal, np.float32))[None],
                  None if coverage is None else torch.from_numpy(np.ascontiguousarray(coverage, np.float32))[None])


def cover_box(mask: np.ndarray, margin: int = 16, multiple: int = 16) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the pixels the mesh covers, ``margin`` pixels more on every side, the
    size rounded up to a multiple of ``multiple`` where the image allows, clipped to the image;
    None if nothing is covered. Outside it a renderer's output is exactly the background."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    h, w = mask.shape

    def span(lo: int, hi: int, n: int) -> tuple[int, int]:
        lo, hi = max(0, lo - margin), min(n, hi + 1 + margin)
        hi = min(n, lo + -(-(hi - lo) // multiple) * multiple)
        return max(0, min(lo, hi - -(-(hi - lo) // multiple) * multiple)), hi

    x0, x1 = span(int(cols[0]), int(cols[-1]), w)
    y0, y1 = span(int(rows[0]), int(rows[-1]), h)
    return x0, y0, x1, y1


def random_batch(views: Sequence[ViewData], n: int, crop: int, rng: np.random.Generator,
                 device="cpu") -> tuple[PixelBatch, torch.Tensor]:
    """``n`` random crops of ``crop`` x ``crop`` pixels (smaller if a frame is), each centred on a
    random covered pixel 90 % of the time (anywhere otherwise).

    Returns
    -------
    the PixelBatch and the targets (B, 3, crop, crop) float32.
    """
    picks = [views[int(i)] for i in rng.integers(0, len(views), size=n)]
    ch = min([crop] + [v.shape[0] for v in picks]) if crop else min(v.shape[0] for v in picks)
    cw = min([crop] + [v.shape[1] for v in picks]) if crop else min(v.shape[1] for v in picks)
    uvs, masks, targets, normals, covs, xs, ys = [], [], [], [], [], [], []
    for v in picks:
        h, w = v.shape
        cov = v.covered
        if len(cov) and rng.random() < 0.9:
            yc, xc = divmod(int(cov[int(rng.integers(0, len(cov)))]), w)
            y0 = int(np.clip(yc - ch // 2, 0, h - ch))
            x0 = int(np.clip(xc - cw // 2, 0, w - cw))
        else:
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        uvs.append(v.uv[y0:y0 + ch, x0:x0 + cw])
        masks.append(v.mask[y0:y0 + ch, x0:x0 + cw])
        targets.append(v.target[y0:y0 + ch, x0:x0 + cw])
        if v.normal is not None:
            normals.append(v.normal[y0:y0 + ch, x0:x0 + cw])
        if v.coverage is not None:
            covs.append(v.coverage[y0:y0 + ch, x0:x0 + cw])
        xs.append(x0)
        ys.append(y0)
    batch = _batch(torch.stack(uvs), torch.stack(masks), [v.camera for v in picks],
                   torch.tensor(xs), torch.tensor(ys), device,
                   torch.stack(normals) if len(normals) == len(picks) else None,
                   torch.stack(covs) if len(covs) == len(picks) else None)
    target = torch.stack(targets).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).to(device)
    return batch, target
