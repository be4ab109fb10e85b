"""Lucid3D's built-in method plugins, one package each, registered in pyproject.toml's
``lucid3d.plugins`` entry points exactly as a third-party package registers its own.

Each package is light to import (a ``Config`` and the plugin object, behind the contract in
``viewer.plugins``): its network, training and checkpoint code, and torch and MONAI with them,
load on the first call that needs them. ``_seg`` and ``_nr`` hold what the segmenters and the
neural renderers share.
"""
