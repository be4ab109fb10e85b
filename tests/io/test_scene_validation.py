"""Scene files are validated as a whole before anything is built from them (issue 9).

Each row edits one field of a valid scene; ``read_scene`` must refuse it with one line naming
the file and the field. Display values that only the layer knows how to check are refused by
``restore_layers`` before the window replaces anything (the GUI side is tests/ui/test_window.py).
"""

from __future__ import annotations

import copy
import json
import os

import nibabel as nib
import numpy as np
import pytest

from viewer.io.scene_file import read_scene, restore_layers
from viewer.model.errors import LoadError


@pytest.fixture
def scene_dict(tmp_path) -> dict:
    img = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(64, dtype=np.int16).reshape(4, 4, 4), np.eye(4)), img)
    lab = tmp_path / "ct_seg.nii.gz"
    nib.save(nib.Nifti1Image((np.arange(64) % 3).astype(np.uint8).reshape(4, 4, 4), np.eye(4)), lab)
    return {
        "format": "lucid3d-scene", "version": 1,
        "layers": [
            {"source": str(img), "kind": "image", "as_labels": False, "series": None,
             "display": {"window": 400.0, "level": 40.0, "colormap": "gray", "visible": True}},
            {"source": str(lab), "kind": "labels", "as_labels": True, "series": None,
             "display": {"opacity": 0.5, "outline": False},
             "labels": [{"value": 1, "name": "liver", "color": [1, 0, 0], "visible": True, "opacity": 1.0}]},
        ],
        "cursor": [1.0, 2.0, 3.0], "selected": 0,
        "cameras": {"axial": {"focal": [0.0, 0.0, 0.0], "scale": 50.0},
                    "3d": {"position": [0, 0, 100], "focal": [0, 0, 0], "up": [0, 1, 0], "angle": 30.0,
                           "center": [0.0, 0.0]}},
    }


def _set(doc: dict, where: str, value) -> dict:
    doc = copy.deepcopy(doc)
    keys = [int(k) if k.isdigit() else k for k in where.split("/")]
    target = doc
    for k in keys[:-1]:
        target = target[k]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


_DELETE = object()

# (id, field to edit, new value, words the one-line message must contain)
DOCUMENT_CASES = [
    ("cursor-text", "cursor", "middle", "cursor"),
    ("cursor-two", "cursor", [1.0, 2.0], "cursor"),
    ("cursor-nan", "cursor", [1.0, float("nan"), 3.0], "cursor"),
    ("cursor-null-entry", "cursor", [1.0, None, 3.0], "cursor"),
    ("selected-text", "selected", "0", "selected"),
    ("selected-bool", "selected", True, "selected"),
    ("selected-out-of-range", "selected", 7, "selected"),
    ("selected-negative", "selected", -1, "selected"),
    ("version-text", "version", "1", "version"),
    ("version-newer", "version", 2, "newer"),
    ("layers-object", "layers", {"a": 1}, "layers"),
    ("layer-not-object", "layers/0", "ct.nii", "layers[0]"),
    ("source-missing", "layers/0/source", _DELETE, "layers[0].source"),
    ("source-number", "layers/0/source", 5, "layers[0].source"),
    ("kind-unknown", "layers/0/kind", "hologram", "layers[0].kind"),
    ("as-labels-text", "layers/1/as_labels", "yes", "layers[1].as_labels"),
    ("series-number", "layers/0/series", 3, "layers[0].series"),
    ("display-list", "layers/0/display", [1, 2], "layers[0].display"),
    ("labels-not-list", "layers/1/labels", {"value": 1}, "layers[1].labels"),
    ("label-color-short", "layers/1/labels/0/color", [1, 0], "color"),
    ("label-color-text", "layers/1/labels/0/color", "red", "color"),
    ("label-value-text", "layers/1/labels/0/value", "1", "value"),
    ("label-visible-text", "layers/1/labels/0/visible", "no", "visible"),
    ("label-opacity-big", "layers/1/labels/0/opacity", 3, "opacity"),
    ("cameras-list", "cameras", [], "cameras"),
    ("camera-3d-position-text", "cameras/3d/position", "here", "cameras.3d.position"),
    ("camera-3d-up-zero", "cameras/3d/up", [0, 0, 0], "cameras.3d.up"),
    ("camera-3d-angle-zero", "cameras/3d/angle", 0, "cameras.3d.angle"),
    ("camera-axial-scale-neg", "cameras/axial/scale", -5, "cameras.axial.scale"),
    ("camera-axial-focal-text", "cameras/axial/focal", "x", "cameras.axial.focal"),
    ("format-other", "format", "something-else", "not a Lucid3D scene"),
]


