"""The one place numpy meets VTK: images without copies, lookup tables, headless set-up."""

from __future__ import annotations

import numpy as np
from vtk.util import numpy_support

from ..compute.vtkbase import quiet_vtk, vtk
from ..model.labels import LabelTable

__all__ = ["image_2d", "colormap_lut", "label_lut", "quiet_vtk", "vtk"]


def image_2d(pixels: np.ndarray, origin, spacing, z: float = 0.0,
             image: vtk.vtkImageData | None = None) -> vtk.vtkImageData:
    """Wrap a (H, W) array as a one-slice vtkImageData at height ``z``, sharing its memory.

    Row 0 is the bottom row (VTK's order). The array is kept alive on the image object.
    """
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype == np.bool_:
        pixels = pixels.view(np.uint8)
    if pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    h, w = pixels.shape
    img = image if image is not None else vtk.vtkImageData()
    img.SetDimensions(w, h, 1)
    img.SetOrigin(float(origin[0]), float(origin[1]), z)
    img.SetSpacing(float(spacing[0]), float(spacing[1]), 1.0)
    arr = numpy_support.numpy_to_vtk(pixels.reshape(-1), deep=False)
    arr.SetName("values")
    img.GetPointData().SetScalars(arr)
    img._numpy_ref = pixels  # numpy_to_vtk(deep=False) does not own the buffer
    img.Modified()
    return img


def _cmap_rgb(name: str, n: int = 256) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    if name == "gray":
        return np.stack([t, t, t], 1)
    if name == "inverted":
        return np.stack([1 - t, 1 - t, 1 - t], 1)
    if name in ("hot", "heat"):
        return np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], 1)
    if name == "bone":
        g = np.stack([t, t, t], 1)
        return np.clip(0.875 * g + 0.125 * np.stack([np.clip(3 * t - 2, 0, 1), np.clip(3 * t - 1, 0, 1),
                                                     np.clip(3 * t, 0, 1)], 1), 0, 1)
    if name == "jet":
        return np.stack([np.clip(1.5 - abs(4 * t - 3), 0, 1), np.clip(1.5 - abs(4 * t - 2), 0, 1),
                         np.clip(1.5 - abs(4 * t - 1), 0, 1)], 1)
    if name == "viridis":
        # 5-stop approximation of matplotlib's viridis, interpolated
        stops = np.array([[0.267, 0.005, 0.329], [0.229, 0.322, 0.546], [0.128, 0.567, 0.551],
                          [0.369, 0.789, 0.383], [0.993, 0.906, 0.144]])
        x = np.linspace(0, 1, len(stops))
        return np.stack([np.interp(t, x, stops[:, c]) for c in range(3)], 1)
    raise KeyError(f"unknown colour map {name!r}")


def colormap_lut(name: str, window: float, level: float, opacity: float = 1.0) -> vtk.vtkLookupTable:
    """A 256-entry lookup table over [level - window/2, level + window/2] (clamped beyond)."""
    lut = vtk.vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    lut.SetRange(level - window / 2.0, level + window / 2.0)
    rgb = _cmap_rgb(name)
    # "heat": transparent where the value is low, so the image underneath stays readable
    alpha = np.clip(np.linspace(-0.15, 1.0, 256) * 1.4, 0, 1) if name == "heat" else np.ones(256)
    for i in range(256):
        lut.SetTableValue(i, *rgb[i], opacity * alpha[i])
    lut.SetNanColor(0, 0, 0, 0)
    lut.SetUseBelowRangeColor(False)
    lut.SetUseAboveRangeColor(False)
    lut.Build()
    return lut


def label_lut(table: LabelTable, opacity: float, max_value: int) -> vtk.vtkLookupTable:
    """Indexed colours for label values 0..max_value; 0 and hidden labels transparent."""
    n = max(int(max_value), 1) + 1
    lut = vtk.vtkLookupTable()
    lut.SetNumberOfTableValues(n)
    # centred bins: value v maps to entry v exactly
    lut.SetTableRange(-0.5, n - 0.5)
    colors = np.zeros((n, 4))
    for lab in table:
        if 0 < lab.value < n and lab.visible:
            colors[lab.value] = (*lab.color, lab.opacity * opacity)
    for i in range(n):
        lut.SetTableValue(i, *colors[i])
    lut.Build()
    return lut
