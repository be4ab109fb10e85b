"""NPBG++ (plugins/npbgpp) on the tiny globe capture of test_npbg.

* Visibility: a point behind another one in the same pixel, or outside the view, takes nothing
  from that view; aggregation gives zeros to points no view sees.
* ``main.py pretrain npbgpp`` writes float16 weights that load; ``fit npbgpp --minutes 0`` with
  them (and with the shipped model) writes a checkpoint without any optimisation step, that
  renders identical pixels after loading, and ``evaluate`` scores it; ``--minutes M`` fine-tunes.
* Bad input: a scene without points.ply, --pretrained that is not a pretrained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from plugins.npbgpp import PLUGIN as NPBGPP
from plugins.npbgpp.network import LearnedSH, ViewEncoder, aggregate, observe
from plugins.npbgpp.pretrain import load_pretrained, shipped_pretrained
from plugins._points.splat import PointSet
from tests.plugins import two_threads  # noqa: F401  (autouse: two torch threads)
from tests.plugins.test_npbg import data, scene  # noqa: F401  (fixtures: the globe capture)
from viewer.cli import main as cli_main
from viewer.jobs.progress import Progress
from viewer.model.camera import Camera, look_at


def _cam() -> Camera:
    return Camera(20, 20, 8, 8, 16, 16, look_at(np.array([0.0, -5.0, 0.0]), np.zeros(3)))


def test_visibility_hides_points_behind_others_and_outside_the_view():
    # 0: in front on the axis, 1: right behind it (hidden), 2: beside 0 at the same depth,
    # 3: far outside the view
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.5, 0.0, 0.0], [50.0, 0.0, 0.0]])
    obs = observe(PointSet.from_numpy(pts), _cam(), np.zeros((16, 16, 3), np.float32))
    assert sorted(obs.ids.tolist()) == [0, 2]
    torch.manual_seed(0)
    desc = aggregate(ViewEncoder(4, 4), LearnedSH(), [obs], 4, 4)
    assert desc.shape == (4, 36)
    assert desc[[1, 3]].abs().max() == 0 and desc[[0, 2]].abs().max() > 0


@pytest.fixture(scope="module")
def pretrained(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "npbgpp"
    assert cli_main(["pretrain", "npbgpp", "--scenes", str(scene), "--out", str(out), "--iters", "3",
                     "--minutes", "0", "--size", "32", "--quiet"]) == 0
    return out


def test_pretrain_writes_float16_weights_that_load(pretrained):
    from safetensors import safe_open

    cfg = json.loads((pretrained / "config.json").read_text())
    assert cfg["format"] == "lucid3d-npbgpp-pretrained" and cfg["metrics"]["steps"] == 3
    with safe_open(str(pretrained / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    net, arch = load_pretrained(pretrained)
    assert arch["channels"] == 8 and next(net.parameters()).dtype == torch.float32


def test_pretrain_resumes_from_earlier_weights_and_adds_up_the_metrics(pretrained, scene, tmp_path, capsys):
    """``--resume`` starts from the earlier weights (one step moves them only a little, where
    new weights differ wholly), keeps their architecture, and the totals count both runs; the
    earlier folder is untouched. A folder that is not pretrained weights: one line, exit 2."""
    before = {p.name: p.read_bytes() for p in pretrained.iterdir()}
    out = tmp_path / "more"
    assert cli_main(["pretrain", "npbgpp", "--scenes", str(scene), "--out", str(out), "--iters", "1",
                     "--minutes", "0", "--size", "32", "--seed", "7", "--resume", str(pretrained), "--quiet"]) == 0
    capsys.readouterr()
    assert {p.name: p.read_bytes() for p in pretrained.iterdir()} == before
    m = json.loads((out / "config.json").read_text())["metrics"]
    assert m["steps"] == 1 and m["steps_total"] == 4 and m["resumed_from"][0]["steps"] == 3
    from plugins.npbgpp.pretrain import build_pretrained

    a, arch = load_pretrained(pretrained)
    b, _ = load_pretrained(out)

    def gap(x, y):
        return max(float((p - q).abs().max()) for p, q in zip(x.state_dict().values(), y.state_dict().values())
                   if p.numel())

    assert 0 < gap(a, b) < 0.05 < gap(a, build_pretrained(arch))
    rc = cli_main(["pretrain", "npbgpp", "--scenes", str(scene), "--out", str(tmp_path / "bad"), "--iters", "1",
                   "--minutes", "0", "--size", "32", "--resume", str(scene), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not NPBG++ pretrained weights" in err[0]
    assert not any((tmp_path / "bad").glob("*")) if (tmp_path / "bad").exists() else True


@pytest.fixture(scope="module")
def pretrained_nearest(scene, tmp_path_factory) -> Path:
    """Weights pretrained drawing the nearest point per pixel (``splat_average`` off)."""
    out = tmp_path_factory.mktemp("pre-nearest") / "npbgpp"
    assert cli_main(["pretrain", "npbgpp", "--scenes", str(scene), "--out", str(out), "--iters", "2",
                     "--minutes", "0", "--size", "32", "--quiet", "--set", "splat_average=false"]) == 0
    return out


def test_the_splat_is_part_of_the_pretrained_architecture(pretrained, pretrained_nearest, tmp_path):
    """The weights say how their renderer draws (the mean of each pixel's front points or the
    nearest point) and a fit with them draws so; weights stored before the setting existed
    load as the nearest point."""
    from plugins.npbgpp.pretrain import average_of

    assert average_of(load_pretrained(pretrained)[1]) == NPBGPP.Config().splat_depth
    assert load_pretrained(pretrained)[0].renderer.average == NPBGPP.Config().splat_depth
    net, arch = load_pretrained(pretrained_nearest)
    assert arch["splat_average"] is False and net.renderer.average is None
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    cfg = json.loads((pretrained_nearest / "config.json").read_text())
    for k in ("splat_average", "splat_depth"):
        del cfg["config"][k]
    (legacy / "config.json").write_text(json.dumps(cfg))
    (legacy / "model.safetensors").write_bytes((pretrained_nearest / "model.safetensors").read_bytes())
    net, arch = load_pretrained(legacy)
    assert arch["splat_average"] is False and net.renderer.average is None


@pytest.mark.parametrize("which", ["pretrain-cli", "pretrain-nearest", "shipped"])
def test_fit_with_no_fitting_renders_and_round_trips(which, pretrained, pretrained_nearest, scene, data, tmp_path,
                                                      capsys):
    if which == "shipped" and not (shipped_pretrained() / "config.json").is_file():
        pytest.skip("no shipped model in resources/npbgpp")
    out = tmp_path / "ck"
    args = ["fit", "npbgpp", "--scene", str(scene), "--points", str(scene / "points.ply"), "--out", str(out),
            "--minutes", "0", "--size", "48", "--quiet"]
    if which.startswith("pretrain"):
        args += ["--pretrained", str(pretrained if which == "pretrain-cli" else pretrained_nearest)]
    assert cli_main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 0 and np.isfinite(summary["heldout_psnr"])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "points.npz"]
    back = NPBGPP.load(out)
    want = None if which == "pretrain-nearest" else NPBGPP.Config().splat_depth
    if which != "shipped":  # the checkpoint draws as its pretrained weights do
        assert back.net.average == want and back.config["splat_average"] == (want is not None)
    cam = data[0].split("test")[0].camera
    a = NPBGPP.render(back, cam)
    assert a.shape == (cam.height, cam.width, 3) and np.isfinite(a).all()
    assert np.array_equal(a, NPBGPP.render(NPBGPP.load(out), cam))
    assert cli_main(["evaluate", "--checkpoint", str(out), "--scene", str(scene)]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["psnr"])
    if which == "shipped":  # the shipped model has never seen the globe; it still draws it
        assert summary["heldout_psnr"] > 12.0


def test_fine_tuning_runs_the_shared_loop(pretrained, data, tmp_path):
    views, cloud, _ = data
    cfg = NPBGPP.Config(minutes=5, iters=6, pretrained=str(pretrained), size=32, crop=32, val_every=3)
    model = NPBGPP.fit(views, cloud, cfg, Progress(), checkpoint_dir=tmp_path / "ck")
    assert model.metrics["steps"] == 6 and np.isfinite(model.metrics["heldout_psnr"])


def test_bad_pretraining_inputs_say_one_line(scene, tmp_path, capsys):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(scene, bare)
    (bare / "points.ply").unlink()
    rc = cli_main(["pretrain", "npbgpp", "--scenes", str(bare), "--out", str(tmp_path / "o"), "--iters", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no such point cloud" in err[0]
    assert not (tmp_path / "o").exists()
    rc = cli_main(["fit", "npbgpp", "--scene", str(scene), "--points", str(scene / "points.ply"),
                   "--out", str(tmp_path / "o"), "--pretrained", str(scene), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not NPBG++ pretrained weights" in err[0]
    assert not any((tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else True
