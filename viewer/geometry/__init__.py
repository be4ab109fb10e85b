"""Numpy geometry on model meshes: primitives, normals and UV atlases (xatlas). No VTK, no Qt."""
