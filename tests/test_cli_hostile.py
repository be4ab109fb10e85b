"""The command line against hostile input: options, edited checkpoints, users' folders and files.

Every row runs ``python main.py ...`` in a fresh process under an address-space limit
(RLIMIT_AS) and a wall-clock limit, and asserts: exit status 2, exactly ONE line on stderr,
``error: ...`` naming the user's path or option (the row's fragment), within TIME_S seconds of
CPU time (user + system: wall time on a shared 2-core machine measures the neighbours) and
MAX_RSS of resident memory. Edited checkpoint configs (base channels 500, patch 400^3,
texture 20000, levels 1e5, spacing 0.05, ...) used to allocate 5-9 GB or run for minutes.

The checkpoints are tiny and written by the real ``save_checkpoint`` of each kind; a control
row per kind proves the untouched checkpoint works under the same limits, so each refusal is
caused by the one edit its row makes.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import ROOT, headless_env

LIMIT_AS = 4 << 30  # bytes of address space for the child: torch + MONAI + VTK need about 1.5
MAX_RSS = 1536 << 20  # bytes resident at most
TIME_S = 20.0  # CPU seconds
WALL_S = 120.0  # the child is killed after this


def run_bounded(args: list[str], timeout: float = WALL_S) -> tuple[int, str, str, float, int]:
    """``main.py ARGS`` under RLIMIT_AS; (status, stdout, stderr, CPU seconds, max RSS in bytes)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))

    env = {**headless_env(), "OMP_NUM_THREADS": "1"}
    env.pop("LUCID3D_DEBUG", None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *map(str, args)], stdout=out, stderr=err,
                                env=env, cwd=str(ROOT), preexec_fn=limit)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = usage.ru_utime + usage.ru_stime
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds,
                usage.ru_maxrss * 1024)


# fixtures: a scan, a segmenter checkpoint, a renderer checkpoint ---------------------------------
SPACING = (4.0, 4.0, 6.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import torch

    from plugins._nr.checkpoint import save_checkpoint as save_nr
    from plugins._nr.model import NRModel
    from plugins._seg.checkpoint import SegModel, save_checkpoint as save_seg
    from plugins.texture import PLUGIN as TEXTURE, Config as TextureConfig
    from plugins.unet3d import Config as UNetConfig, build_network
    from viewer.model import Mesh

    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    img = d / "ct.nii.gz"
    nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, (24, 24, 16)).astype(np.int16),
                             np.diag([*SPACING, 1.0])), str(img))
    torch.manual_seed(0)
    ucfg = UNetConfig(patch_size=16, base_channels=4, levels=2, res_units=1)
    seg = SegModel(net=build_network(1, 3, ucfg), plugin="unet3d", config=asdict(ucfg),
                   labels=[{"value": 1, "name": "a", "color": [1.0, 0.0, 0.0]},
                           {"value": 2, "name": "b", "color": [0.0, 1.0, 0.0]}],
                   normalisation={"mode": "ct", "clip_low": -1000.0, "clip_high": 1000.0, "mean": 0.0, "std": 500.0},
                   spacing=SPACING, patch=(16, 16, 16))
    save_seg(seg, d / "seg")
    # an octahedron with uv: enough for the rasterizer to draw an orbit
    pts = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    uv = np.array([[0.9, 0.5], [0.1, 0.5], [0.5, 0.9], [0.5, 0.1], [0.5, 0.5], [0.95, 0.95]])
    tcfg = asdict(TextureConfig(texture_size=64, levels=2))
    net = TEXTURE.build(tcfg, {"mean_rgb": torch.tensor([0.5, 0.5, 0.5])})
    save_nr(NRModel(net=net, plugin="texture", config=tcfg, mesh=Mesh(pts, faces, uv=uv), train_size=(32, 32)),
            d / "tex")
    return {"img": img, "seg": d / "seg", "tex": d / "tex"}


def edited(name: str, edit: Callable[[dict], None]) -> Callable[[dict, Path], dict]:
    """A setup that copies checkpoint ``name`` and applies ``edit`` to its config.json."""
    def setup(fx: dict, tmp: Path) -> dict:
        ck = tmp / f"{name}_edited"
        shutil.copytree(fx[name], ck)
        cfg = json.loads((ck / "config.json").read_text())
        edit(cfg)
        (ck / "config.json").write_text(json.dumps(cfg))
        return {"ck": ck}

    return setup


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        *head, last = path.split(".")
        node = cfg
        for key in head:
            node = node[key]
        node[last] = value

    return edit


