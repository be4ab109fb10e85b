"""bench/nr_error_regions.py's regions: rings around a known silhouette (scipy's iterations=0
means "until nothing changes", so ring 1 must not be made with it)."""

import numpy as np
import pytest

from bench.nr_error_regions import regions


@pytest.mark.parametrize("rings", [1, 2, 3])
def test_rings_partition_the_band_around_a_square(rings):
    alpha = np.zeros((1, 32, 32), np.float32)
    alpha[0, 10:20, 8:24] = 1.0  # a 10 x 16 rectangle
    gt = np.ones((1, 32, 32, 3))
    m = regions(alpha, gt, rings)
    inside = [m[f"ring {k} inside"] for k in range(1, rings + 1)]
    outside = [m[f"ring {k} outside"] for k in range(1, rings + 1)]
    # scipy's default structure is the cross: ring 1 inside is the rectangle's rim of 1 pixel
    assert inside[0].sum() == 2 * 10 + 2 * 16 - 4
    assert outside[0].sum() == 2 * 10 + 2 * 16  # the cross dilation leaves the corners out
    every = np.stack(inside + outside + [m["interior"], m["background"]])
    assert (every.sum(0) == 1).all(), "rings, interior and background cover each pixel once"
    assert m["interior"].sum() == (10 - 2 * rings) * (16 - 2 * rings)
