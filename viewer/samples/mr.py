"""What the MR samples (the MNI152 template and its deep-grey subject, the frog) share: smooth random
fields, the artefacts an MR scanner adds, and how their arrays become a labelled :class:`Case`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..model.labels import Label, LabelMap, LabelTable
from ..model.volume import Volume
from ..plugins import Case

__all__ = ["smooth_field", "mr_scanner", "mr_case"]


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cell: int) -> np.ndarray:
    """A smooth random field in [-1, 1] (cubic upsampling of a grid of one value per ``cell`` voxels)."""
    coarse = rng.uniform(-1.0, 1.0, tuple(max(2, s // cell + 2) for s in shape)).astype(np.float32)
    f = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=3, grid_mode=True, mode="nearest")
    f = f[tuple(slice(0, s) for s in shape)]
    return f / max(float(np.abs(f).max()), 1e-6)


def mr_scanner(rng: np.random.Generator, image: np.ndarray, noise_sd: float, bias: float = 0.12) -> np.ndarray:
    """What an MR scanner adds: a smooth multiplicative bias field and Rician noise."""
    image = image * np.exp(bias * smooth_field(rng, image.shape, 40))
    n1 = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
    n2 = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
    return np.sqrt((image + n1) ** 2 + n2 ** 2).astype(np.float32)


def mr_case(image: np.ndarray, labels: np.ndarray, affine: np.ndarray, *, name: str, image_name: str,
            labels_name: str, meta: dict, names: dict[int, str],
            colours: dict[int, tuple[float, float, float]]) -> Case:
    """A Case of an (I, J, K) MR ``image`` and its uint8 ``labels`` on the grid ``affine`` (voxel ->
    RAS mm), each layer with its own copy of the affine and of ``meta``; the label table from
    ``names`` and ``colours`` (value -> RGB 0..1). The arrays are shared, not copied."""
    volume = Volume(image, affine.copy(), modality="MR", name=image_name, meta=dict(meta))
    table = LabelTable([Label(v, n, colours[v]) for v, n in names.items()])
    return Case(volume, LabelMap(labels, affine.copy(), table, name=labels_name, meta=dict(meta)), name=name)
