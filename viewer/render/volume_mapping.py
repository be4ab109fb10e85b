"""Which volume mapper the 3D view uses, and the slow part of its first frame done in a worker.

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
"""

from __future__ import annotations

import os
from typing import Any

from ..compute.nogil import per_volume_initialization
from .vtkutil import vtk

__all__ = ["SOFTWARE_GL_NAMES", "is_software_renderer", "watch_renderer", "prepare_volume", "mapper_kind"]

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


def mapper_kind(software: bool | None) -> str:
    """"cpu" or "gpu": the environment's choice, else the CPU caster on a software renderer."""
    forced = os.environ.get("LUCID3D_VOLUME_MAPPER", "").strip().lower()
    if forced in ("cpu", "gpu"):
        return forced
    return "cpu" if software else "gpu"


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

