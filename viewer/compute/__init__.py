"""Offscreen computation with VTK that plugins may use (no Qt, no interactive views): the UV/triangle
rasterizer (``raster``) and the photo-set capture (``capture``)."""
