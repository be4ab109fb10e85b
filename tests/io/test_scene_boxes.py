"""Detection boxes in scene files: a boxes layer has no file behind it, so its entry holds the boxes
(RAS mm, score, label) and its display state; it is restored exactly, next to a file-backed image,
and a malformed entry is refused with one line naming the file and the field."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from viewer.io import load_path
from viewer.io.scene_file import read_scene, restore_layers, save_scene
from viewer.model import Boxes, BoxesLayer, Scene, layer_for
from viewer.model.errors import LoadError

BOXES = [[-10.0, -8.0, -5.0, 10.0, 5.5, 5.0], [12.25, 0.0, 1.0, 20.0, 7.0, 9.5]]


def _scene(tmp_path) -> Scene:
    img = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.diag([4.0, 4.0, 4.0, 1.0])), img)
    scene = Scene()
    scene.add(layer_for(load_path(img)))
    layer = BoxesLayer(Boxes(BOXES, [0.91, 0.375], ["lesion", ""]), name="detections",
                       min_score=0.25, show_scores=False, opacity=0.6, selected_box=1)
    scene.add(layer)
    return scene


def test_boxes_layer_round_trips(tmp_path):
    scene = _scene(tmp_path)
    path = tmp_path / "s.lucid3d.json"
    save_scene(scene, path)
    entry = json.loads(path.read_text())["layers"][1]
    assert entry["kind"] == "boxes" and "source" not in entry  # the boxes themselves, no file
    layers = restore_layers(read_scene(path), path=path)
    old, new = scene[1], layers[1]
    assert isinstance(new, BoxesLayer)
    np.testing.assert_array_equal(new.data.corners, old.data.corners)
    np.testing.assert_array_equal(new.data.scores, old.data.scores)
    assert new.data.labels == ["lesion", ""]
    assert new.display_state() == old.display_state()
    assert (new.name, new.min_score, new.show_scores, new.opacity, new.selected_box) == \
        ("detections", 0.25, False, 0.6, 1)


@pytest.mark.parametrize("edit, words", [
    (lambda e: e.update(boxes="nope"), "layers[1].boxes: boxes must be a list"),
    (lambda e: e["boxes"][0].update(box=[1, 2, 3]), "layers[1].boxes: box 1: a box is 6 numbers"),
    (lambda e: e["boxes"][1].update(box=[5, 0, 0, 1, 1, 1]), "layers[1].boxes: box 2: a box's min corner"),
    (lambda e: e["boxes"][0].update(score=1.5), "layers[1].boxes: box 1: score must be a number within 0..1"),
    (lambda e: e["boxes"][0].update(label=7), "layers[1].boxes: box 1: label must be text"),
    (lambda e: e["display"].update(selected_box=5), "layers[1].display.selected_box"),
    (lambda e: e["display"].update(min_score=-1), "layers[1].display.min_score"),
], ids=["not-a-list", "five-numbers", "min-above-max", "score-above-one", "label-not-text", "selected-out-of-range",
        "negative-threshold"])
def test_bad_boxes_entry_is_one_line(tmp_path, edit, words):
    path = tmp_path / "s.lucid3d.json"
    save_scene(_scene(tmp_path), path)
    data = json.loads(path.read_text())
    edit(data["layers"][1])
    path.write_text(json.dumps(data))
    with pytest.raises(LoadError) as err:
        restore_layers(read_scene(path), path=path)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message, message
