"""The data sets for training, tests and benchmarks, under the one name benchmarks import them by.

Each lives in a module of its own; this one only gathers them:

* :mod:`.phantom` - the CT phantom (:func:`phantom_case`, one anatomy per seed), its labels;
* :mod:`.brain` - the MNI152 template from nilearn's files (:func:`mni152_case`, :func:`mni152_deep_case`);
* :mod:`.frog` - pyvista's frog tissues with MR-like intensities (:func:`frog_case`);
* :mod:`.hemispheres` - :func:`split_left_right`;
* :mod:`.rendering` - the globe capture of the neural-rendering demo (:func:`rendering_capture`).
"""

from __future__ import annotations

from .brain import MNI152_DEEP_LABELS, MNI152_LABELS, mni152_case, mni152_deep_case
from .frog import FROG_LABELS, frog_case, frog_tissues_path
from .hemispheres import split_left_right
from .phantom import PHANTOM_LABELS, PHANTOM_SMALL_LABELS, phantom_case, phantom_cases
from .rendering import cache_dir, globe_mesh_path, rendering_capture

__all__ = ["phantom_case", "phantom_cases", "mni152_case", "mni152_deep_case", "frog_case", "split_left_right",
           "frog_tissues_path", "rendering_capture", "globe_mesh_path", "cache_dir",
           "PHANTOM_LABELS", "PHANTOM_SMALL_LABELS", "MNI152_LABELS", "MNI152_DEEP_LABELS", "FROG_LABELS"]
