"""Demo scenes: generated or shipped data only, restorable from their ``demo:`` sources."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.demos import DEMOS, demo_objects, demo_source
from viewer.model import LoadError


@pytest.mark.parametrize("name", DEMOS)
def test_demo_objects_have_restorable_sources(name):
    objs = demo_objects(name)
    assert objs
    for i, (obj, display) in enumerate(objs):
        assert obj.source == f"demo:{name}/{i}"
    again = demo_source(objs[0][0].source)
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(objs[0][0].array))


def test_unknown_demo_source():
    with pytest.raises(LoadError):
        demo_source("demo:nosuch/0")