def _drop(key: str) -> Callable[[dict], None]:
    return lambda cfg: cfg.pop(key)


def fifo_in(name: str, file: str) -> Callable[[dict, Path], dict]:
    """A setup that copies checkpoint ``name`` with ``file`` replaced by a FIFO (opening it would block)."""
    def setup(fx: dict, tmp: Path) -> dict:
        ck = tmp / f"{name}_fifo"
        shutil.copytree(fx[name], ck)
        (ck / file).unlink()
        os.mkfifo(ck / file)
        return {"ck": ck}

    return setup


def user_folder(fx: dict, tmp: Path) -> dict:
    """A folder a user keeps their own config.json in."""
    (tmp / "mine").mkdir()
    (tmp / "mine" / "config.json").write_text('{"my": "settings"}')
    return {"out": tmp / "mine"}


def ckpt_copy(name: str) -> Callable[[dict, Path], dict]:
    def setup(fx: dict, tmp: Path) -> dict:
        shutil.copytree(fx[name], tmp / "old")
        return {"out": tmp / "old"}

    return setup


def pngs_and(extra: str | None) -> Callable[[dict, Path], dict]:
    def setup(fx: dict, tmp: Path) -> dict:
        (tmp / "renders").mkdir()
        (tmp / "renders" / "orbit_0000.png").write_bytes(b"\x89PNG old")
        if extra:
            (tmp / "renders" / extra).write_text("the user's notes")
        return {"out": tmp / "renders"}

    return setup


def symlink_to_input(fx: dict, tmp: Path) -> dict:
    (tmp / "link.nii.gz").symlink_to(fx["img"])
    return {"out": tmp / "link.nii.gz"}


def relative_input(fx: dict, tmp: Path) -> dict:
    return {"out": os.path.relpath(fx["img"], ROOT)}  # the child runs in ROOT


def dir_named_like_output(fx: dict, tmp: Path) -> dict:
    (tmp / "out.nii.gz").mkdir()  # renaming the temporary file onto it fails with an OSError
    return {"out": tmp / "out.nii.gz"}


SEG = ["segment", "--checkpoint", "{ck}", "--input", "{img}", "--output", "{tmp}/mask.nii.gz"]
ORBIT = ["render", "--checkpoint", "{ck}", "--orbit", "2", "--size", "32", "--out", "{tmp}/orbit"]
TRAIN = ["train-segmenter", "--image", "{img}", "--label", "{img}", "--out", "{tmp}/ck"]
FIT = ["fit", "texture", "--scene", "{tmp}/scene", "--mesh", "{tmp}/mesh.obj", "--out", "{tmp}/ck"]
CAPTURE = ["capture", "{tmp}/mesh.obj", "--out", "{tmp}/cap"]
SHOT = ["screenshot", "{img}", "-o", "{tmp}/shot.png"]
RENDER_TO = ["render", "--checkpoint", "{tex}", "--orbit", "2", "--size", "32", "--out", "{out}"]
SEG_TO = ["segment", "--checkpoint", "{seg}", "--input", "{img}", "--output", "{tmp}/mask.nii.gz"]

