"""Learned point descriptors as colours: the first three principal components."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.analysis.descriptors import descriptor_colors

RNG = np.random.default_rng(0)


def _clusters(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Two clusters of descriptors far apart along one direction, a little noise elsewhere."""
    which = np.arange(400) % 2
    d = RNG.normal(scale=0.05, size=(400, channels)).astype(np.float32)
    d[:, 0] += np.where(which == 1, 3.0, -3.0)
    return d, which


@pytest.mark.parametrize("channels", [1, 2, 8, 32])
def test_clusters_get_apart_colours_and_each_one_colour(channels):
    d, which = _clusters(channels)
    c = descriptor_colors(d).astype(int)
    assert c.shape == (400, 3) and c.dtype == int
    a, b = c[which == 0].mean(0), c[which == 1].mean(0)
    assert np.abs(a - b).max() > 200  # the first component spans the colour range
    assert c[which == 0, 0].std() < 20 and c[which == 1, 0].std() < 20


def test_same_model_same_colours_whatever_the_component_sign():
    d, _ = _clusters(8)
    d[::2, 0] *= 2.0  # one cluster further out than the other: the sign rule has a side to pick
    np.testing.assert_array_equal(descriptor_colors(d), descriptor_colors(d.copy()))
    flipped = descriptor_colors(-d)
    # the sign of a principal component is arbitrary; the colours are made independent of it
    assert np.abs(flipped.astype(int) - descriptor_colors(d).astype(int)).max() <= 1


def test_millions_of_points_are_fitted_on_a_sample():
    d = RNG.normal(size=(1_000_000, 8)).astype(np.float32)
    c = descriptor_colors(d, sample=10_000)
    assert c.shape == (1_000_000, 3) and 100 < c.mean() < 156


@pytest.mark.parametrize("bad", [np.zeros((0, 8)), np.zeros(8)], ids=["empty", "1-d"])
def test_bad_shapes_say_so(bad):
    with pytest.raises(ValueError, match="descriptors must be"):
        descriptor_colors(bad)
