"""The CT phantom: one label table, one generator, two anatomies.

:func:`ct_phantom` makes a CT-like torso in Hounsfield units and its organ labels, always with
the labels of :data:`PHANTOM_LABELS` (1 liver, 2 kidneys, 3 spleen, 4 bone) and their colours:

* ``anatomy="reference"``: one fixed patient laid out for a 192 mm field of view, with a bright
  fiducial sphere at :data:`MARKER_RAS`; the seed moves only the noise and a slight wobble of
  the organs. The demo scene, orientation checks and quick training tests use it.
* ``anatomy="varied"``: a new patient for every seed (body size and outline, organ shapes and
  positions, tissue levels), optionally with small organs (gallbladder, adrenals, pancreas) as
  the labelled targets instead. Training and test sets and the benchmarks use it, through
  :func:`phantom_case` / :func:`phantom_cases`.

The two anatomies keep their own painters: the reference patient's arrays are what the demo and
the orientation tests are built on (the marker at an exact RAS point), the varied one's what the
segmentation figures in docs/PERFORMANCE.md were measured on; one painter would change both.

World frame: RAS millimetres as in NIfTI (+x = patient's Right, +y = Anterior, +z = Superior).
The voxel axes point Left, Posterior, Superior ("LPS" axcodes, like a DICOM-ordered array) and the
grid is centred at world (0, 0, 0), so loaders' LPS handling and the views' orientation labels
are exercised.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..model.labels import Label, LabelMap, LabelTable
from ..model.volume import Volume
from ..plugins import Case

__all__ = ["ct_phantom", "phantom_case", "phantom_cases", "phantom_table", "lps_affine", "ANATOMIES", "PHANTOM_LABELS",
           "PHANTOM_COLORS", "PHANTOM_SMALL_LABELS", "LABEL_NAMES", "MARKER_RAS", "MARKER_RADIUS_MM",
           "MARKER_HU", "LIVER", "KIDNEYS", "SPLEEN", "BONE"]

LIVER, KIDNEYS, SPLEEN, BONE = 1, 2, 3, 4
#: label value -> name, for every phantom (both anatomies)
PHANTOM_LABELS = {LIVER: "liver", KIDNEYS: "kidneys", SPLEEN: "spleen", BONE: "bone"}
#: label value -> RGB 0..1: brownish red, yellow, purple, ivory
PHANTOM_COLORS = {LIVER: (0.65, 0.27, 0.22), KIDNEYS: (0.95, 0.82, 0.25), SPLEEN: (0.55, 0.32, 0.70),
                  BONE: (0.96, 0.93, 0.82)}
#: the demo's older name for :data:`PHANTOM_LABELS` (the same dict)
LABEL_NAMES = PHANTOM_LABELS
#: label value -> name with ``small_organs=True`` (the big organs then stay in the image, unlabelled)
PHANTOM_SMALL_LABELS = {1: "gallbladder", 2: "adrenal glands", 3: "pancreas"}
_SMALL_COLORS = {1: (0.35, 0.65, 0.30), 2: (0.95, 0.60, 0.20), 3: (0.90, 0.75, 0.55)}
ANATOMIES = ("reference", "varied")

#: Centre of the reference patient's bright fiducial sphere, RAS mm: patient's left (-x),
#: anterior (+y), superior (+z). Asymmetric on every axis, so a flipped axis moves it visibly.
MARKER_RAS = (-40.0, 25.0, 60.0)
MARKER_RADIUS_MM = 6.0
MARKER_HU = 2000
_REFERENCE_FOV_MM = np.array([192.0, 192.0, 192.0])  # the default grid: (128, 128, 96) x (1.5, 1.5, 2)


def phantom_table(small_organs: bool = False) -> LabelTable:
    """A new :class:`LabelTable` of the phantom's labels (or of its small organs)."""
    names, colours = (PHANTOM_SMALL_LABELS, _SMALL_COLORS) if small_organs else (PHANTOM_LABELS, PHANTOM_COLORS)
    return LabelTable([Label(v, n, colours[v]) for v, n in names.items()])


