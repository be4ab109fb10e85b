"""The MNI152 2009a symmetric T1 template, read from the copies nilearn ships inside its package (no
download, no nilearn import): :func:`mni152_case` (grey/white-matter labels) and
:func:`mni152_deep_case` (caudate, putamen, thalamus on a warped, noisy copy: a new subject).

World frame: RAS millimetres as in NIfTI.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..plugins import Case
from .mr import mr_case, mr_scanner, smooth_field

__all__ = ["mni152_case", "mni152_deep_case", "MNI152_LABELS", "MNI152_DEEP_LABELS"]

#: label value -> name of :func:`mni152_case`'s labels
MNI152_LABELS = {1: "grey matter", 2: "white matter"}
_MNI152_COLORS = {1: (0.72, 0.55, 0.55), 2: (0.95, 0.93, 0.85)}


def _nilearn_data_dir() -> Path:
    """The folder of templates inside the installed nilearn (found without importing nilearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MNI152 template needs the nilearn package, which is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _read_template(kind: str):
    import nibabel as nib

    path = _nilearn_data_dir() / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MNI152 {kind} template missing from the nilearn install")
    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


@lru_cache(maxsize=4)
def _mni152_arrays(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t1 float32, labels uint8, affine) on the ``resolution`` mm grid; read-only, cached."""
    t1, affine = _read_template("t1")
    probs = []
    for kind in ("gm", "wm"):
        p, aff = _read_template(kind)
        if p.shape != t1.shape or not np.allclose(aff, affine, atol=1e-4):
            raise ValueError(f"MNI152 {kind} map and T1 lie on different grids")  # never seen
        probs.append(p / 255.0)  # stored as uint8 0..255 = probability 0..1
    arrays = [t1, *probs]
    r = int(resolution)
    if r > 1:
        # anti-alias, then keep every r-th voxel: the voxel (0, 0, 0) and hence the origin stay,
        # and the 1 mm grid's symmetric x range (-98..98) stays symmetric for even r
        sigma = (r - 1) / 2.0
        arrays = [ndimage.gaussian_filter(a, sigma, mode="nearest")[::r, ::r, ::r] for a in arrays]
        affine = affine.copy()
        affine[:3, :3] = affine[:3, :3] * r
    t1, gm, wm = arrays
    # each voxel gets its most probable class of (background, GM, WM), background = 1 - GM - WM;
    # since the three sum to 1 this is "GM or WM wherever tissue is more likely than not one of
    # the others" and keeps partial-volume voxels at the brain's edge as background
    bg = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = np.argmax(np.stack([bg, gm, wm]), axis=0).astype(np.uint8)  # ties -> lower class
    t1 = np.ascontiguousarray(t1)
    for a in (t1, labels):
        a.flags.writeable = False  # shared between calls: nobody may edit the cached copy
    return t1, labels, affine


def mni152_case(resolution: int = 2) -> Case:
    """The MNI152 2009a symmetric T1 template with grey- and white-matter labels.

    Read from the NIfTI files nilearn ships inside its package (no download, no nilearn import).

    Parameters
    ----------
    resolution : voxel size in mm (integer >= 1). 1 is the template's own 197 x 233 x 189
        grid; r > 1 smooths with a Gaussian of sd (r - 1) / 2 voxels (anti-aliasing) and keeps
        every r-th voxel, so the grid keeps its origin at RAS (-98, -134, -72) mm; 2 gives
        99 x 117 x 95 voxels with x from -98 to +98 mm.

    Returns
    -------
    Case
        ``image``: (I, J, K) float32 T1 intensity (0..255, the template's scale), modality "MR",
        RAS axcodes. ``labels``: (I, J, K) uint8, 1 'grey matter', 2 'white matter': the most
        probable class of (background, GM, WM) per voxel, background probability being
        1 - P(GM) - P(WM). About 1090 mL of GM and 635 mL of WM (this template is larger than
        an average brain, and its GM map includes cerebellum and deep grey nuclei).

    The arrays are cached per process and read-only; each call returns new Case objects.
    """
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(f"resolution must be a whole number of mm >= 1, got {resolution}")
    t1, labels, affine = _mni152_arrays(int(resolution))
    name = f"MNI152 {int(resolution)}mm"
    meta = {"format": "MNI152 2009a sym (nilearn)", "resolution_mm": int(resolution)}
    return mr_case(t1, labels, affine, name=name, image_name=f"{name} T1", labels_name=f"{name} tissue", meta=meta,
                   names=MNI152_LABELS, colours=_MNI152_COLORS)


#: deep grey nuclei of the MNI152 template: small structures on a real T1
MNI152_DEEP_LABELS = {1: "caudate", 2: "putamen", 3: "thalamus"}
_DEEP_COLORS = {1: (0.47, 0.71, 0.86), 2: (0.93, 0.42, 0.56), 3: (0.20, 0.63, 0.41)}
# per nucleus: x, y, z ranges (RAS mm, left hemisphere; mirrored for the right) of a box that
# holds it and no cortex, and a point inside it. The nucleus is the connected region of the
# template's grey-matter class inside its box that holds the point.
_DEEP_BOXES = {1: ((-21, -5), (-12, 28), (-6, 26), (-13, 12, 10)),
               2: ((-30, -16), (-22, 22), (-10, 16), (-25, 2, 0)),
               3: ((-22, -2), (-35, -4), (-6, 20), (-11, -18, 8))}


@lru_cache(maxsize=2)
def _mni152_deep_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t1, affine = _read_template("t1")
    gm, wm = (_read_template(k)[0] / 255.0 for k in ("gm", "wm"))
    grey = (gm > wm) & (gm > 1.0 - gm - wm)
    labels = np.zeros(t1.shape, np.uint8)
    origin, step = affine[:3, 3], np.diag(affine)[:3]  # axis-aligned 1 mm RAS grid

    def index(a: int, mm: float) -> int:
        return int(round((mm - origin[a]) / step[a]))

    for value, (bx, by, bz, point) in _DEEP_BOXES.items():
        for side in (-1, 1):
            xs = bx if side < 0 else (-bx[1], -bx[0])
            box = tuple(slice(index(a, lo), index(a, hi) + 1) for a, (lo, hi) in enumerate((xs, by, bz)))
            comp, n = ndimage.label(grey[box])
            at = [index(a, v) - b.start for a, (v, b) in enumerate(zip((-side * point[0], point[1], point[2]), box))]
            keep = comp[tuple(at)]
            if keep == 0:  # the point fell on a gap: the largest region
                keep = int(np.argmax(ndimage.sum(comp > 0, comp, range(1, n + 1)))) + 1
            labels[box][comp == keep] = value
    # crop to the brain with a 4 mm margin, then make it another "subject": a smooth warp of up
    # to 3 mm (so the right hemisphere is no longer the left one's mirror image), bias, noise
    ii, jj, kk = np.nonzero(gm + wm > 0.1)
    crop = tuple(slice(max(0, int(v.min()) - 4), int(v.max()) + 5) for v in (ii, jj, kk))
    t1, labels = t1[crop], labels[crop]
    affine = affine.copy()
    affine[:3, 3] += np.diag(affine)[:3] * [c.start for c in crop]
    rng = np.random.default_rng([int(seed), 0xDEE9])
    grid = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in t1.shape), indexing="ij")
    coords = [g + 3.0 * smooth_field(rng, t1.shape, 30) for g in grid]
    t1 = ndimage.map_coordinates(t1, coords, order=1, mode="nearest")
    labels = ndimage.map_coordinates(labels, coords, order=0, mode="nearest")
    t1 = mr_scanner(rng, t1, noise_sd=5.0)
    for a in (t1, labels):
        a.flags.writeable = False
    return t1, labels, affine


def mni152_deep_case(seed: int = 0) -> Case:
    """Caudate, putamen and thalamus (both sides) on the 1 mm MNI152 2009a T1, as a new subject.

    The nuclei are the template's own grey-matter class (as in :func:`mni152_case`) inside boxes
    placed from the atlas coordinates of each nucleus, one connected region per box: 5-10 mL
    each on this template. The head is cropped to the brain (4 mm margin), then warped by a
    smooth random displacement of up to 3 mm (image and labels alike), given a smooth bias
    field (±12 %) and Rician noise of sd 5 (white matter is ~220): the template is symmetric,
    and without the warp its right half would be the left half's exact mirror image.

    Returns a Case with ``image`` (float32, modality "MR", RAS, 1 mm) and ``labels`` (uint8,
    :data:`MNI152_DEEP_LABELS`). Cached per seed, arrays read-only; ~10 s the first time.
    """
    t1, labels, affine = _mni152_deep_arrays(int(seed))
    name = f"MNI152 deep grey {int(seed)}"
    meta = {"format": "MNI152 2009a sym (nilearn), deep grey nuclei", "seed": int(seed)}
    return mr_case(t1, labels, affine, name=name, image_name=f"{name} T1", labels_name=f"{name} nuclei", meta=meta,
                   names=MNI152_DEEP_LABELS, colours=_DEEP_COLORS)
