"""``main.py fit``, ``render`` and ``evaluate`` as a user runs them, on a tiny capture.

* ``fit`` writes a whole checkpoint (also when the frames are scaled down with ``--size``, and for
  a mesh without uv, parametrized once and then reused from the checkpoint); Ctrl-C keeps it.
* ``render --scene`` writes one PNG per frame, named by the frame, at the frame's size; ``render
  --orbit`` writes N PNGs or an .mp4 of N frames.
* ``evaluate`` prints the PSNR that numpy recomputes from the written PNGs and the photos
  composited over the background, to 1e-6 dB.
* Every bad input exits 2 with one line ``error: ...`` and writes nothing.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, headless_env
from tests.plugins import two_threads  # noqa: F401  (autouse: two torch threads)
from tests.plugins.test_texture_dnr import capture_scene
from viewer.cli import main as cli_main


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return capture_scene(tmp_path_factory.mktemp("fitcli") / "globe")


@pytest.fixture(scope="module")
def ckpt(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fitck") / "dnr"
    assert cli_main(["fit", "dnr", "--scene", str(scene), "--mesh", str(scene / "mesh.obj"), "--out", str(out),
                     "--iters", "40", "--size", "48", "--quiet"]) == 0
    return out


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _frames(scene: Path, split: str) -> list[dict]:
    return json.loads((scene / f"transforms_{split}.json").read_text())["frames"]


def test_fit_writes_a_checkpoint_at_the_training_size(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["format"] == "lucid3d-renderer" and cfg["plugin"] == "dnr"
    assert cfg["train_size"] == [48, 48] and cfg["config"]["size"] == 48
    assert cfg["metrics"]["steps"] == 40 and cfg["metrics"]["stopped_by"] == "iterations"
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "mesh.npz", "model.safetensors"]


def test_render_writes_frames_by_name_and_size(ckpt, scene, tmp_path, capsys):
    rc, out, err = _run(capsys, "render", "--checkpoint", ckpt, "--scene", scene, "--split", "test",
                        "--out", tmp_path / "r")
    assert rc == 0, err
    names = [Path(f["file_path"]).name + ".png" for f in _frames(scene, "test")]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(names)
    for n in names:
        with Image.open(tmp_path / "r" / n) as im:
            assert im.size == (64, 64) and im.mode == "RGB"


def test_render_orbit_pngs_and_mp4(ckpt, tmp_path, capsys):
    rc, _, err = _run(capsys, "render", "--checkpoint", ckpt, "--orbit", 5, "--size", 40, "--out", tmp_path / "o")
    assert rc == 0, err
    files = sorted((tmp_path / "o").iterdir())
    assert [p.name for p in files] == [f"orbit_{i:04d}.png" for i in range(5)]
    assert all(Image.open(p).size == (40, 40) for p in files)
    rc, _, err = _run(capsys, "render", "--checkpoint", ckpt, "--orbit", 6, "--size", 48, "--out", tmp_path / "o.mp4")
    assert rc == 0, err
    import imageio.v3 as iio

    video = iio.imread(tmp_path / "o.mp4", extension=".mp4")
    assert video.shape == (6, 48, 48, 3)
    assert not list(tmp_path.glob("*.part*"))


def test_evaluate_equals_numpy_on_the_written_pngs(ckpt, scene, tmp_path, capsys):
    rc, _, err = _run(capsys, "render", "--checkpoint", ckpt, "--scene", scene, "--out", tmp_path / "r")
    assert rc == 0, err
    rc, out, err = _run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--split", "test")
    assert rc == 0, err
    result = json.loads(out)
    bg = np.asarray(json.loads((scene / "transforms_test.json").read_text())["background"], np.float64)
    mine = []
    for f, v in zip(_frames(scene, "test"), result["views"]):
        name = Path(f["file_path"]).name + ".png"
        assert v["name"] == name
        rgba = np.asarray(Image.open(scene / "test" / name), np.float64) / 255.0
        gt = rgba[..., :3] * rgba[..., 3:] + bg * (1.0 - rgba[..., 3:])
        pred = np.asarray(Image.open(tmp_path / "r" / name), np.float64) / 255.0
        p = 10.0 * np.log10(1.0 / np.mean((pred - gt) ** 2))
        assert v["psnr"] == pytest.approx(p, abs=1e-6)
        assert 0.0 < v["ssim"] <= 1.0
        mine.append(p)
    assert result["psnr"] == pytest.approx(np.mean(mine), abs=1e-6)
    assert result["ssim"] == pytest.approx(np.mean([v["ssim"] for v in result["views"]]), abs=1e-9)


def test_mesh_without_uv_is_parametrized_once(scene, tmp_path, capsys, monkeypatch):
    from viewer.io import load_path
    from viewer.io.meshes import save_mesh
    from viewer.model import Mesh

    m = load_path(scene / "mesh.obj")
    bare = tmp_path / "bare.ply"
    save_mesh(Mesh(m.points, m.faces), bare)
    args = ["fit", "texture", "--scene", scene, "--mesh", bare, "--out", tmp_path / "ck", "--iters", 5, "--quiet"]
    rc, out, err = _run(capsys, *args)
    assert rc == 0, err
    with np.load(tmp_path / "ck" / "mesh.npz") as z:
        assert z["uv"].shape == (len(z["points"]), 2)

    def refuse(mesh, *a, **k):
        raise AssertionError("parametrized again")

    import viewer.geometry.uvatlas

    monkeypatch.setattr(viewer.geometry.uvatlas, "parametrize", refuse)
    rc, out, err = _run(capsys, *args)  # the folder holds a checkpoint now: refused without --overwrite
    assert rc == 2 and "--overwrite" in err, err
    rc, out, err = _run(capsys, *args, "--overwrite")
    assert rc == 0, err


def test_ctrl_c_keeps_the_best_checkpoint(scene, tmp_path):
    out = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "fit", "texture", "--scene", str(scene),
                             "--mesh", str(scene / "mesh.obj"), "--out", str(out), "--minutes", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=headless_env(), cwd=ROOT)
    t0, seen = time.monotonic(), ""
    while "step" not in seen and time.monotonic() - t0 < 90:
        seen += proc.stderr.read(1) or ""
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-500:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped_by"] == "cancelled"
    from plugins.texture import PLUGIN

    model = PLUGIN.load(out)
    assert model.metrics["stopped_by"] == "cancelled" and np.isfinite(model.metrics["heldout_psnr"])


# -- bad inputs ----------------------------------------------------------------------------------
def _bad_scene(scene: Path, root: Path, how: str) -> Path:
    bad = root / f"scene_{how}"
    shutil.copytree(scene, bad)
    tf = bad / "transforms_train.json"
    doc = json.loads(tf.read_text())
    if how == "missing_image":
        (bad / "train" / "r_001.png").unlink()
    elif how == "size_mismatch":
        Image.open(bad / "train" / "r_002.png").resize((32, 32)).save(bad / "train" / "r_002.png")
    elif how == "nan_pose":
        doc["frames"][0]["transform_matrix"][0][3] = float("nan")
        tf.write_text(json.dumps(doc))
    elif how == "empty_train":
        doc["frames"] = []
        tf.write_text(json.dumps(doc))
    return bad


BAD = [  # (case, what the one line says)
    ("unknown_method", "no renderer named 'nosuch'"), ("missing_scene", "no such file"),
    ("missing_image", "not found"), ("size_mismatch", "is 32x32 but the intrinsics say"),
    ("nan_pose", "NaN"), ("empty_train", "split is empty"), ("bad_mesh", "bad.obj"),
    ("out_is_file", "not a folder"), ("not_a_checkpoint", "not a Lucid3D renderer checkpoint"),
    ("segmenter_checkpoint", "not a Lucid3D renderer checkpoint"), ("empty_split", "the val split is empty"),
    ("scene_and_orbit", "exactly one of"), ("evaluate_file", "checkpoint is a folder"),
    ("no_mesh", "dnr needs --mesh"), ("points_for_a_mesh_method", "give --mesh, not --points"),
]


@pytest.mark.parametrize("case, says", BAD)
def test_bad_inputs_exit_2_and_write_nothing(case, says, scene, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    mesh = scene / "mesh.obj"
    fit = ["fit", "dnr", "--scene", scene, "--mesh", mesh, "--out", out, "--iters", 5]
    if case == "unknown_method":
        fit[1] = "nosuch"
        args = fit
    elif case == "missing_scene":
        args = fit[:3] + [tmp_path / "nowhere"] + fit[4:]
    elif case in ("missing_image", "size_mismatch", "nan_pose", "empty_train"):
        args = fit[:3] + [_bad_scene(scene, tmp_path, case)] + fit[4:]
    elif case == "bad_mesh":
        bad = tmp_path / "bad.obj"
        bad.write_text("v 0 0 0\nf 1 2 3\nnonsense\n")
        args = fit[:5] + [bad] + fit[6:]
    elif case == "out_is_file":
        out.write_text("x")
        args = fit
    elif case == "no_mesh":
        args = fit[:4] + fit[6:]
    elif case == "points_for_a_mesh_method":
        args = fit[:4] + ["--points", mesh] + fit[6:]
    elif case in ("not_a_checkpoint", "segmenter_checkpoint"):
        ck = tmp_path / "ck"
        ck.mkdir()
        if case == "segmenter_checkpoint":
            (ck / "config.json").write_text(json.dumps({"format": "lucid3d-segmenter", "plugin": "unet3d"}))
            (ck / "model.safetensors").write_bytes(b"")
        args = ["render", "--checkpoint", ck, "--scene", scene, "--out", out]
    elif case == "empty_split":
        args = ["render", "--checkpoint", ckpt, "--scene", scene, "--split", "val", "--out", out]
    elif case == "scene_and_orbit":
        args = ["render", "--checkpoint", ckpt, "--scene", scene, "--orbit", 4, "--out", out]
    else:
        args = ["evaluate", "--checkpoint", mesh, "--scene", scene]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, stdout, err = _run(capsys, *args)
    assert rc == 2, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no .part files
    assert not (out.exists() and out.is_dir())


def test_torchrun_two_cpu_processes(scene, tmp_path):
    """Data-parallel fitting (gloo): every rank stops at the same step, rank 0 writes one
    checkpoint, and both ranks end with the same (rank 0's best) weights."""
    env = {**headless_env(), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ck"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "main.py"), "fit", "dnr", "--scene", str(scene), "--mesh", str(scene / "mesh.obj"),
                        "--out", str(out), "--iters", "20", "--quiet"],
                       capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-800:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])  # printed by rank 0 only
    assert summary["steps"] == 20 and summary["ddp"] == {"world_size": 2, "backend": "gloo", "weights_identical": True}
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "mesh.npz", "model.safetensors"]
