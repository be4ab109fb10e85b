"""The 3D view's volume rendering made in a worker: the array it renders (a downsampled proxy
above :data:`PROXY_VOXELS`), its VTK image, the mapper, and the slow part of its first frame.

On a software OpenGL (Mesa's llvmpipe: no GPU, a remote session, a VM, CI) VTK's GPU ray caster
runs its shaders on the CPU: a CT proxy costs 190-420 ms a frame there, and its first frame
0.9-1.5 s of shader compilation and 3D-texture upload, all on the UI thread. VTK's CPU ray
caster (``vtkFixedPointVolumeRayCastMapper``, multi-threaded) draws the same proxy in 12-40 ms
and needs no shader; the slow part of its first frame (gradients for shading and the min-max
blocks it skips empty space with, ~2 s for 10 M voxels) is done here in a worker, by
:func:`prepare_volume`, so the first frame on the UI thread costs tens of milliseconds.
Figures: ``bench/big_volume_stall.py``.

With a hardware GPU the GPU ray caster stays (``vtkSmartVolumeMapper``). ``LUCID3D_VOLUME_MAPPER``
= ``cpu`` or ``gpu`` overrides the choice.

A scan above :data:`PROXY_VOXELS` shows its proxy first (seconds sooner), then the full
resolution: a second worker job prepares it and the view swaps it in, when
:func:`full_resolution_fits` in memory (the array copy plus the CPU caster's 3 bytes of
gradients per voxel, at most 40 % of the memory still available). The 3D view's frame-time
budget keeps a full-resolution frame near 50 ms on the CPU caster (512x512x1000 CT: 47 ms
median, 88 ms without the budget; the 3x proxy 33 ms).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from vtk.util import numpy_support

from ..compute.nogil import per_volume_initialization
from ..io.common import available_memory
from .vtkutil import vtk

__all__ = ["PROXY_VOXELS", "vtk_dtype", "volume_image", "volume_proxy", "volume_for", "full_resolution_fits", "SOFTWARE_GL_NAMES", "is_software_renderer", "watch_renderer", "prepare_volume", "mapper_kind", "guess_software"]

# substrings of GL_RENDERER for renderers that run on the CPU
SOFTWARE_GL_NAMES = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "lavapipe", "swiftshader")


def is_software_renderer(renderer_string: str) -> bool:
    """True for a GL_RENDERER string of a CPU rasterizer (``"llvmpipe (LLVM 15.0.6, 256 bits)"``)."""
    s = renderer_string.lower()
    return any(name in s for name in SOFTWARE_GL_NAMES)


def watch_renderer(render_window, found: dict[str, Any]) -> None:
    """Fill ``found["software"]`` once, at the end of the window's first frame.

    The driver is asked inside a frame, when VTK has the context current: making it current
    from outside a paint crashed now and then under Qt (docs/RELIABILITY.md)."""
    tag: list[int] = []

    def on_end(obj, _event) -> None:
        if "software" not in found:
            lines = [ln for ln in obj.ReportCapabilities().splitlines() if "renderer string" in ln.lower()]
            if lines:
                found["software"] = is_software_renderer(lines[0])
        if "software" in found and tag:
            obj.RemoveObserver(tag.pop())

    tag.append(render_window.AddObserver("EndEvent", on_end))


def guess_software() -> bool:
    """Before the first frame has told: on Linux, no GPU device node means Mesa's software
    rasterizer (no /dev/dri for Mesa's drivers, no /dev/nvidia0 for NVIDIA's); elsewhere a GPU."""
    if not sys.platform.startswith("linux"):
        return False
    return not (Path("/dev/dri").exists() or Path("/dev/nvidia0").exists())


def mapper_kind(software: bool | None) -> str:
    """"cpu" or "gpu": the environment's choice, else the CPU caster on a software renderer
    (``software`` None: not known yet, guessed by :func:`guess_software`)."""
    forced = os.environ.get("LUCID3D_VOLUME_MAPPER", "").strip().lower()
    if forced in ("cpu", "gpu"):
        return forced
    return "cpu" if (guess_software() if software is None else software) else "gpu"


def prepare_volume(image, kind: str) -> Any:
    """A ``vtkVolume`` over ``image`` (vtkImageData) with the mapper of ``kind``; for the CPU
    caster, its gradients and empty-space blocks computed now (this runs in a worker).

    The style (colours, opacity, shading, blend mode) is set afterwards on the UI thread; the
    gradients are made with shading on, so switching to a shaded preset later costs no frame.
    """
    vol = vtk.vtkVolume()
    if kind == "cpu":
        mapper = vtk.vtkFixedPointVolumeRayCastMapper()
        mapper.SetInputData(image)
        vol.SetMapper(mapper)
        ref = getattr(image, "_numpy_ref", None)  # numpy lets go of the GIL; VTK's range would not
        lo, hi = (float(ref.min()), float(ref.max())) if ref is not None else image.GetScalarRange()
        prop = vtk.vtkVolumeProperty()
        ctf = vtk.vtkColorTransferFunction()
        ctf.AddRGBPoint(lo, 0, 0, 0)
        ctf.AddRGBPoint(hi, 1, 1, 1)
        otf = vtk.vtkPiecewiseFunction()
        otf.AddPoint(lo, 0.0)
        otf.AddPoint(hi, 1.0)
        prop.SetColor(ctf)
        prop.SetScalarOpacity(otf)
        prop.ShadeOn()
        vol.SetProperty(prop)
        renderer = vtk.vtkRenderer()  # no window: only the camera-independent set-up runs
        renderer.AddVolume(vol)
        per_volume_initialization(mapper, renderer, vol)  # without the GIL: the UI thread runs on
        renderer.RemoveVolume(vol)
    else:
        mapper = vtk.vtkSmartVolumeMapper()
        mapper.SetInputData(image)
        vol.SetMapper(mapper)
    return vol


def vtk_dtype(dtype: Any) -> np.dtype:
    """The type :func:`volume_image` hands VTK: booleans as uint8, float64 and int64 narrowed to
    4 bytes, anything else (uint64 too) as it is."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.dtype(np.uint8)
    if dt.kind == "f" and dt.itemsize > 4:
        return np.dtype(np.float32)
    if dt.kind == "i" and dt.itemsize > 4:
        return np.dtype(np.int32)
    return dt


