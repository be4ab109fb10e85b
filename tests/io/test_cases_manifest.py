"""``cases.json`` (viewer.io.case_manifest): the manifest classifiers and detectors train on.

* A good manifest reads back as written: labels, boxes (RAS mm), images loaded with their grid,
  relative paths resolved against the manifest's folder, a missing ``boxes`` key kept as None.
* Every bad manifest is one LoadError line naming the manifest (or the image it names): not
  JSON, not a list, a malformed case, a missing image, a malformed box, a box outside its
  image, one class only, images of mixed modality, a detector's case without boxes, a FIFO.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from viewer.io.case_manifest import image_extent, read_manifest, write_manifest
from viewer.model.errors import LoadError

SHAPE = (10, 12, 8)
AFFINE = np.array([[-2.0, 0, 0, 30], [0, -2.0, 0, 20], [0, 0, 2.5, -10], [0, 0, 0, 1]])
INSIDE = [15.0, 0.0, -5.0, 20.0, 5.0, 0.0]  # RAS mm, within the grid's extent
OUTSIDE = [15.0, 0.0, -5.0, 20.0, 5.0, 30.0]  # superior end past the top face (s up to 10 + 1.25)


def _ct(path: Path, seed: int = 0) -> str:
    """A small CT-like NIfTI (its description says CT)."""
    rng = np.random.default_rng(seed)
    img = nib.Nifti1Image(rng.integers(-100, 100, SHAPE).astype(np.int16), AFFINE)
    img.header["descrip"] = b"CT (Hounsfield units)"
    nib.save(img, str(path))
    return path.name


def _mr(path: Path) -> str:
    """An MR-like NIfTI: positive values, no CT description."""
    nib.save(nib.Nifti1Image(np.full(SHAPE, 300.0, np.float32), AFFINE), str(path))
    return path.name


def test_extent_is_the_outer_voxel_faces():
    lo, hi = image_extent(SHAPE, AFFINE)
    assert np.allclose(lo, [30 - 2 * 9.5, 20 - 2 * 11.5, -10 - 1.25]) and np.allclose(hi, [31, 21, -10 + 2.5 * 7.5])


def test_good_manifest_reads_back(tmp_path):
    sub = tmp_path / "crops"
    sub.mkdir()
    a, b = _ct(sub / "a.nii.gz"), _ct(sub / "b.nii.gz", 1)
    path = write_manifest(tmp_path / "cases.json", [
        {"image": f"crops/{a}", "label": "lesion", "boxes": [INSIDE]},
        {"image": f"crops/{b}", "label": "no lesion"}])
    cases = read_manifest(path)
    assert [c.label for c in cases] == ["lesion", "no lesion"]
    assert cases[0].boxes == [tuple(INSIDE)] and cases[1].boxes is None
    assert cases[0].path == sub / a and cases[0].image.shape == SHAPE
    assert np.allclose(cases[0].image.affine, AFFINE) and cases[0].image.modality == "CT"


def _manifest(tmp_path: Path, case: str) -> tuple[Path, dict]:
    """A manifest with one thing wrong; read_manifest's keyword arguments for the case."""
    a, b = _ct(tmp_path / "a.nii.gz"), _ct(tmp_path / "b.nii.gz", 1)
    good = [{"image": a, "label": "lesion", "boxes": [INSIDE]}, {"image": b, "label": "none", "boxes": []}]
    rows: object = good
    kwargs: dict = {}
    path = tmp_path / "cases.json"
    if case == "not_json":
        path.write_text("[{'image': 1")
        return path, kwargs
    if case == "fifo":
        os.mkfifo(path)
        return path, kwargs
    if case == "missing_manifest":
        return tmp_path / "nothere.json", kwargs
    if case == "not_a_list":
        rows = {"image": a}
    elif case == "empty":
        rows = []
    elif case == "not_an_object":
        rows = good + ["c.nii.gz"]
    elif case == "unknown_key":
        rows = [good[0], {**good[1], "box": []}]
    elif case == "no_label":
        rows = [good[0], {"image": b, "boxes": []}]
    elif case == "missing_file":
        rows = good + [{"image": "gone.nii.gz", "label": "none", "boxes": []}]
    elif case == "box_five_numbers":
        rows = [{**good[0], "boxes": [INSIDE[:5]]}, good[1]]
    elif case == "box_inverted":
        rows = [{**good[0], "boxes": [INSIDE[3:] + INSIDE[:3]]}, good[1]]
    elif case == "box_infinite":
        path.write_text(json.dumps([{**good[0], "boxes": [INSIDE[:5] + [1e999]]}, good[1]]))
        return path, kwargs
    elif case == "box_outside":
        rows = [{**good[0], "boxes": [OUTSIDE]}, good[1]]
    elif case == "one_class":
        rows = [good[0], {**good[1], "label": "lesion"}]
    elif case == "mixed_modality":
        rows = [good[0], {**good[1], "image": _mr(tmp_path / "mr.nii.gz")}]
    elif case == "not_a_volume":
        (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti at all" * 30)
        rows = [good[0], {**good[1], "image": "junk.nii.gz"}]
    elif case == "detector_without_boxes":
        rows = [good[0], {"image": b, "label": "none"}]
        kwargs = {"need_boxes": True}
    path.write_text(json.dumps(rows))
    return path, kwargs


@pytest.mark.parametrize("case, fragment", [
    ("missing_manifest", "no such file"),
    ("fifo", "not a regular file"),
    ("not_json", "not JSON"),
    ("not_a_list", "non-empty JSON list"),
    ("empty", "non-empty JSON list"),
    ("not_an_object", "case 3: each case is an object"),
    ("unknown_key", "case 2: unknown key 'box'"),
    ("no_label", "case 2 (b.nii.gz): 'label' must be a class name"),
    ("missing_file", "case 3: gone.nii.gz: no such file"),
    ("box_five_numbers", "box 1: a box is 6 numbers"),
    ("box_inverted", "min corner comes first"),
    ("box_infinite", "finite numbers"),
    ("box_outside", "lies outside the image"),
    ("one_class", "one class only"),
    ("mixed_modality", "mixed modality: case 1 (a.nii.gz) is CT, case 2 (mr.nii.gz) is unknown"),
    ("not_a_volume", "junk.nii.gz"),
    ("detector_without_boxes", "case 2 (b.nii.gz): no 'boxes'"),
])
def test_bad_manifest_is_one_line(tmp_path, case, fragment):
    path, kwargs = _manifest(tmp_path, case)
    with pytest.raises(LoadError) as err:
        read_manifest(path, **kwargs)
    text = str(err.value)
    assert fragment in text and "\n" not in text
    named = Path(err.value.path).name
    assert named in (path.name, "junk.nii.gz"), text  # the manifest, or the image it names


def test_write_manifest_refuses_a_bad_row_and_writes_nothing(tmp_path):
    with pytest.raises(LoadError, match="box 1"):
        write_manifest(tmp_path / "cases.json", [{"image": "a.nii.gz", "label": "x", "boxes": [[1, 2, 3]]}])
    assert list(tmp_path.iterdir()) == []
