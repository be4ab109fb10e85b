"""The plugin contract: what a method is, how it is found, and what it is built and checked from.

``contract`` (the Protocols every caller uses, :class:`TrainedModel`, :class:`Case`, base
classes with defaults), ``registry`` (entry points in ``lucid3d.plugins``, light discovery,
unavailable plugins with their reason), ``config`` (Config and checkpoint validation),
``checkpoint`` (hash-checked safetensors + config.json, written atomically) and ``training``
(the budget, cancel, best-checkpoint and DDP scaffolding trainers share). This package names no
method; ``docs/PLUGINS.md`` shows how to write one.
"""

from .config import (MAX_CONFIG_BYTES, SEED_MAX, Range, check_json_object, check_weights_fit, config_from_dict,
                     config_help, nested, numbers, of_type, read_checkpoint_json, validate_config)
from .contract import (GEOMETRIES, KINDS, Case, GeometryError, Orbit, RendererBase, RendererPlugin, SegmenterBase, SegmenterPlugin, TrainedModel,
                       checkpoint_plugin_name, load_case)
from .contract import Box, ClassifierBase, ClassifierPlugin, DetectorBase, DetectorPlugin, ImageCase
from .registry import (ENTRY_POINT_GROUP, PluginError, PluginInfo, discover, get_plugin, plugin_for_checkpoint,
                       plugin_infos, preferred)

__all__ = ["Case", "load_case", "TrainedModel", "SegmenterPlugin", "RendererPlugin", "SegmenterBase", "RendererBase",
           "Orbit", "KINDS", "GEOMETRIES", "GeometryError", "checkpoint_plugin_name", "ENTRY_POINT_GROUP", "PluginError", "PluginInfo", "discover",
           "get_plugin", "plugin_for_checkpoint", "plugin_infos", "preferred", "Range", "SEED_MAX", "MAX_CONFIG_BYTES",
           "validate_config", "config_from_dict", "config_help", "numbers", "of_type", "check_json_object", "nested",
           "read_checkpoint_json", "check_weights_fit", "ImageCase", "Box", "ClassifierPlugin", "DetectorPlugin",
           "ClassifierBase", "DetectorBase"]
