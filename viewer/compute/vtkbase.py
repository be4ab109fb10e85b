"""VTK imported once, set up for machines without a display (EGL), and kept quiet."""

from __future__ import annotations

import os

if not os.environ.get("DISPLAY"):
    # no X server: offscreen windows go through EGL (Mesa llvmpipe on CPU machines)
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import vtk  # noqa: E402

__all__ = ["quiet_vtk", "vtk"]


def quiet_vtk() -> None:
    """Send VTK's warnings to nowhere: a user never sees them, the CLI's stderr stays one line."""
    out = vtk.vtkStringOutputWindow()
    vtk.vtkOutputWindow.SetInstance(out)
