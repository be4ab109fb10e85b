"""Drawing a training preview: a segmenter's :class:`~viewer.jobs.progress.SlicePreview` or a
renderer's :class:`~viewer.jobs.progress.ImagePreview`, and nothing else.

The payloads are typed and self-contained (label values with their colours and pixel size; images
with their target), so a panel draws any plugin's preview without knowing how the plugin works.
Images are numpy arrays with row 0 at the top.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..jobs.progress import ImagePreview, SlicePreview
from .training_widgets import psnr, side_by_side, to_pixmap

__all__ = ["label_rgb", "slice_preview_image", "image_preview_image", "preview_caption", "PreviewPane"]


def label_rgb(values: np.ndarray, colors: Mapping[int, tuple[float, float, float]]) -> np.ndarray:
    """(H, W) label values -> (H, W, 3) uint8 through ``colors`` (RGB in 0..1); values it lacks are black."""
    a = np.rint(np.nan_to_num(np.asarray(values, np.float64))).astype(np.int64)
    out = np.zeros(a.shape + (3,), np.uint8)
    if not colors:
        return out
    keys = np.array(sorted(int(k) for k in colors), np.int64)
    rgb = np.array([colors[k] for k in sorted(colors, key=int)], np.float64)
    rgb = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    idx = np.clip(np.searchsorted(keys, a), 0, len(keys) - 1)
    hit = keys[idx] == a
    out[hit] = rgb[idx[hit]]
    return out


def _nearest(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize: label colours stay exact (no blend at the edges)."""
    h, w = rgb.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(int), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(int), w - 1)
    return rgb[rows[:, None], cols[None, :]]


def slice_preview_image(preview: SlicePreview, box: int = 150, gap: int = 6) -> np.ndarray:
    """Reference | prediction (or the prediction alone) as one (H, W, 3) uint8 image, each slice
    scaled to its physical size on one scale (the larger side of the larger slice is ``box`` px),
    so that equal millimetres look equal on anisotropic voxels."""
    slices = [s for s in (preview.reference, preview.prediction) if s is not None]
    row_mm, col_mm = (float(v) if np.isfinite(v) and v > 0 else 1.0 for v in preview.pixel_mm)
    sizes = [(s.shape[0] * row_mm, s.shape[1] * col_mm) for s in slices]
    scale = box / max(max(h, w) for h, w in sizes)
    tiles = [_nearest(label_rgb(s, preview.colors), max(1, round(h * scale)), max(1, round(w * scale)))
             for s, (h, w) in zip(slices, sizes)]
    out = np.zeros((max(t.shape[0] for t in tiles), sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1), 3),
                   np.uint8)
    x = 0
    for t in tiles:
        out[: t.shape[0], x: x + t.shape[1]] = t
        x += t.shape[1] + gap
    return out


def image_preview_image(preview: ImagePreview, height: int = 150) -> np.ndarray:
    """Target photo | learned image (or the image alone), scaled to ``height``: (H, W, 3) uint8."""
    images = [preview.image] if preview.target is None else [preview.target, preview.image]
    return side_by_side(images, height=height)


def preview_caption(preview: SlicePreview | ImagePreview) -> str:
    if isinstance(preview, SlicePreview):
        what = "reference | prediction" if preview.reference is not None else "prediction"
        return f"validation case {preview.case}: {what}" if preview.case else what
    text = "ground truth | learned" if preview.target is not None else "learned"
    if preview.target is not None and preview.target.shape == preview.image.shape:
        p = psnr(np.asarray(preview.target, np.float64) / 255.0, np.asarray(preview.image, np.float64) / 255.0)
        text += f", PSNR {p:.2f} dB" if np.isfinite(p) else ", identical"
    return f"held-out view {preview.view}: {text}" if preview.view else text


def _valid(preview: object) -> bool:
    if isinstance(preview, SlicePreview):
        return np.ndim(preview.prediction) == 2 and min(np.shape(preview.prediction)) > 0 and (
            preview.reference is None or np.ndim(preview.reference) == 2)
    if isinstance(preview, ImagePreview):
        return np.ndim(preview.image) == 3 and min(np.shape(preview.image)[:2]) > 0 and (
            preview.target is None or np.ndim(preview.target) == 3)
    return False


class PreviewPane(QWidget):
    """The training preview: the image (``image``, a QLabel showing a pixmap, or a hint while
    there is none) and a caption under it."""

    def __init__(self, hint: str = "", name: str = "training_preview", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # its own height only: the curves above it take what the panel has to spare
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.image = QLabel()
        self.image.setObjectName(name)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setWordWrap(True)
        self.image.setFixedHeight(160)
        self.image.setStyleSheet("color: palette(mid);")
        lay.addWidget(self.image)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setStyleSheet("color: palette(mid);")
        self.caption.setWordWrap(True)
        lay.addWidget(self.caption)
        self.rgb: np.ndarray | None = None  # what is shown, (H, W, 3) uint8
        self.set_hint(hint)

    def set_hint(self, text: str) -> None:
        """No preview yet: say what will appear (or why nothing will)."""
        self.rgb = None
        self.image.clear()
        self.image.setText(text)
        self.caption.setText("")

    def show_preview(self, preview: object) -> bool:
        """Draw a SlicePreview or an ImagePreview; anything else (or an empty one) is ignored: False."""
        if not _valid(preview):
            return False
        rgb = slice_preview_image(preview) if isinstance(preview, SlicePreview) else image_preview_image(preview)
        self.rgb = rgb
        self.image.setPixmap(to_pixmap(rgb))
        self.caption.setText(preview_caption(preview))
        return True
