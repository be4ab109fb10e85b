"""Label names and colours survive: ITK-SNAP label descriptions and Slicer colour tables are read,
written, round-tripped, and picked up beside a mask (issue: clinician workflow)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from viewer.io import load_path
from viewer.io.labelfiles import (find_sidecar, read_label_file, sidecar_path, write_itksnap_labels,
                                  write_slicer_ctbl)
from viewer.model import LoadError
from viewer.model.labels import Label, LabelTable

ITKSNAP = '''################################################
# ITK-SnAP Label Description File
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "Left caudate"
    2     0  255    0      0.5  0  1    "Right \\"putamen\\""
   17    10   20   30        1  1  1    "Hippocampus L"
'''
SLICER = '''# Color table file /tmp/x.ctbl
# 4 values
0 Background 0 0 0 0
1 Left_caudate 255 0 0 255
2 Right_putamen 0 255 0 128
17 Hippocampus_L 10 20 30 255
'''


def test_reads_itksnap_descriptions(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text(ITKSNAP)
    t = read_label_file(p)
    assert [l.value for l in t] == [1, 2, 17]
    assert t[1].name == "Left caudate" and t[1].color == (1.0, 0.0, 0.0) and t[1].visible
    assert t[2].name == 'Right "putamen"' and t[2].opacity == 0.5 and not t[2].visible
    assert t[17].color == pytest.approx((10 / 255, 20 / 255, 30 / 255))


def test_reads_slicer_colour_tables(tmp_path):
    p = tmp_path / "m.ctbl"
    p.write_text(SLICER)
    t = read_label_file(p)
    assert [l.value for l in t] == [1, 2, 17]
    assert t[1].name == "Left_caudate" and t[2].opacity == pytest.approx(128 / 255)


@pytest.mark.parametrize("writer", [write_itksnap_labels, write_slicer_ctbl], ids=["itksnap", "slicer"])
def test_round_trip(tmp_path, writer):
    table = LabelTable([Label(1, "left caudate", (1.0, 0.0, 0.0)), Label(5, "thalamus", (0.2, 0.4, 0.6), True, 0.6),
                        Label(300, "lesion", (0.0, 0.0, 1.0))])
    p = writer(table, tmp_path / ("m.ctbl" if writer is write_slicer_ctbl else "m.txt"))
    back = read_label_file(p)
    assert [l.value for l in back] == [1, 5, 300]
    for a in table:
        b = back[a.value]
        assert b.name.replace("_", " ") == a.name
        assert b.color == pytest.approx(a.color, abs=1 / 255)
        assert b.opacity == pytest.approx(a.opacity, abs=1 / 255)


BAD = [
    ("not-numbers", "1 caudate red green blue 255\n", "colour"),
    ("value-text", 'x 255 0 0 1 1 1 "a"\n', "value"),
    ("too-few-fields", "1 caudate 255 0\n", "expected"),
    ("colour-range", "1 caudate 300 0 0 255\n", "0..255"),
    ("duplicate", "1 a 1 2 3 255\n1 b 1 2 3 255\n", "twice"),
    ("opacity-range", '1 255 0 0 7 1 1 "a"\n', "opacity"),
    ("unbalanced-quote", '1 255 0 0 1 1 1 "a\n', "quotes"),
    ("only-background", "0 Background 0 0 0 0\n", "no labels"),
    ("negative-value", "-4 a 1 2 3 255\n", "range"),
]


@pytest.mark.parametrize("text,words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_label_files_are_one_line_errors(tmp_path, text, words):
    p = tmp_path / "m.txt"
    p.write_text(text)
    with pytest.raises(LoadError) as err:
        read_label_file(p)
    assert str(p) in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


def test_fifo_label_file_is_refused(tmp_path):
    p = tmp_path / "m.txt"
    os.mkfifo(p)
    with pytest.raises(LoadError, match="not a regular file"):
        read_label_file(p)


def _mask(tmp_path):
    arr = np.zeros((6, 6, 6), np.uint8)
    arr[1:3, 1:3, 1:3] = 1
    arr[4:, 4:, 4:] = 2
    arr[0, 5, 5] = 9  # a value the label file does not name
    p = tmp_path / "case_seg.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), p)
    return p


@pytest.mark.parametrize("name,text", [("case_seg.txt", ITKSNAP), ("case_seg.ctbl", SLICER),
                                       ("case_seg.label.txt", ITKSNAP)], ids=["itksnap", "slicer", "label-txt"])
def test_opening_a_mask_picks_up_its_sidecar(tmp_path, name, text):
    mask = _mask(tmp_path)
    (tmp_path / name).write_text(text)
    assert find_sidecar(mask) == tmp_path / name
    labels = load_path(mask, as_labels=True)
    assert labels.table[1].name in ("Left caudate", "Left_caudate")
    assert labels.table[9].name == "label 9"  # unnamed values keep a default entry
    assert labels.meta["label_file"] == str(tmp_path / name)


def test_a_broken_sidecar_does_not_stop_the_mask(tmp_path):
    mask = _mask(tmp_path)
    (tmp_path / "case_seg.txt").write_text("1 caudate red green blue 255\n")
    labels = load_path(mask, as_labels=True)
    assert labels.table[1].name == "label 1" and "case_seg.txt" in labels.meta["note"]


def test_sidecar_path_follows_the_mask_stem(tmp_path):
    assert sidecar_path(tmp_path / "a.nii.gz").name == "a.txt"
    assert sidecar_path(tmp_path / "a.nrrd", "slicer").name == "a.ctbl"
