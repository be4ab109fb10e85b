"""Lucid3D: a desktop viewer for scans, meshes and point clouds, with neural models behind it.

Rooms (see docs/ARCHITECTURE.md): ``model`` (plain data + events) <- ``io`` / ``render`` / ``jobs``
<- ``ui``. Only ``render`` builds VTK objects, only ``ui`` builds widgets.
"""

__version__ = "0.1.0"