# (id, command line, what the one line must contain, setup or None)
CASES = [
    # options: checked by the parser, before any file is opened
    ("train-minutes-negative", TRAIN + ["--minutes", "-1"], "--minutes", None),
    ("train-minutes-nan", TRAIN + ["--minutes", "nan"], "--minutes", None),
    ("train-minutes-inf", TRAIN + ["--minutes", "inf"], "--minutes", None),
    ("train-epochs-0", TRAIN + ["--epochs", "0"], "--epochs", None),
    ("train-patch-0", TRAIN + ["--patch", "0"], "--patch", None),
    ("train-patch-400", TRAIN + ["--patch", "400"], "--patch", None),
    ("train-patch-not-multiple", TRAIN + ["--patch", "60"], "--patch: [60, 60, 60] is not a multiple of", None),
    ("train-val-fraction-5", TRAIN + ["--val-fraction", "5"], "--val-fraction", None),
    ("train-val-fraction-1", TRAIN + ["--val-fraction", "1"], "--val-fraction", None),
    ("train-iters-per-epoch-0", TRAIN + ["--iters-per-epoch", "0"], "--iters-per-epoch", None),
    ("train-seed-negative", TRAIN + ["--seed", "-1"], "--seed", None),
    ("fit-iters-negative", FIT + ["--iters", "-5"], "--iters", None),
    ("fit-minutes-nan", FIT + ["--minutes", "nan"], "--minutes", None),
    ("fit-size-0", FIT + ["--size", "0"], "--size", None),
    ("fit-size-huge", FIT + ["--size", "100000"], "--size", None),
    ("fit-never-stops", FIT + ["--iters", "0", "--minutes", "0"], "--iters: 0 (no step limit)", None),
    ("render-size-0", ORBIT[:5] + ["--size", "0", "--out", "{tmp}/o"], "--size", None),
    ("render-size-huge", ORBIT[:5] + ["--size", "100000", "--out", "{tmp}/o"], "--size", None),
    ("render-orbit-0", ["render", "--checkpoint", "{tmp}", "--orbit", "0", "--out", "{tmp}/o"], "--orbit", None),
    ("render-fps-0", ORBIT + ["--fps", "0"], "--fps", None),
    ("render-fps-nan", ORBIT + ["--fps", "nan"], "--fps", None),
    ("capture-views-0", CAPTURE + ["--views", "0"], "--views", None),
    ("capture-size-huge", CAPTURE + ["--size", "5000"], "--size", None),
    ("capture-test-fraction-1", CAPTURE + ["--test-fraction", "1"], "--test-fraction", None),
    ("capture-seed-negative", CAPTURE + ["--seed", "-1"], "--seed", None),
    ("screenshot-window-0", SHOT + ["--window", "0"], "--window", None),
    ("screenshot-level-inf", SHOT + ["--level", "inf"], "--level", None),
    ("screenshot-cursor-nan", SHOT + ["--cursor", "nan", "0", "0"], "--cursor", None),
    # edited segmenter checkpoints: refused before the network is built
    ("seg-base-channels-500", SEG, "{ck}/config.json: base_channels", edited("seg", _set("config.base_channels", 500))),
    ("seg-base-channels-vs-weights", SEG, "{ck}/config.json: the weights do not fit",
     edited("seg", _set("config.base_channels", 32))),
    ("seg-levels-1e5", SEG, "{ck}/config.json: levels", edited("seg", _set("config.levels", 100000))),
    ("seg-patch-400", SEG, "{ck}/config.json: patch", edited("seg", _set("patch", [400, 400, 400]))),
    ("seg-patch-size-400", SEG, "{ck}/config.json: patch_size", edited("seg", _set("config.patch_size", 400))),
    ("seg-spacing-0.05", SEG, "{ck}/config.json: spacing", edited("seg", _set("spacing", [0.05, 0.05, 0.05]))),
    ("seg-spacing-too-fine-for-scan", SEG, "{ck}/config.json: too fine for this scan: at the model's spacing",
     edited("seg", _set("spacing", [0.2, 0.2, 0.2]))),
    ("seg-sw-batch-huge", SEG, "{ck}/config.json: sw_batch_size", edited("seg", _set("config.sw_batch_size", 10**6))),
    ("seg-unknown-setting", SEG, "{ck}/config.json: config: unknown setting 'colour'",
     edited("seg", _set("config.colour", 1))),
    ("seg-unknown-field", SEG, "{ck}/config.json: extra: unknown field", edited("seg", _set("extra", 1))),
    ("seg-missing-normalisation", SEG, "{ck}/config.json: normalisation: missing",
     edited("seg", _drop("normalisation"))),
    ("seg-missing-weights-hash", SEG, "{ck}/config.json: weights_sha256: missing", edited("seg", _drop("weights_sha256"))),
    ("seg-n-classes-text", SEG, "{ck}/config.json: n_classes", edited("seg", _set("n_classes", "3"))),
    ("seg-levels-float", SEG, "{ck}/config.json: levels: must be a whole number",
     edited("seg", _set("config.levels", 2.5))),
    ("seg-label-value-text", SEG, "{ck}/config.json: labels", edited("seg", _set("labels", [{"value": "x", "name": "a"}]))),
    ("seg-mean-nan", SEG, "{ck}/config.json: normalisation.mean: must be a finite", edited("seg", _set("normalisation.mean", float("nan")))),
    ("seg-in-channels-1000", SEG, "{ck}/config.json: in_channels", edited("seg", _set("in_channels", 1000))),
    ("seg-in-channels-vs-weights", SEG, "{ck}/config.json: the weights do not fit", edited("seg", _set("in_channels", 2))),
    ("seg-weights-hash", SEG, "{ck}/model.safetensors: the weights file is truncated",
     edited("seg", _set("weights_sha256", "0" * 64))),
    ("seg-config-fifo", SEG, "{ck}: not a Lucid3D checkpoint", fifo_in("seg", "config.json")),
    ("seg-weights-fifo", SEG, "{ck}/model.safetensors: not a regular file", fifo_in("seg", "model.safetensors")),
    # edited renderer checkpoints
    ("render-texture-20000", ORBIT, "{ck}/config.json: texture_size", edited("tex", _set("config.texture_size", 20000))),
    ("render-texture-vs-weights", ORBIT, "{ck}/config.json: the weights do not fit",
     edited("tex", _set("config.texture_size", 128))),
    ("render-levels-1e5", ORBIT, "{ck}/config.json: levels", edited("tex", _set("config.levels", 100000))),
    ("render-mesh-file-outside", ORBIT, "{ck}/config.json: mesh.file",
     edited("tex", _set("mesh.file", "../../etc/passwd"))),
    ("render-mesh-count", ORBIT, "{ck}/mesh.npz: unreadable mesh", edited("tex", _set("mesh.n_faces", 9))),
    ("render-orbit-radius-nan", ORBIT, "{ck}/config.json: orbit", edited("tex", _set("orbit", {"radius": float("nan")}))),
    ("render-background", ORBIT, "{ck}/config.json: background", edited("tex", _set("background", [2, 0, 0]))),
    ("render-unknown-plugin", ORBIT, "no renderer named", edited("tex", _set("plugin", "nosuch"))),
    ("render-weights-hash", ORBIT, "{ck}/model.safetensors: the weights file is truncated",
     edited("tex", _set("weights_sha256", "0" * 64))),
    ("render-config-fifo", ORBIT, "{ck}: not a Lucid3D renderer checkpoint", fifo_in("tex", "config.json")),
    ("render-mesh-fifo", ORBIT, "{ck}/mesh.npz: not a regular file", fifo_in("tex", "mesh.npz")),
    # folders: never written over
    ("train-out-user-folder", TRAIN[:-1] + ["{out}"], "{out}: is a folder that holds something other than", user_folder),
    ("train-out-checkpoint-no-overwrite", TRAIN[:-1] + ["{out}"], "{out}: already holds a unet3d checkpoint: add "
     "--overwrite", ckpt_copy("seg")),
    ("fit-out-user-folder", FIT[:-1] + ["{out}"], "{out}: is a folder that holds something other than", user_folder),
    ("fit-out-other-method", ["fit", "dnr"] + FIT[2:-1] + ["{out}"], "{out}: is a folder that holds something other "
     "than", ckpt_copy("tex")),
    ("fit-out-checkpoint-no-overwrite", FIT[:-1] + ["{out}"], "{out}: already holds a texture checkpoint: add "
     "--overwrite", ckpt_copy("tex")),
    ("render-out-user-files", RENDER_TO + ["--overwrite"], "{out}: is a folder that holds something other than",
     pngs_and("notes.txt")),
    ("render-out-pngs-no-overwrite", RENDER_TO, "{out}: already holds a set of rendered PNGs", pngs_and(None)),
    ("capture-out-not-empty", CAPTURE[:-1] + ["{out}"], "{out}: exists and is not empty: refusing to overwrite",
     user_folder),
    # outputs that are inputs; OS errors name the user's file, not a temporary one
    ("segment-output-is-input", SEG_TO[:-1] + ["{img}"], "{img}: is also the --input file", None),
    ("segment-output-is-uncertainty", SEG_TO + ["--uncertainty", "{tmp}/mask.nii.gz"], "{tmp}/mask.nii.gz: is also "
     "the --uncertainty file", None),
    ("segment-output-symlink-to-input", SEG_TO[:-1] + ["{out}"], "{out}: is also the --input file", symlink_to_input),
    ("segment-output-relative-input", SEG_TO[:-1] + ["{out}"], "{out}: is also the --input file", relative_input),
    ("convert-onto-a-folder", ["convert", "{img}", "-o", "{out}"], "{out}: Is a directory", dir_named_like_output),
]


