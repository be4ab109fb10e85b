"""The lesion crops (viewer.samples.lesions): where a lesion lies and what tells the two kinds apart.

* A lesion lies all round inside a solid organ (liver, spleen or kidney) of its phantom patient,
  never across an organ's border into fat, bone or bowel.
* A positive and a negative crop of one seed are the same crop but for the lesion: the difference
  is a sphere of the recorded radius at the recorded centre, 25-45 HU at its core, nothing beyond
  its partial-volume edge; so anatomy alone cannot tell the two kinds apart.
* Crops are deterministic, the box is the sphere's bounding box inside the crop, and the training,
  test and held-aside seeds never meet.
"""

from __future__ import annotations

import numpy as np
import pytest

from viewer.samples.lesions import (HOLDOUT_SEED, LESION, NO_LESION, TEST_SEED, TRAIN_SEED, _PHANTOM_SHAPE,
                                    lesion_crop)
from viewer.samples.phantom import KIDNEYS, LIVER, SPLEEN, ct_phantom

SPACING = 1.5
HOSTS = {"liver": LIVER, "spleen": SPLEEN, "kidney": KIDNEYS}


def _centre_ijk(volume, ras) -> np.ndarray:
    return (np.linalg.inv(volume.affine) @ np.append(np.asarray(ras, float), 1.0))[:3]


@pytest.mark.parametrize("seed", [TRAIN_SEED, TRAIN_SEED + 2, TEST_SEED + 4, HOLDOUT_SEED + 6], ids=lambda s: f"seed{s}")
def test_lesion_lies_inside_its_organ(seed):
    crop = lesion_crop(seed, True)
    assert crop.label == LESION and crop.host in HOSTS and len(crop.centers) == 1
    phantom, labels = ct_phantom(_PHANTOM_SHAPE, (SPACING,) * 3, seed, anatomy="varied")
    centre = _centre_ijk(phantom, crop.centers[0])
    grid = np.indices(labels.shape).reshape(3, -1).T
    inside = grid[np.linalg.norm(grid - centre, axis=1) * SPACING <= crop.radii[0] + SPACING]
    assert len(inside) > 20
    # the sphere and its partial-volume edge: every voxel the host organ's
    assert np.all(np.asarray(labels.array)[tuple(inside.T)] == HOSTS[crop.host])


@pytest.mark.parametrize("seed, crop_size", [(TRAIN_SEED + 1, 32), (TEST_SEED + 3, 32), (TRAIN_SEED + 5, 16)],
                         ids=["train-32", "test-32", "train-16"])
def test_positive_and_negative_differ_by_the_lesion_alone(seed, crop_size):
    pos, neg = lesion_crop(seed, True, crop=crop_size), lesion_crop(seed, False, crop=crop_size)
    assert neg.label == NO_LESION and not neg.boxes and neg.host == pos.host
    assert np.array_equal(pos.volume.affine, neg.volume.affine) and pos.volume.shape == (crop_size,) * 3
    diff = np.asarray(pos.volume.array, float) - np.asarray(neg.volume.array, float)
    centre, radius = _centre_ijk(pos.volume, pos.centers[0]), pos.radii[0]
    d = np.linalg.norm(np.indices(diff.shape).reshape(3, -1).T - centre, axis=1).reshape(diff.shape) * SPACING
    assert 3.0 <= radius <= 6.0
    assert np.all(diff[d > radius + SPACING] == 0)  # nothing beyond the partial-volume edge
    core = diff[d <= radius - SPACING]
    assert core.size and 25 - 1 <= core.min() and core.max() <= 45 + 1  # rounding to integer HU
    # the whole sphere in the crop, and its box the sphere's bounds
    assert np.all(centre - radius / SPACING >= -0.5) and np.all(centre + radius / SPACING <= crop_size - 0.5)
    box = np.asarray(pos.boxes[0])
    assert np.allclose(box[3:] - box[:3], 2 * radius) and np.allclose((box[:3] + box[3:]) / 2, pos.centers[0])


def test_deterministic_and_seeds_disjoint():
    a, b = lesion_crop(7, True, crop=16), lesion_crop(7, True, crop=16)
    assert np.array_equal(a.volume.array, b.volume.array) and a.boxes == b.boxes
    assert not np.array_equal(lesion_crop(8, True, crop=16).volume.array, a.volume.array)
    assert TRAIN_SEED + 50_000 <= TEST_SEED and TEST_SEED + 40_000 <= HOLDOUT_SEED
