"""CT crops with synthetic lesions: the demo and benchmark data of classification and detection.

Each crop is cut from a varied-anatomy CT phantom (:func:`~viewer.samples.phantom.ct_phantom`,
one patient per seed) around a site deep inside a solid organ (liver, spleen or kidney: the
phantom's muscle wall is 3-9 mm thick, too thin to hold a 3-6 mm sphere all round); a positive
crop holds one lesion there: a sphere of 3-6 mm radius, 25-45 HU brighter than the organ, with a
partial-volume edge, under the phantom's own noise (sd 15 HU). Negative crops are cut the same
way (the same draw of site and offset) and hold none, so organ, fat, bone and bowel are in view
alike in both. Training, test and held-aside sets come from disjoint seeds (:data:`TRAIN_SEED`,
:data:`TEST_SEED`, :data:`HOLDOUT_SEED`): other patients, other anatomy; the held-aside set is
for reporting only, never for choosing settings.

:func:`write_lesion_set` writes the crops as NIfTI files and their ``cases.json``
(:mod:`viewer.io.case_manifest`), labelled :data:`LESION` / :data:`NO_LESION`, each box the
lesion's bounding box in RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io import save_nifti
from ..io.case_manifest import write_manifest
from ..model.volume import Volume
from .phantom import KIDNEYS, LIVER, SPLEEN, ct_phantom

__all__ = ["LesionCrop", "lesion_crop", "lesion_crops", "write_lesion_set", "LESION", "NO_LESION", "TRAIN_SEED",
           "TEST_SEED", "HOLDOUT_SEED"]

LESION, NO_LESION = "lesion", "no lesion"
# the seeds of training, test and held-aside patients never meet (sets of up to 50 000 / 40 000)
TRAIN_SEED, TEST_SEED, HOLDOUT_SEED = 0, 50_000, 90_000
_PHANTOM_SHAPE = (112, 96, 64)  # a 168 x 144 x 96 mm torso at 1.5 mm: room for crops anywhere inside
_RADIUS_MM = (3.0, 6.0)
_HOSTS = {LIVER: "liver", SPLEEN: "spleen", KIDNEYS: "kidney"}  # label value -> organ a lesion may lie in


@dataclass
class LesionCrop:
    """One crop: the image, and its lesions' bounding boxes, centres (RAS mm) and radii (mm);
    ``host``: the organ its (would-be, for a negative crop) lesion site lies in."""

    volume: Volume
    host: str = ""
    boxes: list[tuple[float, ...]] = field(default_factory=list)
    centers: list[tuple[float, float, float]] = field(default_factory=list)
    radii: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LESION if self.boxes else NO_LESION


def _ras(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return np.asarray(affine, float)[:3, :3] @ np.asarray(ijk, float) + np.asarray(affine, float)[:3, 3]


def lesion_crop(seed: int, lesion: bool, *, crop: int = 32, spacing: float = 1.5,
                contrast: tuple[float, float] = (25.0, 45.0)) -> LesionCrop:
    """A ``crop``^3 CT crop at ``spacing`` mm from the phantom patient ``seed``, with one lesion
    (``contrast`` HU over its surroundings, drawn from that range) or none. Equal arguments give
    equal arrays; ~0.3 s.

    Both kinds are cut alike: a site deep enough inside a solid organ (liver, spleen or a
    kidney, each as likely) for a sphere of the drawn radius and a voxel more, and the crop
    placed around it at a random offset; a positive crop gets its lesion there, a negative one
    keeps the organ as it is. So the only thing that tells them apart is the lesion, not the
    anatomy around it (a classifier must not learn "liver in view" or "bowel in view")."""
    rng = np.random.default_rng([int(seed), 0x1E51])
    vol, labels = ct_phantom(_PHANTOM_SHAPE, (spacing,) * 3, seed, anatomy="varied")
    hu = np.asarray(vol.array, np.float32)
    shape = np.array(hu.shape)
    if np.any(shape < crop):
        raise ValueError(f"crop {crop} is larger than the phantom {tuple(shape)}")
    radius = float(rng.uniform(*_RADIUS_MM))
    site, host = _site(np.asarray(labels.array), spacing, radius, crop, rng)
    margin = int(np.ceil(radius / spacing)) + 1  # the whole sphere and its partial-volume edge in the crop
    lo = np.array([rng.integers(max(site[a] - (crop - 1 - margin), 0), min(site[a] - margin, shape[a] - crop) + 1)
                   for a in range(3)])
    box = hu[lo[0]:lo[0] + crop, lo[1]:lo[1] + crop, lo[2]:lo[2] + crop].copy()
    affine = np.asarray(vol.affine, float).copy()
    affine[:3, 3] = _ras(vol.affine, lo)
    out = LesionCrop(None, host=host)  # type: ignore[arg-type]
    centre = site - lo + rng.uniform(-0.5, 0.5, 3)  # voxels of the crop; off the grid's centres
    strength = float(rng.uniform(*contrast))
    if lesion:
        _add_lesion(box, affine, spacing, centre, radius, strength, out)
    data = np.clip(np.rint(box), -1024, 3071).astype(np.int16)
    name = f"crop-{int(seed):05d}-{'lesion' if lesion else 'none'}"
    out.volume = Volume(data, affine, modality="CT", name=name, meta={"format": "lesion-crop", "seed": int(seed),
                                                                       "host": host, "header": _ct_header()})
    return out


def _site(labels: np.ndarray, spacing: float, radius: float, crop: int,
          rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(voxel, organ name): a voxel of liver, spleen or kidney at least ``radius`` + one voxel
    from the organ's border (a sphere there lies in the organ all round) and far enough from
    the grid's faces for a crop around it; the organ drawn first, each alike."""
    margin = int(np.ceil(radius / spacing)) + 1
    inner = np.zeros(labels.shape, bool)
    inner[tuple(slice(margin, n - margin) for n in labels.shape)] = True
    # the phantom keeps a voxel's gap between organs, so one distance map serves them all
    depth = ndimage.distance_transform_edt(np.isin(labels, list(_HOSTS)), sampling=spacing)
    ok = inner & (depth >= radius + spacing)
    deep = {}
    for value, name in _HOSTS.items():
        found = np.argwhere(ok & (labels == value))
        if len(found):
            deep[name] = found
    if not deep:
        raise ValueError("no organ deep enough for a lesion in this phantom")
    names = sorted(deep)
    host = names[rng.integers(len(names))]
    return deep[host][rng.integers(len(deep[host]))], host