@pytest.mark.parametrize("where,value,words", [c[1:] for c in DOCUMENT_CASES], ids=[c[0] for c in DOCUMENT_CASES])
def test_bad_field_is_refused_with_one_line(scene_dict, tmp_path, where, value, words):
    path = tmp_path / "s.lucid3d.json"
    path.write_text(json.dumps(_set(scene_dict, where, value)))
    with pytest.raises(LoadError) as err:
        read_scene(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg


# display values the layers check themselves: refused by restore_layers, before any replacing
DISPLAY_CASES = [
    ("visible-no", 0, "visible", "no"),
    ("visible-number", 0, "visible", 1),
    ("window-zero", 0, "window", 0),
    ("window-text", 0, "window", "400"),
    ("level-nan", 0, "level", float("nan")),
    ("colormap-unknown", 0, "colormap", "rainbow"),
    ("opacity-big", 1, "opacity", 2.0),
    ("outline-text", 1, "outline", "false"),
    ("name-number", 0, "name", 5),
]


@pytest.mark.parametrize("index,key,value", [c[1:] for c in DISPLAY_CASES], ids=[c[0] for c in DISPLAY_CASES])
def test_bad_display_value_is_refused_before_building(scene_dict, tmp_path, index, key, value):
    path = tmp_path / "s.lucid3d.json"
    path.write_text(json.dumps(_set(scene_dict, f"layers/{index}/display/{key}", value)))
    data = read_scene(path)
    with pytest.raises(LoadError) as err:
        restore_layers(data, path=path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"layers[{index}].display.{key}" in msg, msg


def test_valid_scene_restores(scene_dict, tmp_path):
    path = tmp_path / "s.lucid3d.json"
    path.write_text(json.dumps(scene_dict))
    image, labels = restore_layers(read_scene(path), path=path)
    assert image.window == 400.0 and image.level == 40.0
    assert labels.opacity == 0.5 and labels.data.table[1].name == "liver"


def test_fifo_and_huge_scene_files_are_refused(tmp_path):
    fifo = tmp_path / "s.lucid3d.json"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="not a regular file"):
        read_scene(fifo)  # would block for ever if opened
    big = tmp_path / "big.lucid3d.json"
    with open(big, "wb") as fh:
        fh.truncate(17 << 20)
    with pytest.raises(LoadError, match="too large"):
        read_scene(big)


def test_deeply_nested_json_is_one_line(tmp_path):
    path = tmp_path / "deep.lucid3d.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(LoadError):
        read_scene(path)


def test_demo_sources_need_the_resolver_the_app_passes_in():
    from viewer.samples.registry import demo_source
    from viewer.io.scene_file import load_source

    entry = {"source": "demo:default/0"}
    with pytest.raises(LoadError, match="demo"):
        load_source(entry)  # the io room alone never reaches the demo generators
    vol = load_source(entry, demo=demo_source)
    assert vol.source == "demo:default/0" and vol.array.ndim == 3


@pytest.mark.parametrize("value,words", [("ruler", "measurements"), ([{"kind": "angle"}], "measurements[0]"),
                                         ([{"kind": "region", "center": [0, 0, 0], "radius_mm": 0}], "measurements[0]")],
                         ids=["not-a-list", "unknown-kind", "zero-radius"])
def test_bad_measurements_in_a_scene_are_refused(scene_dict, tmp_path, value, words):
    path = tmp_path / "s.lucid3d.json"
    path.write_text(json.dumps(_set(scene_dict, "measurements", value)))
    with pytest.raises(LoadError) as err:
        read_scene(path)
    assert words in str(err.value) and str(path) in str(err.value)


def test_measurements_are_saved_and_restored(scene_dict, tmp_path):
    from viewer.io.scene_file import restore_measurements, save_scene
    from viewer.model import Scene
    from viewer.model.measure import Region, Ruler

    path = tmp_path / "s.lucid3d.json"
    path.write_text(json.dumps(scene_dict))
    layers = restore_layers(read_scene(path), path=path)
    scene = Scene()
    for layer in layers:
        scene.add(layer)
    scene.add_measurement(Ruler((0, 0, 0), (3, 4, 0), "r"))
    scene.add_measurement(Region((1.5, 1.5, 1.5), 1.2, "roi"))
    out = tmp_path / "saved.lucid3d.json"
    save_scene(scene, out)
    data = read_scene(out)
    ruler, region = restore_measurements(data, restore_layers(data, path=out))
    assert ruler.length_mm == 5.0 and region.radius_mm == 1.2 and region.stats["voxels"] > 0
