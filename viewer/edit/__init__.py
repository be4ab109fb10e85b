"""Label editing: brush strokes and morphological tools on a ``LabelMap``, with an undo history
that stores only what each edit changed. numpy + scipy on the model's types; no Qt, no VTK."""

from .history import Change, EditHistory
from .measure_tools import RegionTool, RulerTool
from .session import BrushSettings, EditSession
from .tools import (brush_mask, fill_holes, interpolate_slices, keep_largest_component, remove_islands,
                    voxel_axis_for_normal)

__all__ = ["RulerTool", "RegionTool", "Change", "EditHistory", "EditSession", "BrushSettings", "brush_mask", "fill_holes", "keep_largest_component", "remove_islands",
           "interpolate_slices", "voxel_axis_for_normal"]