def _add_lesion(box: np.ndarray, affine: np.ndarray, spacing: float, centre: np.ndarray, radius: float,
                strength: float, out: LesionCrop) -> None:
    """A sphere ``strength`` HU brighter than the organ around it at ``centre`` (voxels), with
    a partial-volume edge one voxel wide, added to ``box`` (HU, in place) over its noise."""
    idx = np.indices(box.shape, dtype=np.float32)
    d = np.sqrt(((idx - centre[:, None, None, None]) ** 2).sum(0)) * spacing  # mm
    box += strength * np.clip((radius - d) / spacing + 0.5, 0.0, 1.0)
    ras = _ras(affine, centre)
    out.centers.append(tuple(float(v) for v in ras))
    out.radii.append(radius)
    out.boxes.append(tuple(float(v) for v in np.concatenate([ras - radius, ras + radius])))


def _ct_header():
    """A NIfTI header whose description says CT: crops lie inside the body, with no air in the
    corner from which the NIfTI reader would guess the modality."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header["descrip"] = b"CT (Hounsfield units), synthetic lesion crop"
    return header


def lesion_crops(n: int, first_seed: int = TRAIN_SEED, *, crop: int = 32, spacing: float = 1.5,
                 contrast: tuple[float, float] = (25.0, 45.0)) -> list[LesionCrop]:
    """``n`` crops from patients ``first_seed ..``, alternately with a lesion and without."""
    return [lesion_crop(first_seed + i, lesion=i % 2 == 0, crop=crop, spacing=spacing, contrast=contrast)
            for i in range(int(n))]


def write_lesion_set(folder: str | Path, n: int, first_seed: int = TRAIN_SEED, *, crop: int = 32,
                     spacing: float = 1.5, boxes: bool = True, contrast: tuple[float, float] = (25.0, 45.0)) -> Path:
    """Write ``n`` crops (:func:`lesion_crops`) as ``folder/crop-*.nii.gz`` and their manifest
    ``folder/cases.json`` (without the ``boxes`` key when ``boxes`` is False: labels alone).
    Returns the manifest's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in lesion_crops(n, first_seed, crop=crop, spacing=spacing, contrast=contrast):
        name = f"{c.volume.name}.nii.gz"
        save_nifti(c.volume, folder / name)
        row = {"image": name, "label": c.label}
        if boxes:
            row["boxes"] = [list(b) for b in c.boxes]
        rows.append(row)
    return write_manifest(folder / "cases.json", rows)