def ct_phantom(shape: tuple[int, int, int] = (128, 128, 96),
               spacing: tuple[float, float, float] = (1.5, 1.5, 2.0),
               seed: int = 0, *, anatomy: str = "reference", small_organs: bool = False) -> tuple[Volume, LabelMap]:
    """A CT-like torso in Hounsfield units and its organ labels.

    Parameters
    ----------
    shape : (I, J, K) voxels; axis i points to the patient's Left, j Posterior, k Superior.
    spacing : voxel size along i, j, k in mm.
    seed : seeds every random choice; equal arguments give equal arrays.
    anatomy : "reference" (one fixed patient, with a marker sphere) or "varied" (one patient
        per seed); see the module's text.
    small_organs : "varied" only: label the gallbladder, adrenal glands and pancreas
        (:data:`PHANTOM_SMALL_LABELS`) instead of the big organs.

    Returns
    -------
    volume : (I, J, K) int16 HU in -1024..3071, modality "CT", ``affine = diag(-sx, -sy, sz)``
        with the grid centred at world (0, 0, 0).
    labels : (I, J, K) uint8 on the same grid, :data:`PHANTOM_LABELS` (or the small organs).

    Reference anatomy: air -1000, fat -100, soft tissue 40, lungs -850, liver 60, kidneys 30,
    spleen 50, bone 700-1200, a 2000 HU marker of radius ``MARKER_RADIUS_MM`` centred exactly
    at ``MARKER_RAS``; Gaussian noise sd 10 HU. It is laid out for the 192 mm field of view of
    the default grid (any ``shape * spacing == 192`` gives the same patient in mm); other
    fields of view scale the whole patient along each axis so that every organ stays in view,
    and the marker's centre is then ``volume.meta["marker_ras"]``. Takes ~0.3 s by default.

    Varied anatomy: see :func:`phantom_case`. Takes ~0.2 s for a 96 x 96 x 64 grid.
    """
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {', '.join(ANATOMIES)}, got {anatomy!r}")
    if anatomy == "reference":
        if small_organs:
            raise ValueError("small_organs needs anatomy='varied'")
        hu, labels, affine, marker = _reference(shape, spacing, seed)
        name, meta = "CT phantom", {"format": "demo"}
        image_meta = {**meta, "marker_ras": marker}
    else:
        hu, labels, affine = _varied(seed, shape, spacing, small_organs)
        name = f"phantom-{int(seed):04d}" + ("-small" if small_organs else "")
        meta = {"format": "phantom", "seed": int(seed)}
        image_meta = dict(meta)
    volume = Volume(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), affine, modality="CT", name=name,
                    meta=image_meta)
    return volume, LabelMap(labels, affine.copy(), phantom_table(small_organs),
                            name="CT phantom labels" if anatomy == "reference" else f"{name} labels", meta=meta)


def phantom_case(seed: int, shape: tuple[int, int, int] = (96, 96, 64),
                 spacing: tuple[float, float, float] = (2.0, 2.0, 2.5), small_organs: bool = False) -> Case:
    """A varied-anatomy phantom (one patient per seed) as a training :class:`Case`.

    Parameters
    ----------
    seed : seeds every random choice; equal seeds give equal arrays.
    shape : (I, J, K) voxels; axis i points to the patient's Left, j Posterior, k Superior.
    spacing : voxel size along i, j, k in mm. Anatomy is laid out in mm, so another
        spacing samples the same body more finely or coarsely.
    small_organs : label the small organs instead of the big ones (see below).

    Returns
    -------
    Case named ``phantom-SSSS`` (``-small`` added with small organs)
        ``image``: (I, J, K) int16 HU, modality "CT", LPS axcodes, the grid centred at world
        (0, 0, 0). Air -1000; an elliptical body of random size and shape: subcutaneous fat
        (-100), a muscle ring (50), visceral fat/bowel texture, lung bases (-850); liver (60,
        the patient's right), spleen (45, left), two posterior kidneys in perirenal fat (30),
        spine and rib arcs (cancellous 300-500, cortical 900-1200). Each tissue's level moves
        by up to +-10 HU per seed so that shape and context, not one HU value, identify an
        organ. Slight blur (partial volume) and Gaussian noise of sd 15 HU.
        ``labels``: (I, J, K) uint8 on the same grid, :data:`PHANTOM_LABELS`; organs never
        overlap and are kept at least one voxel apart.
        With ``small_organs`` the image also holds a gallbladder (bile, 10 HU, tucked under the
        liver), two adrenal glands (35 HU, in the fat above each kidney) and a pancreas-like
        body (40 HU, in front of the left kidney), 1-6 mL each, and ``labels`` are those three
        (:data:`PHANTOM_SMALL_LABELS`) instead: the big organs stay in the image, unlabelled.
        Everything else is the same phantom as without them (their shapes have their own
        random stream).
    """
    image, labels = ct_phantom(shape, spacing, seed, anatomy="varied", small_organs=small_organs)
    return Case(image, labels, name=image.name)


