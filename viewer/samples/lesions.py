"""CT crops with synthetic lesions: the demo and benchmark data of classification and detection.

Each crop is cut from a varied-anatomy CT phantom (:func:`~viewer.samples.phantom.ct_phantom`,
one patient per seed) around a point of soft tissue; a positive crop holds one lesion: a sphere
of 3-6 mm radius, 25-45 HU brighter than the soft tissue it lies in (liver, spleen, kidney,
muscle, bowel), with a partial-volume edge, under the phantom's own noise (sd 15 HU). Negative
crops are cut the same way and hold none. Training and test sets come from disjoint seeds
(:data:`TRAIN_SEED`, :data:`TEST_SEED`): other patients, other anatomy.

:func:`write_lesion_set` writes the crops as NIfTI files and their ``cases.json``
(:mod:`viewer.io.case_manifest`), labelled :data:`LESION` / :data:`NO_LESION`, each box the
lesion's bounding box in RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import save_nifti
from ..io.case_manifest import write_manifest
from ..model.volume import Volume
from .phantom import ct_phantom

__all__ = ["LesionCrop", "lesion_crop", "lesion_crops", "write_lesion_set", "LESION", "NO_LESION", "TRAIN_SEED",
           "TEST_SEED"]

LESION, NO_LESION = "lesion", "no lesion"
TRAIN_SEED, TEST_SEED = 0, 50_000  # the seeds of training and of test patients never meet
_PHANTOM_SHAPE = (112, 96, 64)  # a 168 x 144 x 96 mm torso at 1.5 mm: room for crops anywhere inside
_SOFT = (-20.0, 130.0)  # HU of the soft tissue a lesion may lie in (before the phantom's noise ...)


@dataclass
class LesionCrop:
    """One crop: the image, and its lesions' bounding boxes, centres (RAS mm) and radii (mm)."""

    volume: Volume
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
    equal arrays; ~0.2 s."""
    rng = np.random.default_rng([int(seed), 0x1E51])
    vol, _ = ct_phantom(_PHANTOM_SHAPE, (spacing,) * 3, seed, anatomy="varied")
    hu = np.asarray(vol.array, np.float32)
    shape = np.array(hu.shape)
    if np.any(shape < crop):
        raise ValueError(f"crop {crop} is larger than the phantom {tuple(shape)}")
    # the crop's centre: a soft-tissue voxel far enough from the grid's faces
    half = crop // 2
    inner = np.zeros(hu.shape, bool)
    inner[half:shape[0] - (crop - half) + 1, half:shape[1] - (crop - half) + 1,
          half:shape[2] - (crop - half) + 1] = True
    soft = inner & (hu > _SOFT[0]) & (hu < _SOFT[1])
    candidates = np.argwhere(soft)
    centre = candidates[rng.integers(len(candidates))]
    lo = centre - half
    box = hu[lo[0]:lo[0] + crop, lo[1]:lo[1] + crop, lo[2]:lo[2] + crop].copy()
    affine = np.asarray(vol.affine, float).copy()
    affine[:3, 3] = _ras(vol.affine, lo)
    out = LesionCrop(None)  # type: ignore[arg-type]
    if lesion:
        _add_lesion(box, affine, spacing, rng, out, contrast)
    data = np.clip(np.rint(box), -1024, 3071).astype(np.int16)
    name = f"crop-{int(seed):05d}-{'lesion' if lesion else 'none'}"
    out.volume = Volume(data, affine, modality="CT", name=name, meta={"format": "lesion-crop", "seed": int(seed),
                                                                       "header": _ct_header()})
    return out


def _add_lesion(box: np.ndarray, affine: np.ndarray, spacing: float, rng: np.random.Generator,
                out: LesionCrop, contrast_range: tuple[float, float]) -> None:
    """One sphere, brighter than the soft tissue it lies in, written into ``box`` (HU, in place)."""
    n = box.shape[0]
    idx = np.indices(box.shape, dtype=np.float32)
    for _ in range(400):
        radius = float(rng.uniform(3.0, 6.0))
        r_vox = radius / spacing
        margin = int(np.ceil(r_vox)) + 1
        c = rng.uniform(margin, n - 1 - margin, size=3)
        d = np.sqrt(((idx - c[:, None, None, None]) ** 2).sum(0)) * spacing  # mm
        inside = d <= radius
        vals = box[inside]
        # in soft tissue all round (not half in fat or bone): the lesion is what differs
        if np.mean((vals > _SOFT[0] - 30) & (vals < _SOFT[1])) >= 0.9 and 0 <= np.median(vals) <= 100:
            break
    contrast = float(rng.uniform(*contrast_range))
    box += contrast * np.clip((radius - d) / spacing + 0.5, 0.0, 1.0)  # partial volume at the edge
    centre = _ras(affine, c)
    out.centers.append(tuple(float(v) for v in centre))
    out.radii.append(radius)
    out.boxes.append(tuple(float(v) for v in np.concatenate([centre - radius, centre + radius])))


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