def _contents(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("argv, says, setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_line_exit_2_bounded(argv, says, setup, files, tmp_path):
    names = {"img": files["img"], "tmp": tmp_path, "seg": files["seg"], "tex": files["tex"], "ck": files["tex"]}
    if setup is not None:
        names.update(setup(files, tmp_path))
    before = _contents(tmp_path)
    args = [a.format(**names) for a in argv]
    rc, out, err, seconds, rss = run_bounded(args)
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert says.format(**names) in lines[0], lines[0]
    assert seconds < TIME_S and rss < MAX_RSS, (seconds, rss >> 20)
    assert _contents(tmp_path) == before  # nothing written, nothing overwritten, no temporary files left


@pytest.mark.parametrize("kind", ["segment", "render"])
def test_untouched_checkpoints_work_under_the_same_limits(kind, files, tmp_path):
    """The control of every edited-checkpoint row: the same command on the checkpoint as written."""
    if kind == "segment":
        args = ["segment", "--checkpoint", files["seg"], "--input", files["img"], "--output", tmp_path / "m.nii.gz",
                "--quiet"]
    else:
        args = ["render", "--checkpoint", files["tex"], "--orbit", "2", "--size", "32", "--out", tmp_path / "o"]
    rc, out, err, seconds, rss = run_bounded(args)
    assert rc == 0 and err == "", err
    assert seconds < 3 * TIME_S and rss < MAX_RSS, (seconds, rss >> 20)
    if kind == "segment":
        assert nib.load(str(tmp_path / "m.nii.gz")).shape == (24, 24, 16)
    else:
        assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["orbit_0000.png", "orbit_0001.png"]


def test_render_overwrite_replaces_an_earlier_render(files, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "orbit_0000.png").write_bytes(b"old")
    rc, out, err, _, _ = run_bounded(["render", "--checkpoint", files["tex"], "--orbit", "2", "--size", "32",
                                      "--out", tmp_path / "o", "--overwrite"])
    assert rc == 0, err
    assert (tmp_path / "o" / "orbit_0000.png").read_bytes()[:4] == b"\x89PNG"


def test_a_bug_is_one_line_with_its_traceback_kept(tmp_path, capsys, monkeypatch):
    """A programming error (not bad input) says so on one line and keeps the full traceback."""
    import viewer.cli.stats
    from viewer.cli import main

    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setitem(viewer.cli.stats.HANDLERS, "stats", broken)
    monkeypatch.delenv("LUCID3D_DEBUG", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["stats", "--mask", "x.nii"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "internal error (TypeError: unsupported operand)" in lines[0], lines
    kept = list(tmp_path.glob("lucid3d-traceback-*.txt"))
    assert len(kept) == 1 and str(kept[0]) in lines[0]
    assert "Traceback" in kept[0].read_text() and "broken" in kept[0].read_text()


@pytest.mark.parametrize("temp, user", [
    ("/d/.mask.nii.ab12cd_3.part.nii.gz", "/d/mask.nii.gz"),
    ("/d/.mask.Xy12cd34.part.nii", "/d/mask.nii"),
    ("/d/.config.k2j4h5g6.part.json", "/d/config.json"),
    ("/d/.cap.4242.0badf00d.partial/train/r_000.png", "/d/cap/train/r_000.png"),
    ("./plain.nii", "./plain.nii"),
])
def test_temporary_names_map_back_to_the_users_path(temp, user):
    from viewer.io.guards import user_path

    assert user_path(temp) == user


CHATTY = """
import os, sys, warnings
import viewer.cli.stats
from viewer.cli import main
from viewer.model.errors import LoadError

def chatty(args):
    os.write(2, b"WARNING: In itkImageIO.cxx, line 42: native chatter\\n")  # what C++ libraries do
    warnings.warn("a library's DeprecationWarning", DeprecationWarning)
    warnings.warn("a library's UserWarning")
    import logging
    logging.getLogger("nibabel.global").warning("pixdim[0] (qfac) should be 1 (default) or -1")
    print("progress line", file=sys.stderr)  # Python's own stderr still reaches the terminal
    raise LoadError(args.mask, "the one line")

viewer.cli.stats.HANDLERS["stats"] = chatty
sys.exit(main(["stats", "--mask", "scan.nii"]))
"""


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "LUCID3D_DEBUG"])
def test_library_chatter_stays_off_the_cli(debug):
    """Native stderr (ITK, VTK), Python warnings and library logging do not reach the user;
    LUCID3D_DEBUG=1 lets them through."""
    env = {**headless_env(), **({"LUCID3D_DEBUG": "1"} if debug else {})}
    if not debug:
        env.pop("LUCID3D_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", CHATTY], capture_output=True, text=True, env=env, cwd=str(ROOT),
                       timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == "error: scan.nii: the one line" and "progress line" in lines
    if debug:
        assert any("native chatter" in l for l in lines) and any("UserWarning" in l for l in lines), r.stderr
    else:
        assert lines == ["progress line", "error: scan.nii: the one line"], r.stderr
