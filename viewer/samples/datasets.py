"""Deterministic training and test data built on this machine: no downloads, ever.

* :func:`phantom_case` - a CT-like abdomen in Hounsfield units with four organ labels, different
  in body shape, organ shape, position and intensity for every seed;
* :func:`mni152_case` - the MNI152 2009a T1 template with grey/white-matter labels, read from
  the copies nilearn ships inside its package;
* :func:`split_left_right` - a case cut into its two hemispheres on the world x = 0 plane.

World frame: RAS millimetres as in NIfTI (+x = patient's Right, +y = Anterior, +z = Superior).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..model.labels import Label, LabelMap, LabelTable
from ..model.volume import Volume
from ..plugins import Case

__all__ = ["phantom_case", "phantom_cases", "mni152_case", "mni152_deep_case", "frog_case", "split_left_right",
           "PHANTOM_LABELS", "PHANTOM_SMALL_LABELS", "MNI152_LABELS", "MNI152_DEEP_LABELS", "FROG_LABELS"]

#: label value -> name of :func:`phantom_case`'s labels
PHANTOM_LABELS = {1: "liver", 2: "spleen", 3: "kidneys", 4: "bone"}
_PHANTOM_COLORS = {1: (0.65, 0.27, 0.22), 2: (0.55, 0.32, 0.70), 3: (0.95, 0.82, 0.25),
                   4: (0.96, 0.93, 0.82)}  # brownish red, purple, yellow, ivory
#: label value -> name of :func:`phantom_case`'s labels with ``small_organs=True``
PHANTOM_SMALL_LABELS = {1: "gallbladder", 2: "adrenal glands", 3: "pancreas"}
_SMALL_COLORS = {1: (0.35, 0.65, 0.30), 2: (0.95, 0.60, 0.20), 3: (0.90, 0.75, 0.55)}
#: label value -> name of :func:`mni152_case`'s labels
MNI152_LABELS = {1: "grey matter", 2: "white matter"}
_MNI152_COLORS = {1: (0.72, 0.55, 0.55), 2: (0.95, 0.93, 0.85)}


# ---------------------------------------------------------------------------------------------
# CT phantom
# ---------------------------------------------------------------------------------------------
class _Grid:
    """Separable world coordinates (RAS mm, float32) of an axis-aligned voxel grid."""

    def __init__(self, affine: np.ndarray, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        # voxel axes are aligned with world axes (diagonal affine), so x depends on i only, ...
        self.axes = [(affine[a, 3] + affine[a, a] * np.arange(shape[a])).astype(np.float32)
                     for a in range(3)]

    def coords(self, box: tuple[slice, slice, slice] = (slice(None),) * 3):
        """x (I', 1, 1), y (1, J', 1), z (1, 1, K') of the voxel centres inside ``box``."""
        x, y, z = (c[s] for c, s in zip(self.axes, box))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def box(self, center, radius: float) -> tuple[slice, slice, slice] | None:
        """Index slices of the voxels within ``radius`` mm (per axis) of ``center``; None if empty."""
        out = []
        for c, v in zip(self.axes, center):
            idx = np.flatnonzero(np.abs(c - v) <= radius)
            if idx.size == 0:
                return None
            out.append(slice(int(idx[0]), int(idx[-1]) + 1))
        return tuple(out)  # type: ignore[return-value]


def _rotation(rng: np.random.Generator, max_deg: tuple[float, float, float]) -> np.ndarray:
    """(3, 3) rotation by random angles about x, y and z, each within +-max_deg."""
    ax, ay, az = np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(max_deg))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _blob(grid: _Grid, rng: np.random.Generator, center, radii, max_deg=(10.0, 10.0, 25.0),
          wobble: float = 0.15) -> np.ndarray:
    """A deformed, rotated ellipsoid as a boolean (I, J, K) mask.

    Parameters
    ----------
    center : (3,) RAS mm.  radii : (3,) semi-axes in mm, before rotation.
    wobble : amplitude of the surface deformation, in units of the normalised radius: three
        random plane waves of 25-70 mm wavelength, so the shape is smooth but never an ellipsoid.
    """
    mask = np.zeros(grid.shape, bool)
    rot = _rotation(rng, max_deg).astype(np.float32)
    waves = rng.standard_normal((3, 3)).astype(np.float32)
    waves *= (2 * np.pi / rng.uniform(25.0, 70.0, (3, 1)) / np.linalg.norm(waves, axis=1, keepdims=True)
              ).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, 3)
    box = grid.box(center, float(max(radii)) * (1.0 + wobble) + 2.0)
    if box is None:
        return mask
    x, y, z = grid.coords(box)
    d = (x - np.float32(center[0]), y - np.float32(center[1]), z - np.float32(center[2]))
    f = np.zeros(mask[box].shape, np.float32)
    for row, r in zip(rot.T, radii):  # rotated local coordinates u, v, w
        f += ((row[0] * d[0] + row[1] * d[1] + row[2] * d[2]) / np.float32(r)) ** 2
    for k, ph in zip(waves, phases):
        f += np.float32(wobble / 3.0) * np.sin(k[0] * d[0] + k[1] * d[1] + k[2] * d[2] + np.float32(ph))
    mask[box] = f <= 1.0
    return mask


