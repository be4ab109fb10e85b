"""Training cases turned into network-ready arrays, and MONAI's patch sampling over them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from monai.transforms import (Compose, RandAffined, RandCropByLabelClassesd, RandCropByPosNegLabeld, RandFlipd,
                              RandScaleIntensityd, RandShiftIntensityd)
from monai.transforms.utils import map_binary_to_indices, map_classes_to_indices

from viewer.jobs.progress import SlicePreview
from viewer.plugins import Case

from .preprocess import Normalisation, resample_to, to_canonical

__all__ = ["Prepared", "prepare_case", "body_mask", "target_spacing", "label_table", "patch_sampler", "mirror_axes",
           "lateralized_labels", "slice_preview"]


@dataclass
class Prepared:
    """One case ready for the network (canonical orientation, training spacing, normalised).

    image : (1, I, J, K) float32; label : (1, I, J, K) uint8 class index (0 = background).
    """

    name: str
    image: np.ndarray
    label: np.ndarray
    fg: np.ndarray
    bg: np.ndarray
    classes: list | None = None  # voxel indices of each class 0..C-1 (class-balanced sampling)

    def sample_input(self) -> dict:
        d = {"image": self.image, "label": self.label, "fg": self.fg, "bg": self.bg}
        if self.classes is not None:
            d["classes"] = self.classes
        return d


def target_spacing(cases: list[Case]) -> tuple[float, float, float]:
    """Median canonical spacing of the training cases (mm along R, A, S voxel axes)."""
    sp = []
    for c in cases:
        _, aff, _ = to_canonical(c.image.array, c.image.affine)
        sp.append(np.linalg.norm(aff[:3, :3], axis=0))
    return tuple(float(x) for x in np.median(np.array(sp), axis=0))  # type: ignore[return-value]


def label_table(cases: list[Case]) -> tuple[list[dict], dict[int, int]]:
    """Label rows (value, name, colour) over all cases and the value -> class index map."""
    rows: dict[int, dict] = {}
    for c in cases:
        present = set(int(v) for v in np.unique(np.asarray(c.labels.array)) if v)
        for lab in c.labels.table:
            if lab.value in present or lab.value in rows:
                rows.setdefault(lab.value, {"value": lab.value, "name": lab.name, "color": list(lab.color)})
        for v in present:
            rows.setdefault(v, {"value": v, "name": f"label {v}", "color": [1.0, 0.0, 0.0]})
    ordered = [rows[v] for v in sorted(rows)]
    return ordered, {row["value"]: i + 1 for i, row in enumerate(ordered)}


def prepare_case(case: Case, spacing, norm: Normalisation, to_class: dict[int, int],
                 patch: tuple[int, int, int], balanced: bool = False, context: int = 0,
                 background: str = "all") -> Prepared:
    """``case`` on the training grid, padded to at least one ``patch`` (the window sampled).

    context : voxels per side that a network of unpadded convolutions reads beyond the voxels it
        predicts (DeepMedic). The case is padded by that much on every side, so that its edge
        voxels, too, can be predicted by a training window; the padding is never a window's centre.
    background : where background (class 0) centres are drawn with ``balanced``: "all" its
        voxels, or "body" only those inside the body (:func:`body_mask`; DeepMedic's ROI mask),
        so that a network that predicts small blocks meets the tissue it could mistake for a
        label, not air.
    """
    img, aff, _ = to_canonical(np.asarray(case.image.array), case.image.affine)
    lab, _, _ = to_canonical(np.asarray(case.labels.array), case.labels.affine)
    src = tuple(np.linalg.norm(aff[:3, :3], axis=0))
    img = resample_to(img, src, spacing, order=1)
    lab = resample_to(lab, src, spacing, order=0, shape=img.shape)
    lut = np.zeros(int(max(to_class, default=0)) + 1, np.uint8)
    for v, c in to_class.items():
        lut[v] = c
    lab = lut[np.clip(np.asarray(lab).astype(np.int64), 0, len(lut) - 1)]
    x = norm(img)
    inside = None  # with context: the case's own voxels (centres are drawn from them only)
    if context > 0:
        inside = np.pad(np.ones(x.shape, np.uint8), context)
        x = np.pad(x, context, constant_values=float(x.min()))
        lab = np.pad(lab, context)
    # pad to at least one patch (before the foreground indices are taken)
    pad = [(0, max(0, p - n)) for p, n in zip(patch, x.shape)]
    if any(b for _, b in pad):
        x = np.pad(x, pad, constant_values=float(x.min()))
        lab = np.pad(lab, pad)
        inside = None if inside is None else np.pad(inside, pad)
    x, y = x[None], lab[None]
    valid = None if inside is None else inside[None]
    # indices over the whole (1, I, J, K) label: MONAI reduces its first axis as channels
    fg, bg = map_binary_to_indices(y > 0, valid, 0)
    classes = None
    if balanced:
        n = len(to_class) + 1
        classes = [np.asarray(i) for i in map_classes_to_indices(y, n, valid, 0)]
        if background == "body":
            body = body_mask(x, lab > 0)
            inner = np.flatnonzero(body.ravel())
            kept = np.intersect1d(classes[0], inner, assume_unique=True)
            if kept.size:
                classes[0] = kept
        elif background != "all":
            raise ValueError(f"background must be 'all' or 'body', not {background!r}")
    return Prepared(case.name, np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y), np.asarray(fg),
                    np.asarray(bg), classes)


def body_mask(image: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Voxels inside the body: above an Otsu threshold of the image's intensities (air and the
    padding below it), holes filled slice-wise, and every labelled voxel."""
    from scipy import ndimage

    x = np.asarray(image, np.float32)
    hist, edges = np.histogram(x, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    body = x > centres[int(np.argmax(between))]
    for k in range(body.shape[-1]):
        body[..., k] = ndimage.binary_fill_holes(body[..., k])
    if labels is not None:
        body |= np.asarray(labels, bool)
    return body


def slice_preview(case: Prepared, prediction: np.ndarray, labels: list[dict],
                  spacing: tuple[float, float, float]) -> SlicePreview:
    """What the window shows of a validation: the axial slice through most of the case's
    reference labels, predicted and reference side by side, as label VALUES.

    Parameters
    ----------
    case : the validation case on the network's grid (canonical RAS order, training spacing).
    prediction : (I, J, K) class indices on that grid (class c = ``labels[c - 1]``).
    labels : the label rows (value, name, colour) of :func:`label_table`.
    spacing : the grid's mm along I, J, K.

    The slices are drawn as a radiologist reads an axial image: row 0 at the top is anterior,
    the patient's right on the left (canonical (I, J) transposed, both axes reversed).
    """
    ref = case.label[0]
    per_k = np.count_nonzero(ref, axis=(0, 1))
    k = int(np.argmax(per_k)) if per_k.any() else ref.shape[2] // 2
    values = np.array([0] + [int(row["value"]) for row in labels])
    values = values.astype(np.min_scalar_type(int(values.max())))

    def axial(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values[np.asarray(a[:, :, k], np.int64)].T[::-1, ::-1])

    colors = {int(row["value"]): tuple(float(c) for c in row["color"]) for row in labels}
    return SlicePreview(case=case.name, prediction=axial(prediction), reference=axial(ref),
                        pixel_mm=(float(spacing[1]), float(spacing[0])), colors=colors)


def lateralized_labels(cases: list[Case], to_class: dict[int, int], side_share: float = 0.9,
                       span_mm: float = 20.0) -> list[int]:
    """Label values that lie on one side of the body: ≥ ``side_share`` of their voxels on one
    side of the world plane x = 0, in a case whose grid reaches ``span_mm`` past it on both sides.

    Mirroring such a case left-right teaches the network a liver on the left; cases that lie on
    one side only (a hemisphere) say nothing, since every label there is on that side.
    """
    found = set()
    for c in cases:
        arr, aff, _ = to_canonical(np.asarray(c.labels.array), c.labels.affine)
        xs = aff[0, 0] * np.arange(arr.shape[0]) + aff[0, 3]  # world x of each canonical i
        if xs.min() > -span_mm or xs.max() < span_mm:
            continue
        right = xs >= 0
        for v in to_class:
            per_i = (arr == v).sum(axis=(1, 2))
            n = int(per_i.sum())
            if n and max(per_i[right].sum(), per_i[~right].sum()) >= side_share * n:
                found.add(int(v))
    return sorted(found)


def mirror_axes(cases: list[Case], to_class: dict[int, int], mode: str) -> tuple[int, ...]:
    """Canonical (RAS) axes a training patch may be mirrored along.

    "auto": left-right (axis 0) only, as anatomy is mirror-symmetric left-right and nowhere else,
    and not even that when a label is lateralized (:func:`lateralized_labels`); "lr": axis 0;
    "all": the three axes; "none": no mirroring.
    """
    if mode == "auto":
        return () if lateralized_labels(cases, to_class) else (0,)
    table = {"lr": (0,), "all": (0, 1, 2), "none": ()}
    if mode not in table:
        raise ValueError(f"mirror must be one of auto, lr, all, none; not {mode!r}")
    return table[mode]


def patch_sampler(patch: tuple[int, int, int], samples: int, seed: int, n_classes: int = 2,
                  sampling: str = "posneg", affine_prob: float = 0.0,
                  flip_axes: tuple[int, ...] = (0, 1, 2), background_share: float = 0.0) -> Compose:
    """Patches for training, then augmentation.

    sampling : "posneg": half foreground, half background patches (class imbalance);
        "classes": patch centres drawn evenly over every class, background included, so a
        small organ is seen as often as a big one (needs ``Prepared.classes``).
    affine_prob : chance of a small random rotation (±0.2 rad) and scaling (±10 %) of a patch.
    flip_axes : canonical axes along which a patch is mirrored with probability 1/2 each.
    background_share : with "classes", the share of centres drawn from the background (the
        labels share the rest evenly); 0 = an even share among all classes.
    """
    keys = ["image", "label"]
    if sampling == "classes":
        ratios = None
        if 0.0 < background_share < 1.0 and n_classes > 1:
            ratios = [background_share * (n_classes - 1) / (1.0 - background_share)] + [1.0] * (n_classes - 1)
        crop = RandCropByLabelClassesd(keys, label_key="label", spatial_size=patch, ratios=ratios,
                                       num_classes=n_classes, num_samples=samples, indices_key="classes")
    elif sampling == "posneg":
        crop = RandCropByPosNegLabeld(keys, label_key="label", spatial_size=patch, pos=1.0, neg=1.0,
                                      num_samples=samples, fg_indices_key="fg", bg_indices_key="bg")
    else:
        raise ValueError(f"sampling must be 'posneg' or 'classes', not {sampling!r}")
    steps = [crop]
    if affine_prob > 0:
        steps.append(RandAffined(keys, prob=affine_prob, rotate_range=(0.2, 0.2, 0.2), scale_range=(0.1, 0.1, 0.1),
                                 mode=("bilinear", "nearest"), padding_mode="border"))
    steps += [RandFlipd(keys, prob=0.5, spatial_axis=int(a)) for a in flip_axes]
    steps += [
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ]
    t = Compose(steps)
    t.set_random_state(seed=seed)
    return t
