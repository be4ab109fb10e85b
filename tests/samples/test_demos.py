"""Demo scenes: generated or shipped data only, restorable from their ``demo:`` sources."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.samples.registry import DEMOS, demo_objects, demo_source
from viewer.model import LoadError


@pytest.mark.parametrize("name", DEMOS)
def test_demo_objects_have_restorable_sources(name):
    objs = demo_objects(name)
    assert objs
    for i, (obj, display) in enumerate(objs):
        assert obj.source == f"demo:{name}/{i}"
    for i in range(len(objs)):
        again, first = demo_source(objs[i][0].source), objs[i][0]
        assert type(again) is type(first)
        if hasattr(first, "array"):
            np.testing.assert_array_equal(np.asarray(again.array), np.asarray(first.array))
        elif hasattr(first, "frames"):  # a view set: same cameras, same photos
            assert [f.name for f in again.frames] == [f.name for f in first.frames]
            np.testing.assert_allclose(again.frames[0].camera.c2w, first.frames[0].camera.c2w)
            np.testing.assert_array_equal(again.frames[-1].rgba, first.frames[-1].rgba)
        elif hasattr(first, "corners"):  # detection boxes
            np.testing.assert_array_equal(again.corners, first.corners)
        else:  # a mesh or a point cloud
            np.testing.assert_array_equal(again.points, first.points)


def test_rendering_demo_is_a_specular_capture_with_its_mesh():
    from viewer.model import Mesh, ViewSet

    (mesh, _), (views, _) = demo_objects("rendering")
    assert isinstance(mesh, Mesh) and mesh.uv is not None and mesh.texture is not None
    assert isinstance(views, ViewSet) and len(views.split("train")) == 100 and len(views.split("test")) == 20
    assert views.frames[0].rgba.shape == (256, 256, 4)


def test_unknown_demo_source():
    with pytest.raises(LoadError):
        demo_source("demo:nosuch/0")