def phantom_case(seed: int, shape: tuple[int, int, int] = (96, 96, 64),
                 spacing: tuple[float, float, float] = (2.0, 2.0, 2.5), small_organs: bool = False) -> Case:
    """A CT-like abdomen in Hounsfield units and its organ labels; one anatomy per seed.

    Parameters
    ----------
    seed : seeds every random choice; equal seeds give equal arrays.
    shape : (I, J, K) voxels; axis i points to the patient's Left, j Posterior, k Superior.
    spacing : voxel size along i, j, k in mm. Anatomy is laid out in mm, so another
        spacing samples the same body more finely or coarsely.

    Returns
    -------
    Case
        ``image``: (I, J, K) int16 HU, modality "CT", ``affine = diag(-sx, -sy, sz)`` (LPS
        axcodes, as a DICOM-ordered array) with the grid centred at world (0, 0, 0). Air -1000;
        an elliptical body of random size and shape: subcutaneous fat (-100), a muscle ring
        (50), visceral fat/bowel texture, lung bases (-850); liver (60, the patient's right),
        spleen (45, left), two posterior kidneys in perirenal fat (30), spine and rib arcs
        (cancellous 300-500, cortical 900-1200). Each tissue's level moves by up to +-10 HU
        per seed so that shape and context, not one HU value, identify an organ. Slight blur
        (partial volume) and Gaussian noise of sd 15 HU.
        ``labels``: (I, J, K) uint8 on the same grid, :data:`PHANTOM_LABELS`; organs never
        overlap and are kept at least one voxel apart.
        With ``small_organs`` the image also holds a gallbladder (bile, 10 HU, tucked under the
        liver), two adrenal glands (35 HU, in the fat above each kidney) and a pancreas-like
        body (40 HU, in front of the left kidney), 1-6 mL each, and ``labels`` are those three
        (:data:`PHANTOM_SMALL_LABELS`) instead: the big organs stay in the image, unlabelled.
        Everything else is the same phantom as without them (their shapes have their own
        random stream).

    Generation takes ~0.2 s for the default 96 x 96 x 64 grid.
    """
    rng = np.random.default_rng([int(seed), 0x1C3D])  # the tag keeps these streams apart from others'
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    sx, sy, sz = (float(s) for s in spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape, float) - 1) / 2.0)
    grid = _Grid(affine, shape)
    x, y, z = grid.coords()
    fov = np.asarray(shape, float) * np.array([sx, sy, sz])

    def jitter() -> float:  # this seed's offset of one tissue's HU level
        return float(rng.uniform(-10.0, 10.0))

    # body: an ellipse in x-y with a lobed outline, slightly tapering along z
    ax, ay = rng.uniform(0.36, 0.46) * fov[0], rng.uniform(0.26, 0.33) * fov[1]
    bx, by = rng.uniform(-6, 6), rng.uniform(-6, 6)
    taper = 1.0 + rng.uniform(-0.08, 0.08) * z / (fov[2] / 2)
    theta = np.arctan2(y - by, x - bx)
    ring = (((x - bx) / ax) ** 2 + ((y - by) / ay) ** 2) / taper ** 2 \
        + 0.04 * np.sin(2 * theta + rng.uniform(0, 2 * np.pi)) + 0.03 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi))
    f_fat = rng.uniform(0.80, 0.92)  # subcutaneous fat ~4-15 mm thick
    f_cav = f_fat - rng.uniform(0.06, 0.10)  # muscle ring ~3-9 mm thick
    body, inner, cavity = ring <= 1.0, ring <= f_fat ** 2, ring <= f_cav ** 2  # (I, J, K)
    cax, cay = ax * f_cav, ay * f_cav  # semi-axes of the abdominal cavity, mm
    hu = np.full(shape, -1000.0, np.float32)
    hu[body] = -100.0 + jitter()
    hu[inner] = 50.0 + jitter()
    # visceral fat mixed with bowel: a smooth random field between fat and soft tissue
    coarse = rng.standard_normal(tuple(max(2, s // 8) for s in shape)).astype(np.float32)
    field = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=1, grid_mode=True,
                         mode="nearest")[: shape[0], : shape[1], : shape[2]]
    hu[cavity] = (-30.0 + jitter() + 45.0 * np.clip(field, -1.6, 1.6))[cavity]
    labels = np.zeros(shape, np.uint8)

    # lung bases at the top of the field of view (unlabelled)
    z_lung = rng.uniform(0.45, 0.62) * fov[2]
    for side in (-1, 1):
        lung = _blob(grid, rng, (side * 0.5 * cax, -0.1 * cay, z_lung), (0.45 * cax, 0.75 * cay, 45.0),
                     max_deg=(5, 5, 10), wobble=0.1)
        hu[lung & cavity] = -850.0 + 3 * jitter()

    # bone: vertebral bodies with discs, a spinous process, rib arcs inside the muscle ring
    sp_x, sp_y, sp_r = rng.uniform(-3, 3), -rng.uniform(0.55, 0.65) * cay, rng.uniform(11.0, 15.0)
    r_sp = np.sqrt((x - sp_x) ** 2 + (y - sp_y) ** 2)  # (I, J, 1)
    period, phase = rng.uniform(22.0, 28.0), rng.uniform(0, 28.0)
    disc = ((z + 1000.0 + phase) % period) < 4.0  # (1, 1, K)
    vert = (r_sp <= sp_r) & ~disc
    spinous = ((x - sp_x) / 4.0) ** 2 + ((y - sp_y + sp_r + 9.0) / 10.0) ** 2 <= 1.0
    spinous = spinous & ~disc
    rib_period = rng.uniform(18.0, 24.0)
    # ribs slope down towards the front, so an axial slice cuts each one as a short arc
    rib_z = z + rng.uniform(8.0, 16.0) * np.abs(np.arctan2(x - sp_x, sp_y - y))
    ribs = (ring >= (f_cav * 0.97) ** 2) & (ring <= (f_cav * 1.06) ** 2) \
        & (((rib_z + 1000.0 + rng.uniform(0, 24)) % rib_period) < rng.uniform(5.0, 7.0)) \
        & (z > rng.uniform(-0.3, 0.05) * fov[2]) & (y < 0.5 * ay) & (np.abs(x - sp_x) > 20.0)
    hu[np.broadcast_to((r_sp <= sp_r) & disc, shape)] = 80.0
    cortical = rng.uniform(900.0, 1200.0)
    hu[np.broadcast_to(vert, shape)] = rng.uniform(300.0, 500.0)
    hu[np.broadcast_to(vert & (r_sp > sp_r - 2.5), shape)] = cortical
    hu[np.broadcast_to(spinous, shape)] = cortical
    hu[ribs] = rng.uniform(500.0, 900.0)
    bone = np.broadcast_to(vert | spinous, shape) | ribs
    labels[bone] = 4

    # organs, each placed relative to the cavity; earlier ones keep their voxels and a gap
    def place(value: int, mask: np.ndarray, level: float) -> None:
        taken = ndimage.binary_dilation(labels > 0, iterations=1)
        mask &= cavity & ~taken
        hu[mask] = level
        labels[mask] = value

    kz = rng.uniform(-0.35, -0.05) * fov[2] / 2
    for side in (-1, 1):  # left kidney (x < 0) usually sits a little higher
        c = (side * rng.uniform(0.42, 0.52) * cax, -rng.uniform(0.45, 0.6) * cay,
             kz + (rng.uniform(0, 15) if side < 0 else 0.0))
        r = (rng.uniform(10, 14), rng.uniform(14, 19), rng.uniform(24, 34))
        fat = _blob(grid, rng, c, [v + 6 for v in r], wobble=0.05)
        hu[fat & cavity & (labels == 0)] = -90.0 + jitter()  # perirenal fat outlines the kidney
        place(3, _blob(grid, rng, c, r, max_deg=(10, 10, 35), wobble=0.08), 30.0 + jitter())
    spleen_c = (-rng.uniform(0.5, 0.65) * cax, -rng.uniform(0.1, 0.4) * cay, rng.uniform(0.05, 0.3) * fov[2] / 2)
    place(2, _blob(grid, rng, spleen_c, (rng.uniform(14, 22), rng.uniform(22, 32), rng.uniform(25, 40)),
                   max_deg=(10, 10, 30)), 45.0 + jitter())
    # the liver is the largest: the cavity wall clips it to the right upper quadrant's shape
    liver_c = (rng.uniform(0.35, 0.5) * cax, rng.uniform(-0.1, 0.2) * cay, rng.uniform(0.1, 0.4) * fov[2] / 2)
    place(1, _blob(grid, rng, liver_c, (rng.uniform(0.5, 0.62) * cax, rng.uniform(0.7, 0.9) * cay,
                                        rng.uniform(45, 65)), wobble=0.2), 60.0 + jitter())

    if small_organs:
        labels = _small_organs(grid, np.random.default_rng([int(seed), 0x5A11]), hu, labels, cavity, cax, cay)
    # partial volume at edges, then noise; quantised as a scanner would store it
    hu = ndimage.gaussian_filter(hu, sigma=0.5, truncate=3.0)
    hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(15.0)
    name = f"phantom-{int(seed):04d}" + ("-small" if small_organs else "")
    image = Volume(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), affine, modality="CT",
                   name=name, meta={"format": "phantom", "seed": int(seed)})
    names, colours = (PHANTOM_SMALL_LABELS, _SMALL_COLORS) if small_organs else (PHANTOM_LABELS, _PHANTOM_COLORS)
    table = LabelTable([Label(v, n, colours[v]) for v, n in names.items()])
    lab = LabelMap(labels, affine.copy(), table, name=f"{name} labels", meta={"format": "phantom",
                                                                              "seed": int(seed)})
    return Case(image, lab, name=name)


def _small_organs(grid: _Grid, rng: np.random.Generator, hu: np.ndarray, labels: np.ndarray,
                  cavity: np.ndarray, cax: float, cay: float) -> np.ndarray:
    """Paint the gallbladder, adrenals and pancreas into ``hu``; return their (I, J, K) labels."""
    x, y, z = grid.coords()
    small = np.zeros(labels.shape, np.uint8)

    def put(value: int, mask: np.ndarray, level: float) -> None:
        mask &= cavity & (small == 0) & (labels != 3) & (labels != 4)
        hu[mask] = level + rng.uniform(-5.0, 5.0)
        small[mask] = value

    # gallbladder: in the liver's anterior-inferior part, carved out of it
    liver = np.argwhere(labels == 1)
    if liver.size:
        world = np.stack([grid.axes[a][liver[:, a]] for a in range(3)], axis=1)
        front = world[(world[:, 1] > np.percentile(world[:, 1], 65)) & (world[:, 2] < np.percentile(world[:, 2], 40))]
        c = front.mean(0) if len(front) else world.mean(0)
        put(1, _blob(grid, rng, c, (rng.uniform(7, 9), rng.uniform(7, 9), rng.uniform(12, 16)), wobble=0.06), 10.0)
    # adrenal glands: flat blobs in the fat just above each kidney, a little medial
    for side in (-1, 1):
        kid = np.argwhere((labels == 3) & (x * side > 0))
        if not kid.size:
            continue
        top = kid[:, 2].max()
        cap = kid[kid[:, 2] >= top - 2]
        c = (float(grid.axes[0][cap[:, 0]].mean()) - side * rng.uniform(2, 5),
             float(grid.axes[1][cap[:, 1]].mean()) + rng.uniform(0, 4), float(grid.axes[2][top]) + rng.uniform(9, 12))
        mask = _blob(grid, rng, c, (rng.uniform(5, 6), rng.uniform(9, 12), rng.uniform(10, 13)),
                     max_deg=(15, 15, 40), wobble=0.1)
        put(2, mask & (labels == 0), 35.0)
    # pancreas-like body: elongated, across the front of the left kidney towards the spleen
    c = (-rng.uniform(0.15, 0.3) * cax, -rng.uniform(0.05, 0.2) * cay, rng.uniform(-0.1, 0.1) * 80.0)
    mask = _blob(grid, rng, c, (rng.uniform(24, 30), rng.uniform(6, 8), rng.uniform(6, 8)),
                 max_deg=(5, 5, 25), wobble=0.1)
    put(3, mask & (labels == 0), 40.0)
    return small


def phantom_cases(n: int, first_seed: int = 0, **kw) -> list[Case]:
    """``n`` phantoms with seeds ``first_seed .. first_seed + n - 1`` (``kw`` as :func:`phantom_case`)."""
    return [phantom_case(s, **kw) for s in range(int(first_seed), int(first_seed) + int(n))]


# ---------------------------------------------------------------------------------------------
# MNI152 template
# ---------------------------------------------------------------------------------------------
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
    image = Volume(t1, affine.copy(), modality="MR", name=f"{name} T1", meta=dict(meta))
    table = LabelTable([Label(v, n, _MNI152_COLORS[v]) for v, n in MNI152_LABELS.items()])
    return Case(image, LabelMap(labels, affine.copy(), table, name=f"{name} tissue", meta=dict(meta)),
                name=name)


# deep grey nuclei of the MNI152 template: small structures on a real T1
MNI152_DEEP_LABELS = {1: "caudate", 2: "putamen", 3: "thalamus"}
_DEEP_COLORS = {1: (0.47, 0.71, 0.86), 2: (0.93, 0.42, 0.56), 3: (0.20, 0.63, 0.41)}
# per nucleus: x, y, z ranges (RAS mm, left hemisphere; mirrored for the right) of a box that
# holds it and no cortex, and a point inside it. The nucleus is the connected region of the
# template's grey-matter class inside its box that holds the point.
_DEEP_BOXES = {1: ((-21, -5), (-12, 28), (-6, 26), (-13, 12, 10)),
               2: ((-30, -16), (-22, 22), (-10, 16), (-25, 2, 0)),
               3: ((-22, -2), (-35, -4), (-6, 20), (-11, -18, 8))}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cell: int) -> np.ndarray:
    """A smooth random field in [-1, 1] (cubic upsampling of a grid of one value per ``cell`` voxels)."""
    coarse = rng.uniform(-1.0, 1.0, tuple(max(2, s // cell + 2) for s in shape)).astype(np.float32)
    f = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=3, grid_mode=True, mode="nearest")
    f = f[tuple(slice(0, s) for s in shape)]
    return f / max(float(np.abs(f).max()), 1e-6)


def _scanner(rng: np.random.Generator, image: np.ndarray, noise_sd: float, bias: float = 0.12) -> np.ndarray:
    """What an MR scanner adds: a smooth multiplicative bias field and Rician noise."""
    image = image * np.exp(bias * _smooth_field(rng, image.shape, 40))
    n1 = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
    n2 = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
    return np.sqrt((image + n1) ** 2 + n2 ** 2).astype(np.float32)


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
    coords = [g + 3.0 * _smooth_field(rng, t1.shape, 30) for g in grid]
    t1 = ndimage.map_coordinates(t1, coords, order=1, mode="nearest")
    labels = ndimage.map_coordinates(labels, coords, order=0, mode="nearest")
    t1 = _scanner(rng, t1, noise_sd=5.0)
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
    image = Volume(t1, affine.copy(), modality="MR", name=f"{name} T1", meta=dict(meta))
    table = LabelTable([Label(v, n, _DEEP_COLORS[v]) for v, n in MNI152_DEEP_LABELS.items()])
    return Case(image, LabelMap(labels, affine.copy(), table, name=f"{name} nuclei", meta=dict(meta)), name=name)


# frog: real anatomy (pyvista's frog_tissues.vti labels), synthetic MR-like intensities
FROG_LABELS = {1: "brain", 2: "eyes", 3: "heart", 4: "kidneys"}
_FROG_COLORS = {1: (0.85, 0.55, 0.60), 2: (0.30, 0.55, 0.85), 3: (0.80, 0.20, 0.20), 4: (0.75, 0.60, 0.20)}
# the file's tissues: 1 blood, 2 brain, 3 duodenum, 4 eye retina, 5 eye white, 6 heart, 7 ileum,
# 8 kidney, 9 large intestine, 10 liver, 11 lung, 12 nerve, 13 skeleton, 14 spleen, 15 stomach;
# T1-like levels close enough that shape and context, not one level, tell the targets apart
_FROG_LEVELS = {1: 70, 2: 118, 3: 92, 4: 135, 5: 78, 6: 86, 7: 92, 8: 112, 9: 96, 10: 82, 11: 30, 12: 122,
                13: 45, 14: 104, 15: 90}
_FROG_TARGETS = {2: 1, 4: 2, 5: 2, 6: 3, 8: 4}


def frog_tissues_path() -> Path:
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
    img *= 1.0 + 0.06 * _smooth_field(rng, img.shape, 6)  # texture inside each tissue
    img = ndimage.gaussian_filter(img, 0.7)  # partial volume
    img = _scanner(rng, img, noise_sd=5.0)
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
    image = Volume(img, affine.copy(), modality="MR", name=f"{name} MR", meta=dict(meta))
    table = LabelTable([Label(v, n, _FROG_COLORS[v]) for v, n in FROG_LABELS.items()])
    return Case(image, LabelMap(labels, affine.copy(), table, name=f"{name} organs", meta=dict(meta)), name=name)


# ---------------------------------------------------------------------------------------------
# hemispheres
# ---------------------------------------------------------------------------------------------
def split_left_right(case: Case) -> tuple[Case, Case]:
    """Cut a case on the world plane x = 0 into its left (x < 0) and right (x >= 0) parts.

    The voxel axis most aligned with world x is cropped; each half keeps the voxel spacing and
    orientation, and its affine's origin moves so that every voxel keeps its world position
    (``half.affine @ (i', j, k, 1) == case.affine @ (i' + offset, j, k, 1)``). A voxel's side
    is the x of its slice's centre line (the centre of the other two axes): exact for grids
    aligned with world x (any RAS/LPS grid), the nearest voxel slice for oblique ones. Voxels
    exactly on x = 0 go to the right half, so the halves partition the grid.

    Returns
    -------
    (left, right) : Cases named ``"<name> left"`` / ``"<name> right"``, arrays are views.

    Raises
    ------
    ValueError : the grid does not reach both sides of x = 0.
    """
    aff = case.image.affine
    cos = np.abs(aff[0, :3]) / np.linalg.norm(aff[:3, :3], axis=0)
    axis = int(np.argmax(cos))
    n = case.image.shape[axis]
    centre = (np.asarray(case.image.shape, float) - 1) / 2.0
    ijk = np.repeat(centre[None], n, axis=0)
    ijk[:, axis] = np.arange(n)
    left_of = case.image.index_to_world(ijk)[:, 0] < 0  # (n,) monotonic along the axis
    idx = np.flatnonzero(left_of)
    if idx.size == 0 or idx.size == n:
        raise ValueError("the grid lies on one side of x = 0: nothing to split")
    # the left slices are one contiguous run at the start (RAS grids) or at the end (LPS grids)
    left_sl = slice(int(idx[0]), int(idx[-1]) + 1)
    right_sl = slice(0, left_sl.start) if left_sl.start > 0 else slice(left_sl.stop, n)

    def crop(sl: slice, side: str) -> Case:
        index = tuple(sl if a == axis else slice(None) for a in range(3))
        affine = aff.copy()
        affine[:3, 3] += aff[:3, axis] * sl.start  # voxel sl.start becomes the new voxel 0
        img, lab = case.image, case.labels
        image = Volume(img.array[index], affine, modality=img.modality, name=f"{img.name} {side}",
                       source=img.source, meta=dict(img.meta))
        labels = LabelMap(lab.array[index], affine.copy(), LabelTable.from_list(lab.table.to_list()),
                          name=f"{lab.name} {side}", source=lab.source, meta=dict(lab.meta))
        return Case(image, labels, name=f"{case.name} {side}")

    return crop(left_sl, "left"), crop(right_sl, "right")


def cache_dir() -> Path:
    """Where generated demo data is kept between runs: ``$LUCID3D_CACHE`` or ~/.cache/lucid3d."""
    import os

    root = os.environ.get("LUCID3D_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lucid3d")
    return Path(root)


def globe_mesh_path() -> Path:
    """pyvista's textured globe (a mesh with UVs; its Earth texture lies beside it)."""
    spec = importlib.util.find_spec("pyvista")
    return Path(spec.origin).parent / "examples" / "globe.vtk"


def rendering_capture(views: int = 120, test: int = 20, size: int = 256, specular: float = 0.5,
                      seed: int = 0) -> Path:
    """The neural-rendering demo scene: a specular capture of pyvista's textured globe
    (``views - test`` training and ``test`` held-out views, Blender layout), rendered once with
    ``capture`` and cached. ``bench/nr_fit.py`` measures on the same mesh and cameras with
    ``capture``'s procedural texture instead of the Earth image."""
    from ..compute.photoset import capture_dataset

    folder = cache_dir() / f"capture-globe-{views}-{test}-{size}-{specular:g}-{seed}"
    if not (folder / "transforms_test.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=".capture-", dir=folder.parent))
        try:
            texture = globe_mesh_path().parent / "2k_earth_daymap.jpg"
            capture_dataset(str(globe_mesh_path()), str(tmp / "scene"), views=views, size=size,
                            test_fraction=test / views, texture=str(texture), specular=specular, seed=seed)
            try:
                (tmp / "scene").rename(folder)  # atomic: another process may have won the race
            except OSError:
                if not (folder / "transforms_test.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