def phantom_cases(n: int, first_seed: int = 0, **kw) -> list[Case]:
    """``n`` phantoms with seeds ``first_seed .. first_seed + n - 1`` (``kw`` as :func:`phantom_case`)."""
    return [phantom_case(s, **kw) for s in range(int(first_seed), int(first_seed) + int(n))]


def lps_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """(4, 4) voxel -> RAS mm: ``diag(-sx, -sy, sz)`` with the grid's centre at world (0, 0, 0)."""
    sx, sy, sz = (float(s) for s in spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape, float) - 1) / 2.0)
    return affine


def _reference(shape: tuple[int, int, int], spacing: tuple[float, float, float],
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """The reference patient: (hu float32, labels uint8, affine, the marker's centre in RAS mm)."""
    rng = np.random.default_rng(seed)
    affine = lps_affine(shape, spacing)
    scale = np.asarray(shape, float) * np.asarray(spacing, float) / _REFERENCE_FOV_MM
    # separable voxel-centre coordinates in the reference patient's mm (world mm / scale):
    # (I,1,1), (1,J,1), (1,1,K) float32, so every mask below costs one broadcast
    x, y, z = ((affine[a, 3] + affine[a, a] * np.arange(shape[a])) / scale[a] for a in range(3))
    x = x.astype(np.float32)[:, None, None]
    y = y.astype(np.float32)[None, :, None]
    z = z.astype(np.float32)[None, None, :]
    phases = rng.uniform(0, 2 * np.pi, size=(8, 3)).astype(np.float32)

    def blob(cx, cy, cz, rx, ry, rz, k: int, wobble: float = 0.12) -> np.ndarray:
        """Ellipsoid with a smooth sinusoidal wobble of its surface (boolean (I,J,K))."""
        f = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2
        p = phases[k]
        f = f + wobble * (np.sin(x / 9 + p[0]) * np.sin(y / 11 + p[1]) * np.sin(z / 13 + p[2]))
        return f <= 1.0

    ax, ay = 88.0, 62.0  # body semi-axes, mm
    ring = (x / ax) ** 2 + (y / ay) ** 2  # (I, J, 1): the torso is a cylinder along z
    body, inner = ring <= 1.0, ring <= 0.81  # 0.81 = 0.9^2: fat layer under the skin
    hu = np.full(shape, -1000.0, np.float32)
    labels = np.zeros(shape, np.uint8)
    hu[np.broadcast_to(body, shape)] = -100.0
    inner3 = np.broadcast_to(inner, shape)
    hu[inner3] = 40.0
    for side in (-1, 1):  # lungs (unlabelled), above the abdomen
        hu[blob(side * 38, -5, 78, 32, 42, 48, k=5) & inner3] = -850.0
    kidneys = [(-42.0, -28.0, -25.0, 1), (42.0, -28.0, -31.0, 2)]  # left one higher, as usual
    for cx, cy, cz, k in kidneys:  # perirenal fat, so the kidneys stand out as on real CT
        hu[blob(cx, cy, cz, 22, 20, 36, k=k, wobble=0.05) & inner3] = -90.0
    organs = [  # (label, HU, mask): liver on the patient's right (+x), spleen on the left
        (LIVER, 60.0, blob(35, 5, 15, 42, 36, 34, k=0)),
        (KIDNEYS, 30.0, np.logical_or(*(blob(cx, cy, cz, 16, 14, 30, k=k) for cx, cy, cz, k in kidneys))),
        (SPLEEN, 50.0, blob(-52, -18, 25, 17, 24, 28, k=3)),
    ]
    for value, level, mask in organs:
        mask &= inner3
        hu[mask] = level
        labels[mask] = value
    # spine: vertebral bodies (cortical rim 1200, cancellous 700) with discs every 24 mm
    r_spine = np.sqrt(x ** 2 + (y + 36.0) ** 2)
    disc = ((z + 1000.0) % 24.0) < 4.0
    vert = (r_spine <= 13.0) & ~disc
    hu[vert] = 700.0
    hu[(r_spine > 10.0) & vert] = 1200.0
    hu[(r_spine <= 13.0) & disc] = 80.0
    # ribs: slabs of an elliptical ring inside the fat layer, thoracic levels only
    ribs = (ring >= 0.62) & (ring <= 0.72) & (((z + 1000.0) % 20.0) < 5.0) & (z > -30.0)
    ribs &= y < 0.55 * ay  # open at the front, where the costal cartilage would be
    bone = vert | ribs
    hu[ribs] = 900.0
    labels[np.broadcast_to(bone, shape)] = BONE
    # the marker last (unlabelled): centred exactly at MARKER_RAS on a 192 mm field of view
    mx, my, mz = MARKER_RAS
    marker = (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= MARKER_RADIUS_MM ** 2
    hu[marker] = float(MARKER_HU)
    hu += rng.standard_normal(shape, dtype=np.float32) * 10.0
    return hu, labels, affine, [float(v) for v in np.asarray(MARKER_RAS) * scale]


# -- the varied anatomy --------------------------------------------------------------------------
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


def _varied(seed: int, shape: tuple[int, int, int], spacing: tuple[float, float, float],
            small_organs: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A patient of this seed's own: (hu float32, labels uint8, affine); see :func:`phantom_case`."""
    rng = np.random.default_rng([int(seed), 0x1C3D])  # the tag keeps these streams apart from others'
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    affine = lps_affine(shape, spacing)
    grid = _Grid(affine, shape)
    x, y, z = grid.coords()
    fov = np.asarray(shape, float) * np.asarray(spacing, float)

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
    labels[bone] = BONE

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
        place(KIDNEYS, _blob(grid, rng, c, r, max_deg=(10, 10, 35), wobble=0.08), 30.0 + jitter())
    spleen_c = (-rng.uniform(0.5, 0.65) * cax, -rng.uniform(0.1, 0.4) * cay, rng.uniform(0.05, 0.3) * fov[2] / 2)
    place(SPLEEN, _blob(grid, rng, spleen_c, (rng.uniform(14, 22), rng.uniform(22, 32), rng.uniform(25, 40)),
                   max_deg=(10, 10, 30)), 45.0 + jitter())
    # the liver is the largest: the cavity wall clips it to the right upper quadrant's shape
    liver_c = (rng.uniform(0.35, 0.5) * cax, rng.uniform(-0.1, 0.2) * cay, rng.uniform(0.1, 0.4) * fov[2] / 2)
    place(LIVER, _blob(grid, rng, liver_c, (rng.uniform(0.5, 0.62) * cax, rng.uniform(0.7, 0.9) * cay,
                                        rng.uniform(45, 65)), wobble=0.2), 60.0 + jitter())

    if small_organs:
        labels = _small_organs(grid, np.random.default_rng([int(seed), 0x5A11]), hu, labels, cavity, cax, cay)
    # partial volume at edges, then noise; quantised as a scanner would store it
    hu = ndimage.gaussian_filter(hu, sigma=0.5, truncate=3.0)
    hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(15.0)
    return hu, labels, affine


def _small_organs(grid: _Grid, rng: np.random.Generator, hu: np.ndarray, labels: np.ndarray,
                  cavity: np.ndarray, cax: float, cay: float) -> np.ndarray:
    """Paint the gallbladder, adrenals and pancreas into ``hu``; return their (I, J, K) labels."""
    x, y, z = grid.coords()
    small = np.zeros(labels.shape, np.uint8)

    def put(value: int, mask: np.ndarray, level: float) -> None:
        mask &= cavity & (small == 0) & (labels != KIDNEYS) & (labels != BONE)
        hu[mask] = level + rng.uniform(-5.0, 5.0)
        small[mask] = value

    # gallbladder: in the liver's anterior-inferior part, carved out of it
    liver = np.argwhere(labels == LIVER)
    if liver.size:
        world = np.stack([grid.axes[a][liver[:, a]] for a in range(3)], axis=1)
        front = world[(world[:, 1] > np.percentile(world[:, 1], 65)) & (world[:, 2] < np.percentile(world[:, 2], 40))]
        c = front.mean(0) if len(front) else world.mean(0)
        put(1, _blob(grid, rng, c, (rng.uniform(7, 9), rng.uniform(7, 9), rng.uniform(12, 16)), wobble=0.06), 10.0)
    # adrenal glands: flat blobs in the fat just above each kidney, a little medial
    for side in (-1, 1):
        kid = np.argwhere((labels == KIDNEYS) & (x * side > 0))
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


