"""Machinery the point-based renderers share (``plugins/npbg``, ``plugins/npbgpp``): projecting a
point cloud through a camera and z-buffering it at several scales in pure torch (:mod:`.splat`),
the training data and network of a point renderer (:mod:`.data`, :mod:`.network`) and its
geometry for the shared fitting loop and checkpoints of :mod:`plugins._nr`. Only this package
file is light; the modules import torch."""
