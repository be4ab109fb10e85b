"""Machinery every 3D segmenter shares (no PLUGIN here): canonical orientation, intensity
normalisation, resampling, patch training, sliding-window prediction, checkpoints.

A segmenter plugin supplies its network builder and ``Config``; see ``plugins/unet3d``.
"""
