"""The model room: geometry, label volumes in mL, layer properties (check, store, emit), scene."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model import (ImageLayer, LabelLayer, LabelMap, Mesh, MeshLayer, PointCloud, PointsLayer,
                          Scene, Volume, axcodes, layer_for)


@pytest.mark.parametrize("diag, expected", [
    ((1, 1, 1), "RAS"), ((-1, -1, 1), "LPS"), ((-1, 1, -1), "LAI"), ((2, -0.5, 3), "RPS"),
])
def test_axcodes_diagonal(diag, expected):
    assert axcodes(np.diag([*diag, 1.0])) == expected


def test_axcodes_permuted_and_oblique():
    # voxel axis 0 runs superior, 1 runs right, 2 runs posterior (a sagittal acquisition)
    m = np.zeros((4, 4))
    m[2, 0], m[0, 1], m[1, 2], m[3, 3] = 1.0, 1.0, -1.0, 1.0
    assert axcodes(m) == "SRP"
    th = np.deg2rad(25)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    assert axcodes(rot @ np.diag([-1, -1, 1, 1.0])) == "LPS"


def test_volume_world_round_trip():
    aff = np.array([[0.0, -0.8, 0, 10], [0.7, 0, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    v = Volume(np.zeros((5, 6, 7), np.float32), aff)
    ijk = np.array([[1.5, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(v.world_to_index(v.index_to_world(ijk)), ijk, atol=1e-12)
    assert v.spacing == pytest.approx((0.7, 0.8, 2.5))
    assert v.voxel_ml == pytest.approx(0.7 * 0.8 * 2.5 / 1000)


def test_volume_rejects_singular_affine():
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), np.zeros((4, 4)))


def test_stats_ignore_nan_and_inf():
    a = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    a[0, 0, :3] = [np.nan, np.inf, -np.inf]
    st = Volume(a, np.eye(4)).stats()
    assert st["min"] == 3.0 and st["max"] == 999.0
    assert np.isfinite(st["p_low"]) and np.isfinite(st["p_high"])


def test_label_volumes_ml_match_numpy():
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 4, (20, 18, 9)).astype(np.uint8)
    aff = np.diag([0.9, 1.1, 3.0, 1.0])
    lm = LabelMap(arr, aff)
    ml = lm.volumes_ml()
    for v in (1, 2, 3):
        assert ml[v] == pytest.approx((arr == v).sum() * 0.9 * 1.1 * 3.0 / 1000, rel=1e-12)
    assert [lab.value for lab in lm.table] == [1, 2, 3]


def test_labelmap_from_float_volume_refuses_fractions():
    with pytest.raises(ValueError, match="non-integer"):
        LabelMap.from_volume(Volume(np.full((2, 2, 2), 0.5), np.eye(4)))
    lm = LabelMap.from_volume(Volume(np.full((2, 2, 2), 2.0), np.eye(4)))
    assert lm.array.dtype.kind == "i" and lm.voxel_counts() == {2: 8}


@pytest.mark.parametrize("layer_factory, prop, good, bad", [
    (lambda: ImageLayer(Volume(np.zeros((2, 2, 2)), np.eye(4))), "opacity", 0.3, 1.5),
    (lambda: ImageLayer(Volume(np.zeros((2, 2, 2)), np.eye(4))), "window", 80.0, -1.0),
    (lambda: ImageLayer(Volume(np.zeros((2, 2, 2)), np.eye(4))), "colormap", "hot", "rainbowish"),
    (lambda: ImageLayer(Volume(np.zeros((2, 2, 2)), np.eye(4))), "render_mode", "mip", "fancy"),
    (lambda: PointsLayer(PointCloud(np.zeros((3, 3)))), "point_size", 5.0, 0.0),
    (lambda: MeshLayer(Mesh(np.zeros((3, 3)), [[0, 1, 2]])), "color", (1, 0, 0), (2, 0, 0)),
])
def test_layer_properties_check_store_emit(layer_factory, prop, good, bad):
    layer = layer_factory()
    seen = []
    getattr(layer.events, prop).connect(seen.append)
    setattr(layer, prop, good)
    setattr(layer, prop, good)  # unchanged: no second event
    assert len(seen) == 1
    with pytest.raises(ValueError):
        setattr(layer, prop, bad)
    assert getattr(layer, prop) == (tuple(good) if isinstance(good, tuple) else good)


def test_display_state_round_trip():
    layer = ImageLayer(Volume(np.zeros((2, 2, 2)), np.eye(4)), window=300, level=20, colormap="bone")
    other = ImageLayer(Volume(np.zeros((2, 2, 2)), np.eye(4)))
    other.apply_display_state(layer.display_state())
    assert other.display_state() == layer.display_state()


def test_label_table_edit_emits_on_layer():
    lm = LabelMap(np.array([[[0, 1], [2, 2]]], np.uint8), np.eye(4))
    layer = LabelLayer(lm)
    seen = []
    layer.events.table.connect(seen.append)
    lm.table.set(2, color=(1, 0, 0), opacity=0.25)
    assert seen == [2] and lm.table[2].opacity == 0.25
    with pytest.raises(ValueError):
        lm.table.set(1, opacity=2)


def test_scene_order_cursor_and_unique_names():
    scene = Scene()
    events = []
    scene.layer_inserted.connect(lambda i, l: events.append(("in", i, l.name)))
    scene.cursor_changed.connect(lambda c: events.append(("cursor", tuple(c))))
    a = scene.add(layer_for(Volume(np.zeros((3, 3, 3)), np.eye(4), name="ct")))
    b = scene.add(layer_for(Volume(np.zeros((3, 3, 3)), np.eye(4), name="ct")))
    assert [l.name for l in scene] == ["ct", "ct [2]"]
    assert ("cursor", (1.0, 1.0, 1.0)) in events  # the first volume centres the crosshair
    scene.move(b, 0)
    assert list(scene) == [b, a]
    assert scene.reference_image() is b
    scene.remove(b)
    assert scene.selected is a
    with pytest.raises(ValueError):
        scene.cursor = [np.nan, 0, 0]
