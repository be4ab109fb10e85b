"""Photos of a posed photo set read as RGBA, masks as booleans, and the memory check that runs on
their headers before any is decoded. Pillow only; each bad file is a one-line LoadError."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.errors import LoadError
from .common import available_memory, open_image_header, quiet_pillow, require_regular_file

__all__ = ["read_rgba", "read_mask", "find_image", "image_size", "pixel_budget", "check_pixel_budget",
           "IMAGE_EXTS", "PIXEL_BUDGET_CAP"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
PIXEL_BUDGET_CAP = 16 << 30
"""Most bytes a scene's decoded photos may take (RGBA, 4 bytes a pixel, + 1 a mask pixel)."""


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind in "ui":  # 16-bit (or 32-bit holding 16-bit) samples
        return np.clip(np.rint(a.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    a = np.nan_to_num(a.astype(np.float64))
    if a.size and a.max() <= 1.0:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _pil_array(path: Path, what: str, grey: bool = False, owner: object = None) -> np.ndarray:
    """The image's samples as Pillow gives them (palette and odd modes -> RGB(A); ``grey``: L).
    Only a regular file under Pillow's pixel limit is decoded (see ``open_image_header``)."""
    shown, prefix = (path, "") if owner is None else (owner, f"its {what} {path}: ")
    try:  # Pillow's warnings on odd metadata would be extra lines on stderr: not shown
        with quiet_pillow(), open_image_header(path, owner, what) as im:
            im.load()
            if im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F", "1") and not im.mode.startswith("I;16"):
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
            if grey and im.mode in ("LA", "RGB", "RGBA"):
                im = im.convert("L")
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:  # a truncated or corrupt pixel stream
        raise LoadError(shown, f"{prefix}cannot read the {what} ({type(exc).__name__}: {exc})") from None


def read_rgba(path: str | Path, owner: object = None) -> np.ndarray:
    """Read an image as (H, W, 4) uint8 RGBA, row 0 at the top.

    Grey and RGB get alpha 255; 16-bit grey is scaled by 1/257; 16-bit RGB(A) PNGs go through
    Pillow's 8-bit conversion; palette images keep their transparency.

    Raises
    ------
    LoadError : the file is missing, not a regular file or not an image; with ``owner`` (the
        file the user opened) the message names ``owner`` first.
    """
    a = _to_uint8(_pil_array(Path(path), "image", owner=owner))
    a = a[..., None] if a.ndim == 2 else a
    c = a.shape[2]
    out = np.empty(a.shape[:2] + (4,), np.uint8)
    out[..., :3] = a[..., :3] if c >= 3 else a[..., :1]
    out[..., 3] = a[..., c - 1] if c in (2, 4) else 255
    return out


def read_mask(path: Path, owner: object) -> np.ndarray:
    """(H, W) bool: True where the mask is at least half on (8-bit, 16-bit or 0/1 masks)."""
    a = _pil_array(path, "mask", grey=True, owner=owner)
    if a.dtype == np.bool_:
        return a.copy()
    a = a.astype(np.float64)
    top = a.max() if a.size else 0.0
    return a >= 0.5 if top <= 1.0 else a >= (127.5 if top <= 255 else 32767.5)


def find_image(base: Path, file_path: str, owner: Path, what: str = "image") -> Path | None:
    """``file_path`` under ``base``, as given or with an image extension added; a name that
    exists but is no regular file (a FIFO, a device) is refused rather than opened."""
    p = base / file_path
    for q in [p] + [p.with_name(p.name + ext) for ext in IMAGE_EXTS]:
        if (q.exists() or q.is_symlink()) and not q.is_dir():
            require_regular_file(q, owner, what)
            return q
    return None


def pixel_budget() -> int:
    """Bytes the decoded photos of one scene may take: a quarter of the memory available now,
    at most :data:`PIXEL_BUDGET_CAP`. Training then scales, composites and caches the frames
    (several more copies at the training size), so the photos themselves get a quarter."""
    return int(min(available_memory() / 4, PIXEL_BUDGET_CAP))


def image_size(path: Path, owner: Path, what: str = "image") -> tuple[int, int]:
    """(width, height) from the image's header: no pixel is decoded."""
    with open_image_header(path, owner, what) as im:
        return im.size


def check_pixel_budget(opened: Path, sizes: list[tuple[int, int, int]]) -> None:
    """Refuse, before any photo is decoded, a scene whose photos (w, h, bytes a pixel) would
    take more than :func:`pixel_budget` once decoded."""
    total, limit = sum(w * h * b for w, h, b in sizes), pixel_budget()
    if total > limit:
        raise LoadError(opened, f"its {len(sizes)} images need {total / 2**30:.1f} GiB decoded, more "
                                f"than the {limit / 2**30:.1f} GiB allowed (a quarter of the available "
                                "memory, at most 16 GiB): use downscaled images (e.g. images_4)")
