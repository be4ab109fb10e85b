"""A trained segmenter on a new scan: to the network's grid, sliding windows, back to the scan's
grid exactly (same shape, same affine)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from viewer.jobs.progress import Progress
from viewer.model import Label, LabelMap, LabelTable, Volume

from .checkpoint import SegModel
from .crf import crf_refiner, crf_settings
from .infer import segment_array
from .preprocess import Normalisation, resample_to, to_canonical

__all__ = ["predict_volume"]


def predict_volume(model: SegModel, volume: Volume, progress: Progress, tta: bool = True,
                   slab_bytes: int = 1 << 30,
                   segment: Callable[..., tuple[np.ndarray, np.ndarray | None]] | None = None,
                   settings: dict | None = None) -> tuple[LabelMap, Volume | None]:
    """Segment ``volume``; returns the label map and (with ``tta``) the uncertainty.

    ``segment`` replaces :func:`~plugins._seg.infer.segment_array` (same signature): a method's
    own tiling of the volume. ``settings``: Config fields for this call over the checkpoint's
    (checked by the plugin); with ``crf`` on, the labels are the fully connected CRF's
    (:mod:`plugins._seg.crf`) over the network's probabilities, on the model's grid and device
    (the uncertainty stays the network's).

    Returns
    -------
    labels : LabelMap on ``volume``'s grid, label values and names as in training.
    uncertainty : Volume (float32, nats of entropy of the flip-averaged softmax) on the same
        grid, or None without ``tta``.
    """
    if model.in_channels != 1:
        raise ValueError(f"this model expects {model.in_channels} input channels; the scan has 1")
    progress.update(0, 0, "preparing the scan")
    img, aff, can = to_canonical(np.asarray(volume.array), volume.affine)
    src_spacing = tuple(np.linalg.norm(aff[:3, :3], axis=0))
    canon_shape = img.shape
    x = resample_to(img, src_spacing, model.spacing, order=1)
    x = Normalisation(**model.normalisation)(x)
    # pad to at least one patch, as in training
    pad = [(0, max(0, p - n)) for p, n in zip(model.patch, x.shape)]
    if any(b for _, b in pad):
        x = np.pad(x, pad, constant_values=float(x.min()))
    core = tuple(slice(0, n) for n in (x.shape[0] - pad[0][1], x.shape[1] - pad[1][1], x.shape[2] - pad[2][1]))
    ov = float(model.config.get("overlap", 0.25))
    swb = int(model.config.get("sw_batch_size", 4))
    amp = bool(model.config.get("amp", True))
    # checkpoints from before mirror_axes existed were trained with flips along all three axes
    flip_axes = tuple(model.config.get("mirror_axes", (0, 1, 2)))
    segment = segment or segment_array
    crf = crf_settings({**model.config, **(settings or {})})
    extra = {"refine": crf_refiner(x, model.spacing, crf, model.device,
                                   lambda done, total: progress.update(done, total, "CRF"))} if crf else {}
    classes, unc = segment(model.net, x, model.n_classes, tuple(model.patch), ov, swb, tta=tta,
                           device=model.device, amp=amp, slab_bytes=slab_bytes, flip_axes=flip_axes,
                           progress=lambda done, total: progress.update(done, total, "segmenting"), **extra)
    extra.clear()
    del x
    classes = resample_to(classes[core], model.spacing, src_spacing, order=0, shape=canon_shape)
    values = np.array([0] + [int(row["value"]) for row in model.labels])
    out_dtype = np.uint8 if values.max() < 256 else np.uint16 if values.max() < 65536 else np.int32
    if np.array_equal(values, np.arange(len(values))) and classes.dtype == out_dtype:
        lab = classes  # class index == label value: nothing to map
    else:
        lab = values.astype(out_dtype)[classes]
    lab = can.undo(lab)
    if not (lab.flags.c_contiguous or lab.flags.f_contiguous):
        lab = np.asfortranarray(lab)
    table = LabelTable([Label(int(r["value"]), str(r["name"]), tuple(r["color"])) for r in model.labels])
    name = f"{volume.name or 'scan'} · {model.plugin}"
    labels = LabelMap(lab, volume.affine.copy(), table, name=name,
                      meta={"prediction": True, "plugin": model.plugin})
    uncertainty = None
    if unc is not None:
        u = resample_to(unc[core], model.spacing, src_spacing, order=1, shape=canon_shape)
        uncertainty = Volume(np.asfortranarray(can.undo(u.astype(np.float32))), volume.affine.copy(),
                             name=f"{volume.name or 'scan'} · uncertainty",
                             meta={"uncertainty": "entropy of the flip-averaged softmax, nats"})
    return labels, uncertainty
