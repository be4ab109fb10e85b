"""A frog with real anatomy and synthetic MR-like intensities: :func:`frog_case`, from the tissue labels
of pyvista's ``examples/frog_tissues.vti`` (shipped with pyvista, no download).

World frame: RAS millimetres; the frog's midline is world x = 0.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..plugins import Case
from .mr import mr_case, mr_scanner, smooth_field

__all__ = ["frog_case", "frog_tissues_path", "FROG_LABELS"]

#: label value -> name of :func:`frog_case`'s labels
FROG_LABELS = {1: "brain", 2: "eyes", 3: "heart", 4: "kidneys"}
_FROG_COLORS = {1: (0.85, 0.55, 0.60), 2: (0.30, 0.55, 0.85), 3: (0.80, 0.20, 0.20), 4: (0.75, 0.60, 0.20)}
# the file's tissues: 1 blood, 2 brain, 3 duodenum, 4 eye retina, 5 eye white, 6 heart, 7 ileum,
# 8 kidney, 9 large intestine, 10 liver, 11 lung, 12 nerve, 13 skeleton, 14 spleen, 15 stomach;
# T1-like levels close enough that shape and context, not one level, tell the targets apart
_FROG_LEVELS = {1: 70, 2: 118, 3: 92, 4: 135, 5: 78, 6: 86, 7: 92, 8: 112, 9: 96, 10: 82, 11: 30, 12: 122,
                13: 45, 14: 104, 15: 90}
_FROG_TARGETS = {2: 1, 4: 2, 5: 2, 6: 3, 8: 4}


def frog_tissues_path() -> Path:
    """pyvista's frog tissue labels (a file inside the installed package)."""
    spec = importlib.util.find_spec("pyvista")
    return Path(spec.origin).parent / "examples" / "frog_tissues.vti"


@lru_cache(maxsize=2)
def _frog_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyvista as pv

    data = pv.read(str(frog_tissues_path()))
    tissue = np.asarray(data.point_data["MetaImage"]).reshape(tuple(data.dimensions)[::-1]).transpose(2, 1, 0)
    # (head-to-tail x, left-right y, dorsal-ventral z): keep the trunk and head, every 2nd x
    tissue = np.ascontiguousarray(tissue[100:450:2, 140:330, :])
    rng = np.random.default_rng([int(seed), 0xF706])
    lut = np.full(256, 100.0, np.float32)  # unlabelled tissue inside the body: muscle-like
    for v, level in _FROG_LEVELS.items():
        lut[v] = level
    body = ndimage.binary_fill_holes(ndimage.binary_closing(tissue > 0, iterations=4))
    body = ndimage.binary_dilation(body, iterations=2)
    img = np.where(body, lut[tissue], np.float32(8.0)).astype(np.float32)
    img *= 1.0 + 0.06 * smooth_field(rng, img.shape, 6)  # texture inside each tissue
    img = ndimage.gaussian_filter(img, 0.7)  # partial volume
    img = mr_scanner(rng, img, noise_sd=5.0)
    labels = np.zeros(tissue.shape, np.uint8)
    for v, target in _FROG_TARGETS.items():
        labels[tissue == v] = target
    # voxel 1.0 x 0.5 x 0.75 mm: voxel axis i runs to the head (S), j to the frog's left (-x), k
    # from its back to its belly (A); world x = 0 is the midline between the eyes (file y 232)
    affine = np.array([[0.0, -0.5, 0.0, 0.5 * (232 - 140)], [0.0, 0.0, 0.75, 0.0], [1.0, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 1.0]])
    for a in (img, labels):
        a.flags.writeable = False
    return img, labels, affine


def frog_case(seed: int = 0) -> Case:
    """A frog's brain, eyes, heart and kidneys (3-10 mL at the scale given) on an MR-like image.

    The anatomy is real: the tissue labels of pyvista's ``examples/frog_tissues.vti`` (shipped
    with pyvista, no download), trunk and head, every second voxel along the body. Intensities
    are synthetic: a T1-like level per tissue (the 15 tissues of the file, unlabelled tissue
    inside the body muscle-like, air outside), a 6 % texture, partial-volume blur, a smooth bias
    field (±12 %) and Rician noise (sd 5 on levels 30-135). The frog's midline is world x = 0,
    so :func:`split_left_right` gives its two sides (each holds half a brain and heart, one
    eye, one kidney).

    Returns a Case, ``image`` float32 "MR", ``labels`` uint8 :data:`FROG_LABELS`; cached per
    seed, arrays read-only.
    """
    img, labels, affine = _frog_arrays(int(seed))
    name = f"frog {int(seed)}"
    meta = {"format": "pyvista frog_tissues.vti, synthetic intensities", "seed": int(seed)}
    return mr_case(img, labels, affine, name=name, image_name=f"{name} MR", labels_name=f"{name} organs", meta=meta,
                   names=FROG_LABELS, colours=_FROG_COLORS)