def volume_image(array: np.ndarray) -> vtk.vtkImageData:
    """(I, J, K) array -> vtkImageData in index space (spacing 1), sharing memory when the array
    is Fortran-ordered (as nibabel gives it); the affine goes on the actor as a user matrix."""
    dt = vtk_dtype(array.dtype)
    a = array if array.dtype == dt else array.astype(dt)
    flat = np.ravel(a, order="F")  # a view for F-contiguous arrays: VTK's x-fastest order
    img = vtk.vtkImageData()
    img.SetDimensions(*a.shape)
    arr = numpy_support.numpy_to_vtk(flat, deep=False)
    arr.SetName("values")
    img.GetPointData().SetScalars(arr)
    img._numpy_ref = flat
    return img


PROXY_VOXELS = 24_000_000  # above this the 3D view renders a downsampled copy (slices stay full resolution)


def volume_proxy(array: np.ndarray, max_voxels: int | None = None) -> tuple[np.ndarray, int]:
    """The array the 3D view renders, made in a worker: the whole array read into memory
    (a memory-mapped file is read here, not by VTK on the UI thread at the first frame), or,
    above ``max_voxels``, every f-th voxel along each axis with the smallest f that fits.

    Returns (Fortran-ordered array, f); the affine's columns are scaled by f for it.
    """
    max_voxels = PROXY_VOXELS if max_voxels is None else max_voxels
    f = 1
    while np.prod([-(-n // f) for n in array.shape], dtype=np.int64) > max_voxels:
        f += 1
    if f > 1:
        return np.asfortranarray(array[::f, ::f, ::f]), f
    if isinstance(array, np.memmap):  # read the file here: VTK would read it at the first frame
        return np.array(array, order="F"), 1
    return np.asfortranarray(array), 1


def volume_for(array: np.ndarray, kind: str, max_voxels: int | None = None) -> tuple[Any, int]:
    """(vtkVolume ready to style, proxy factor f): the proxy (``max_voxels`` as in
    :func:`volume_proxy`), its VTK image and the mapper's slow first-frame set-up, all made in
    a worker (:mod:`viewer.render.volume_mapping`)."""
    proxy, f = volume_proxy(array, max_voxels)
    return prepare_volume(volume_image(proxy), kind), f


FULL_MEMORY_FRACTION = 0.4  # of the memory still available, for the full-resolution volume


def full_resolution_fits(array: np.ndarray, kind: str, available: int | None = None) -> bool:
    """Whether the full-resolution volume may replace the proxy: its in-memory copy (the types
    :func:`volume_image` makes) and, for the CPU caster, its gradient normals and magnitudes
    (3 bytes a voxel) fit in 40 % of the available memory."""
    voxels = int(np.prod(array.shape[:3], dtype=np.int64))
    need = voxels * (vtk_dtype(array.dtype).itemsize + (3 if kind == "cpu" else 0))
    free = available_memory() if available is None else available
    return need <= FULL_MEMORY_FRACTION * free
