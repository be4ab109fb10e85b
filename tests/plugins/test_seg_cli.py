"""``main.py train-segmenter`` and ``main.py segment`` as a user runs them, on real files.

* ``train-segmenter --minutes 0.2`` stops by its time budget and leaves a whole checkpoint.
* ``segment`` writes the mask on the input's grid (same shape, affine equal to 1e-6) for a
  NIfTI input on another voxel order and spacing than training, and for a DICOM folder (the
  affine of ``main.py convert`` of that folder, and of ``viewer.io.load_path``); it prints one
  JSON object whose volumes are voxels x the voxel volume of the affine.
* Every bad input exits 2 with one line ``error: ...`` and writes nothing: no checkpoint files,
  no mask, no ``.part`` temporary files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from plugins._seg.checkpoint import FORMAT
from viewer.plugins.checkpoint import sha256_file
from plugins.unet3d import PLUGIN, Config, build_network
from tests.conftest import run_cli
from tests.plugins import one_thread  # noqa: F401  (autouse: one torch thread)
from viewer.cli import main as cli_main
from viewer.samples.demo import LABEL_NAMES, ct_phantom
from viewer.io import load_path
from viewer.jobs.progress import Progress
from viewer.model import Volume

SHAPE, SPACING = (48, 48, 32), (4.0, 4.0, 6.0)
BUDGET_MIN = 0.2
# plain NIfTI label files carry no names: the labels are called by their values
NAMES = {v: f"label {v}" for v in LABEL_NAMES}


def _save(array, affine, path: Path) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


def reoriented(volume: Volume, perm=(2, 0, 1), flip=(0,)) -> tuple[np.ndarray, np.ndarray]:
    """The same scan stored in another voxel order: axes permuted, some reversed."""
    arr, aff = np.asarray(volume.array), volume.affine.copy()
    for ax in flip:
        arr = np.flip(arr, ax)
        shift = np.eye(4)
        shift[ax, ax], shift[ax, 3] = -1.0, arr.shape[ax] - 1
        aff = aff @ shift
    arr = np.transpose(arr, perm)
    sel = np.eye(4)
    sel[:3, :3] = np.eye(3)[:, list(perm)]
    return np.ascontiguousarray(arr), aff @ sel


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("segdata")
    out = {}
    for s in (0, 1):
        vol, lab = ct_phantom(SHAPE, SPACING, seed=s)
        out[f"img{s}"] = _save(vol.array, vol.affine, d / f"ct{s}.nii.gz")
        out[f"lab{s}"] = _save(lab.array, lab.affine, d / f"ct{s}_seg.nii.gz")
    return out


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[Path, dict]:
    """A checkpoint from ``main.py train-segmenter`` (time budget 12 s)."""
    out = tmp_path_factory.mktemp("ckpt") / "unet"
    r = run_cli("train-segmenter", "--image", data["img0"], "--label", data["lab0"], "--image", data["img1"],
                "--label", data["lab1"], "--out", out, "--minutes", BUDGET_MIN, "--patch", 32,
                "--iters-per-epoch", 4, "--quiet", timeout=240)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    return out, json.loads(lines[0])


def _no_temp_files(*folders: Path) -> None:
    for f in folders:
        left = [p for p in Path(f).rglob("*") if ".part" in p.name]
        assert not left, f"temporary files left behind: {left}"


def test_train_segmenter_stops_by_its_time_budget(trained, data):
    out, summary = trained
    assert summary["stopped_by"] == "time budget"
    assert summary["checkpoint"] == str(out)
    assert summary["steps"] > 0 and np.isfinite(summary["best_val_dice"])
    assert summary["seconds"] < BUDGET_MIN * 60 + 60  # one step and the last validation may overrun
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == FORMAT and cfg["plugin"] == "unet3d"
    assert cfg["metrics"]["stopped_by"] == "time budget"
    assert cfg["weights_sha256"] == sha256_file(out / "model.safetensors")
    assert cfg["config"]["patch_size"] == 32 and cfg["config"]["minutes"] == BUDGET_MIN
    assert {row["value"]: row["name"] for row in cfg["labels"]} == NAMES
    # the training files are named with their hashes
    assert [(Path(d["image"]).name, d["image_sha256"]) for d in cfg["training_data"]] == [
        (data[k].name, sha256_file(data[k])) for k in ("img0", "img1")]
    assert [d["label_sha256"] for d in cfg["training_data"]] == [sha256_file(data[k]) for k in ("lab0", "lab1")]


def _check_summary(stdout: str, mask_path: Path, input_affine: np.ndarray) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    summary = json.loads(lines[0])
    mask = np.asarray(nib.load(str(mask_path)).dataobj)
    voxel_ml = abs(np.linalg.det(input_affine[:3, :3])) / 1000.0
    assert {int(k): v["name"] for k, v in summary.items()} == NAMES
    for value, row in summary.items():
        assert row["voxels"] == int(np.sum(mask == int(value)))
        assert row["volume_ml"] == pytest.approx(row["voxels"] * voxel_ml, rel=1e-9, abs=1e-12)
    assert set(np.unique(mask)) <= {0, *NAMES}
    return summary


def test_segment_nifti_writes_the_mask_on_the_inputs_grid(trained, tmp_path):
    ckpt, _ = trained
    # a held-out phantom on a coarser grid than training, stored in another voxel order
    vol, _ = ct_phantom((40, 40, 24), (4.8, 4.8, 8.0), seed=5)
    arr, aff = reoriented(vol)
    src = _save(arr, aff, tmp_path / "held_out.nii.gz")
    mask, unc = tmp_path / "mask.nii.gz", tmp_path / "unc.nii.gz"
    r = run_cli("segment", "--checkpoint", ckpt, "--input", src, "--output", mask, "--uncertainty", unc, "--quiet")
    assert r.returncode == 0, r.stderr
    src_img, mask_img, unc_img = (nib.load(str(p)) for p in (src, mask, unc))
    for img in (mask_img, unc_img):
        assert img.shape == src_img.shape == arr.shape
        np.testing.assert_allclose(img.affine, src_img.affine, atol=1e-6, rtol=0)
    assert mask_img.get_data_dtype().kind == "u"
    _check_summary(r.stdout, mask, src_img.affine)
    _no_temp_files(tmp_path, ckpt)
    # the label names travel beside the mask (ITK-SNAP format) and come back when it is opened
    from viewer.io import load_path

    summary = json.loads(r.stdout)
    assert (tmp_path / "mask.txt").is_file()
    reopened = load_path(mask, as_labels=True)
    for value, row in summary.items():
        assert reopened.table[int(value)].name == row["name"]
    # the voxel order of the file does not matter: the mask is the one predicted on the
    # original grid, reordered the same way
    model = PLUGIN.load(ckpt)
    labels, _ = PLUGIN.predict(model, vol, Progress(), tta=True)
    want, _ = reoriented(Volume(np.asarray(labels.array), labels.affine))
    got = np.asarray(mask_img.dataobj)
    assert np.count_nonzero(want) > 500
    assert np.mean(got == want) > 0.999  # identical but for float ties; a flipped axis gives far less


def test_segment_dicom_folder(trained, tmp_path):
    from tests.io.test_dicom import write_dicom_series

    ckpt, _ = trained
    vol, _ = ct_phantom(SHAPE, SPACING, seed=3)
    folder = tmp_path / "series"
    write_dicom_series(np.asarray(vol.array), vol.affine, folder, modality="CT")
    mask, converted = tmp_path / "mask.nii.gz", tmp_path / "converted.nii.gz"
    r = run_cli("segment", "--checkpoint", ckpt, "--input", folder, "--output", mask, "--quiet")
    assert r.returncode == 0, r.stderr
    assert cli_main(["convert", str(folder), "-o", str(converted)]) == 0
    conv_img, mask_img = nib.load(str(converted)), nib.load(str(mask))
    loaded = load_path(folder)
    assert mask_img.shape == conv_img.shape == loaded.shape == SHAPE
    np.testing.assert_allclose(mask_img.affine, conv_img.affine, atol=1e-6, rtol=0)
    np.testing.assert_allclose(mask_img.affine, loaded.affine, atol=1e-5, rtol=0)  # float32 in NIfTI
    np.testing.assert_allclose(loaded.affine, vol.affine, atol=1e-4)  # the DICOM geometry is the phantom's
    _check_summary(r.stdout, mask, loaded.affine)
    _no_temp_files(tmp_path)
    assert not any(p.suffix == ".gz" for p in folder.rglob("*")), "nothing written into the input folder"


# ------------------------------------------------------------------------------- failures

def run_main(args, capsys) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_error(rc: int, out: str, err: str, *fragments: str) -> str:
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert "Traceback" not in err and out == ""
    return lines[0]


@pytest.fixture
def bad_inputs(data, tmp_path) -> dict[str, Path]:
    vol, lab = ct_phantom(SHAPE, SPACING, seed=0)
    lab_arr = np.asarray(lab.array)
    d = {}
    d["shape"] = _save(lab_arr[:, :, :-2], lab.affine, tmp_path / "short_seg.nii.gz")
    moved = lab.affine.copy()
    moved[:3, 3] += (5.0, 0.0, 0.0)
    d["affine"] = _save(lab_arr, moved, tmp_path / "moved_seg.nii.gz")
    d["float"] = _save(lab_arr.astype(np.float32) * 0.75, lab.affine, tmp_path / "prob_seg.nii.gz")
    d["empty"] = _save(np.zeros(SHAPE, np.uint8), lab.affine, tmp_path / "empty_seg.nii.gz")
    return d


@pytest.mark.parametrize("case, fragment", [
    ("shape", "short_seg.nii.gz"),
    ("affine", "moved_seg.nii.gz"),
    ("float", "prob_seg.nii.gz"),
    ("empty", "empty"),
    ("count", "pairs"),
    ("model", "no segmenter named 'nosuchnet'"),
    ("cuda", "CUDA"),
    ("set-unknown", "--set nosuch: the unet3d segmenter has no such setting"),
    ("set-type", "--set levels: must be an int, got 'four'"),
    ("set-format", "--set: expected FIELD=VALUE"),
    ("set-range", "--set levels: must be in"),
    ("set-bool", "--set tta: must be true or false"),
])
def test_train_segmenter_refuses_bad_input(case, fragment, data, bad_inputs, tmp_path, capsys):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "ckpt"
    args = ["train-segmenter", "--image", data["img0"], "--out", out, "--minutes", 0.05, "--patch", 32, "--quiet"]
    if case in bad_inputs:
        args += ["--label", bad_inputs[case]]
    else:
        args += ["--label", data["lab0"]]
    if case == "count":
        args += ["--image", data["img1"]]
    if case == "model":
        args += ["--model", "nosuchnet"]
    if case == "cuda":
        args += ["--device", "cuda"]
    if case.startswith("set-"):
        args += ["--set", {"set-unknown": "nosuch=1", "set-type": "levels=four", "set-format": "levels",
                           "set-range": "levels=99", "set-bool": "tta=maybe"}[case]]
    assert_error(*run_main(args, capsys), fragment)
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    _no_temp_files(tmp_path)


def _copy(ckpt: Path, dest: Path) -> Path:
    shutil.copytree(ckpt, dest)
    return dest


def _rehash(ckpt: Path, **changes) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    for k, v in changes.items():
        if isinstance(v, dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    cfg["weights_sha256"] = sha256_file(ckpt / "model.safetensors")
    (ckpt / "config.json").write_text(json.dumps(cfg))


def _two_channel_checkpoint(ckpt: Path, dest: Path) -> Path:
    """Weights of a real 2-input-channel network, config and hash consistent: loads fine."""
    from safetensors.torch import save_file

    bad = _copy(ckpt, dest)
    cfg = json.loads((bad / "config.json").read_text())
    c = Config(**{k: v for k, v in cfg["config"].items() if k in Config.__dataclass_fields__})
    net = build_network(2, int(cfg["n_classes"]), c)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(bad / "model.safetensors"),
              metadata={"format": FORMAT})
    _rehash(bad, in_channels=2)
    return bad


def _bad_checkpoint(kind: str, ckpt: Path, tmp_path: Path) -> Path:
    dest = tmp_path / f"ckpt_{kind}"
    if kind == "random_files":
        dest.mkdir()
        (dest / "weights.bin").write_bytes(np.random.default_rng(0).bytes(1000))
        (dest / "notes.txt").write_text("hello")
    elif kind == "garbage_config":
        _copy(ckpt, dest)
        (dest / "config.json").write_bytes(np.random.default_rng(1).bytes(300))
    elif kind == "other_format":
        _copy(ckpt, dest)
        (dest / "config.json").write_text(json.dumps({"format": "someone-elses-model", "plugin": "unet3d"}))
    elif kind == "other_plugin":
        _copy(ckpt, dest)
        _rehash(dest, plugin="nosuchnet")
    elif kind == "truncated":
        _copy(ckpt, dest)
        w = dest / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif kind == "truncated_rehashed":  # the hash check passes; safetensors must still refuse it
        _copy(ckpt, dest)
        w = dest / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        _rehash(dest)
    elif kind == "other_architecture":  # weights of 4 levels, config says 3
        _copy(ckpt, dest)
        _rehash(dest, config={"levels": 3})
    elif kind == "two_channels":
        _two_channel_checkpoint(ckpt, dest)
    elif kind == "missing":
        pass
    return dest


@pytest.mark.parametrize("kind, fragment", [
    ("random_files", "not a Lucid3D checkpoint"),
    ("garbage_config", "not a Lucid3D checkpoint"),
    ("other_format", "not a Lucid3D segmenter checkpoint"),
    ("other_plugin", "nosuchnet"),
    ("truncated", "truncated"),
    ("truncated_rehashed", "unreadable weights"),
    ("other_architecture", "do not fit"),
    ("two_channels", "2 input channels"),
    ("missing", "ckpt_missing"),
])
def test_segment_refuses_a_bad_checkpoint(kind, fragment, trained, data, tmp_path, capsys):
    ckpt, _ = trained
    bad = _bad_checkpoint(kind, ckpt, tmp_path)
    mask = tmp_path / "mask.nii.gz"
    line = assert_error(*run_main(["segment", "--checkpoint", bad, "--input", data["img1"], "--output", mask,
                                   "--quiet"], capsys), fragment)
    assert "ckpt_" in line  # the message names the checkpoint (or a file in it)
    assert not mask.exists()
    _no_temp_files(tmp_path, ckpt)


def test_two_channel_model_loads_but_refuses_to_predict(trained, tmp_path):
    """The same case end to end in a fresh process, and through the plugin API."""
    ckpt, _ = trained
    bad = _two_channel_checkpoint(ckpt, tmp_path / "two")
    model = PLUGIN.load(bad)
    assert model.in_channels == 2
    vol, _ = ct_phantom(SHAPE, SPACING, seed=1)
    with pytest.raises(ValueError, match="2 input channels"):
        PLUGIN.predict(model, vol, Progress())
    mask = tmp_path / "mask.nii.gz"
    src = _save(vol.array, vol.affine, tmp_path / "scan.nii.gz")
    r = run_cli("segment", "--checkpoint", bad, "--input", src, "--output", mask, "--quiet")
    assert r.returncode == 2 and r.stdout == ""
    lines = [l for l in r.stderr.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "2 input channels" in lines[0], r.stderr
    assert not mask.exists()
    _no_temp_files(tmp_path)


@pytest.mark.parametrize("case, fragment", [
    ("cuda", "CUDA"),
    ("not_nifti", "must end in .nii"),
    ("missing_input", "nothere.nii.gz"),
    ("output_folder_missing", "does not exist"),
])
def test_segment_refuses_bad_arguments(case, fragment, trained, data, tmp_path, capsys):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ckpt, _ = trained
    mask = tmp_path / "mask.nii.gz"
    src = data["img1"]
    extra = []
    if case == "cuda":
        extra = ["--device", "cuda"]
    elif case == "not_nifti":
        mask = tmp_path / "mask.png"
    elif case == "missing_input":
        src = tmp_path / "nothere.nii.gz"
    elif case == "output_folder_missing":
        mask = tmp_path / "no" / "such" / "mask.nii.gz"
    assert_error(*run_main(["segment", "--checkpoint", ckpt, "--input", src, "--output", mask, "--quiet", *extra],
                           capsys), fragment)
    assert not mask.exists()
    _no_temp_files(tmp_path)
