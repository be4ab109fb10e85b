"""Plain data and events: no Qt, no VTK, no torch here (tests/test_layering.py checks)."""

from .camera import Camera
from .errors import LoadError
from .geometry import Mesh, PointCloud
from .labels import Label, LabelMap, LabelTable, default_color
from .layer import COLORMAPS, RENDER_MODES, ImageLayer, LabelLayer, Layer, MeshLayer, PointsLayer, ViewSetLayer, layer_for
from .scene import Scene
from .boxes import Boxes, BoxesLayer, score_color
from .viewset import Frame, ViewSet
from .volume import Volume, axcodes, voxel_volume_ml

__all__ = [
    "Camera", "Frame", "ViewSet", "LoadError", "Mesh", "PointCloud", "Label", "LabelMap", "LabelTable", "default_color",
    "COLORMAPS", "RENDER_MODES", "ImageLayer", "LabelLayer", "Layer", "MeshLayer", "PointsLayer", "ViewSetLayer",
    "layer_for", "Scene", "Boxes", "BoxesLayer", "score_color", "Volume", "axcodes", "voxel_volume_ml",
]
