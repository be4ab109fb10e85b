"""Rulers and regions of interest: lengths in mm, statistics of the voxels inside a sphere."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model import Volume
from viewer.model.measure import Region, Ruler, measurement_from_dict


def test_ruler_length_in_mm():
    assert Ruler((0, 0, 0), (3, 4, 12)).length_mm == pytest.approx(13.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5)])
def test_region_statistics_match_a_direct_computation(spacing):
    rng = np.random.default_rng(1)
    arr = rng.normal(40, 10, (60, 60, 30)).astype(np.float32)
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = (-20, 10, 5)
    vol = Volume(arr, aff, modality="CT")
    center, r = np.array([1.0, 30.0, 20.0]), 8.0
    s = Region(tuple(center), r).measure(vol)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in arr.shape], indexing="ij"), -1)
    world = ijk * np.array(spacing) + aff[:3, 3]
    inside = np.linalg.norm(world - center, axis=-1) <= r
    vals = arr[inside]
    assert s["voxels"] == inside.sum() > 100
    assert s["mean"] == pytest.approx(vals.mean(), rel=1e-5) and s["sd"] == pytest.approx(vals.std(), rel=1e-4)
    assert s["min"] == pytest.approx(vals.min()) and s["max"] == pytest.approx(vals.max())
    assert s["volume_ml"] == pytest.approx(inside.sum() * np.prod(spacing) / 1000) and s["unit"] == "HU"
    assert s["volume_ml"] == pytest.approx(4 / 3 * np.pi * r ** 3 / 1000, rel=0.1)


BAD = [
    ({"kind": "ruler", "p0": [0, 0], "p1": [1, 1, 1]}, "p0"),
    ({"kind": "ruler", "p0": [0, 0, "x"], "p1": [1, 1, 1]}, "p0"),
    ({"kind": "ruler", "p0": [0, 0, 0], "p1": [1, 1, float("nan")]}, "p1"),
    ({"kind": "region", "center": [0, 0, 0], "radius_mm": -1}, "radius"),
    ({"kind": "region", "center": [0, 0, 0], "radius_mm": "5"}, "radius"),
    ({"kind": "angle"}, "kind"),
    ([1, 2], "object"),
    ({"kind": "ruler", "p0": [0, 0, 0], "p1": [1, 1, 1], "name": 3}, "name"),
]


@pytest.mark.parametrize("d,words", BAD)
def test_bad_measurements_are_refused(d, words):
    with pytest.raises(ValueError, match=words):
        measurement_from_dict(d)


def test_round_trip():
    for m in (Ruler((1, 2, 3), (4, 5, 6), "a"), Region((1, 2, 3), 4.5, "b")):
        back = measurement_from_dict(m.to_dict())
        assert back.to_dict() == m.to_dict()
