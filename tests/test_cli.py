"""The headless command line: JSON from `info`, NIfTI from `convert`, one-line errors, exit 2."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import PHANTOM_AFFINE, phantom_arrays, run_cli


def test_info_volume(phantom_files):
    img, _ = phantom_files
    r = run_cli("info", img)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "volume" and out["shape"] == [64, 56, 40]
    assert out["axcodes"] == "LPS" and out["dtype"] == "int16"
    assert out["spacing"] == [2.0, 2.0, 2.5]
    np.testing.assert_allclose(out["affine"], PHANTOM_AFFINE)
    assert (out["min"], out["max"]) == (-1000, 1500)


def test_info_4d_reports_frames(tmp_path):
    a = np.random.default_rng(0).random((6, 5, 4, 3)).astype(np.float32)
    p = tmp_path / "fmri.nii"
    nib.save(nib.Nifti1Image(a, np.eye(4)), p)
    out = json.loads(run_cli("info", p).stdout)
    assert out["shape"] == [6, 5, 4] and out["frames"] == 3
    assert out["max"] == pytest.approx(float(a[..., 0].max()))


def test_info_nan_inf_volume(tmp_path):
    a = np.ones((4, 4, 4), np.float32)
    a[0, 0, 0], a[1, 1, 1], a[2, 2, 2] = np.nan, np.inf, 5
    p = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(a, np.eye(4)), p)
    r = run_cli("info", p)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["min"], out["max"]) == (1.0, 5.0)


def test_convert_round_trip_and_atomic(phantom_files, tmp_path):
    img, _ = phantom_files
    out = tmp_path / "copy.nii.gz"
    r = run_cli("convert", img, "-o", out)
    assert r.returncode == 0, r.stderr
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, PHANTOM_AFFINE, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(back.dataobj), phantom_arrays()[0])
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left behind


def test_convert_refuses_to_overwrite_input(phantom_files):
    img, _ = phantom_files
    before = img.read_bytes()
    r = run_cli("convert", img, "-o", img)
    assert r.returncode == 2 and "overwrite" in r.stderr
    assert img.read_bytes() == before


def _garbage(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)))
    return p


def _truncated(tmp_path, name):
    a = np.arange(40 * 40 * 40, dtype=np.int16).reshape(40, 40, 40)
    p = tmp_path / name
    nib.save(nib.Nifti1Image(a, np.eye(4)), p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def _huge_header(tmp_path, name):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((30000, 30000, 30000))  # 54 TB of int16
    p = tmp_path / name
    with open(p, "wb") as fh:
        fh.write(hdr.binaryblock + b"\x00" * 4 + b"\x01\x00" * 100)
    return p


@pytest.mark.parametrize("make, reason", [
    (lambda t: t / "missing.nii.gz", "no such file"),
    (lambda t: (t / "empty.nii").write_bytes(b"") and t / "empty.nii" or t / "empty.nii", "empty"),
    (lambda t: _garbage(t, "garbage.nii.gz"), ""),
    (lambda t: _garbage(t, "garbage.nii"), ""),
    (lambda t: _truncated(t, "cut.nii"), ""),
    (lambda t: _truncated(t, "cut.nii.gz"), ""),
    (lambda t: _huge_header(t, "huge.nii"), "claims"),
    (lambda t: (t / "notes.docx").write_bytes(b"PK\x03\x04...") and t / "notes.docx", "unsupported"),
    (lambda t: (t / "emptydir").mkdir() or t / "emptydir", "DICOM"),
])
@pytest.mark.parametrize("command", ["info", "screenshot"])
def test_bad_input_one_line_exit_2(tmp_path, make, reason, command):
    path = make(tmp_path)
    args = ["info", path] if command == "info" else ["screenshot", path, "-o", tmp_path / "o.png"]
    r = run_cli(*args, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), r.stderr
    assert "Traceback" not in r.stderr and reason.lower() in lines[0].lower()
    assert not (tmp_path / "o.png").exists()


def _with_outside(kind: str, outside: list[str]):
    from viewer.model import LabelMap, Mesh, PointCloud, ViewSet, Volume

    meta = {"outside_files": outside} if outside else {}
    if kind == "volume":
        return Volume(np.zeros((2, 2, 2), np.float32), np.eye(4), meta=meta)
    if kind == "labels":
        return LabelMap(np.zeros((2, 2, 2), np.uint8), np.eye(4), meta=meta)
    if kind == "mesh":
        return Mesh(np.eye(3), [[0, 1, 2]], meta=meta)
    if kind == "points":
        return PointCloud(np.eye(3), meta=meta)
    return ViewSet([], meta=meta)


@pytest.mark.parametrize("kind", ["volume", "labels", "mesh", "points", "viewset"])
@pytest.mark.parametrize("outside", [[], ["/etc/passwd", "/data/other/tex.png"]], ids=["none", "two"])
def test_info_lists_files_pulled_in_from_outside(kind, outside):
    from viewer.cli.files import info_dict

    out = info_dict(_with_outside(kind, outside))
    if outside:
        assert out["outside_files"] == outside
    else:
        assert "outside_files" not in out
