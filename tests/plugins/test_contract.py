"""The built-in methods as the contract (``viewer.plugins``) describes them, and the shared parts
they are built on (``viewer.plugins.checkpoint``, ``viewer.plugins.training``).

* Discovery is light: listing the plugins in a fresh process finds unet3d, texture and dnr as
  available and imports neither torch nor MONAI.
* Each plugin subclasses its base and its methods take exactly the Protocol's parameters.
* ``owns_checkpoint`` accepts the plugin's own checkpoint folder and nothing else (table-driven:
  another method's, another format, a stray file, a user's folder).
* Checkpoints keep their stored keys (old checkpoints load); the shared helper refuses altered,
  irregular and oversized weights, and hashes folders file by file.
* Training previews are typed: a segmenter's SlicePreview holds label values, as a radiologist
  reads the slice (the liver on the image's left, the spine at the bottom); a renderer's
  ImagePreview holds the held-out render beside its photo, both uint8.
* A renderer fit reuses the parametrized mesh an earlier fit into the same folder stored from the
  same mesh file, and only then.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, headless_env
from tests.plugins import one_thread  # noqa: F401  (autouse: one torch thread)
from viewer.jobs.progress import ImagePreview, Progress, SlicePreview
from viewer.model.errors import LoadError
from viewer.plugins import (RendererBase, RendererPlugin, SegmenterBase, SegmenterPlugin, TrainedModel,
                            get_plugin)
from viewer.plugins.checkpoint import load_weights, sha256_file, write_checkpoint

SEG_KEYS = ["format", "version", "plugin", "config", "labels", "normalisation", "spacing", "patch", "in_channels",
            "n_classes", "metrics", "training_data", "weights_sha256"]
NR_KEYS = ["format", "version", "plugin", "config", "background", "train_size", "mesh", "orbit", "scene", "metrics",
           "weights_sha256"]


def test_discovery_is_light():
    code = ("import sys, json; from viewer.plugins import discover; p = discover(); "
            "print(json.dumps([sorted(p), 'torch' in sys.modules, 'monai' in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=headless_env(),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    names, torch_loaded, monai_loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"unet3d", "texture", "dnr"} <= set(names)
    assert not torch_loaded and not monai_loaded


def _parameters(fn) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name, protocol, base, methods", [
    ("unet3d", SegmenterPlugin, SegmenterBase, ("train", "predict", "check_volume", "save", "load", "owns_checkpoint")),
    ("texture", RendererPlugin, RendererBase, ("fit", "render", "save", "load", "owns_checkpoint")),
    ("dnr", RendererPlugin, RendererBase, ("fit", "render", "save", "load", "owns_checkpoint")),
])
def test_plugins_match_the_protocols(name, protocol, base, methods):
    plugin = get_plugin(name)
    assert isinstance(plugin, base) and isinstance(plugin, protocol)
    for m in methods:
        assert _parameters(getattr(plugin, m)) == _parameters(getattr(protocol, m)), m


# checkpoints ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A tiny checkpoint of each kind, written by the plugins' own save."""
    from plugins._nr.model import NRModel
    from plugins._seg.checkpoint import SegModel
    from plugins.texture import PLUGIN as TEXTURE, Config as TextureConfig
    from plugins.unet3d import PLUGIN as UNET, Config as UNetConfig, build_network
    from viewer.model import Mesh

    d = tmp_path_factory.mktemp("contract")
    torch.manual_seed(0)
    ucfg = UNetConfig(patch_size=16, base_channels=4, levels=2, res_units=1)
    seg = SegModel(net=build_network(1, 2, ucfg), plugin="unet3d", config=asdict(ucfg),
                   labels=[{"value": 7, "name": "a", "color": [1.0, 0.0, 0.0]}],
                   normalisation={"mode": "ct", "clip_low": -100.0, "clip_high": 100.0, "mean": 0.0, "std": 50.0},
                   spacing=(2.0, 2.0, 2.0), patch=(16, 16, 16))
    UNET.save(seg, d / "seg")
    pts = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    uv = np.array([[0.9, 0.5], [0.1, 0.5], [0.5, 0.9], [0.5, 0.1], [0.5, 0.5], [0.95, 0.95]])
    tcfg = asdict(TextureConfig(texture_size=64, levels=2))
    net = TEXTURE.build(tcfg, {"mean_rgb": torch.tensor([0.5, 0.5, 0.5])})
    TEXTURE.save(NRModel(net=net, plugin="texture", config=tcfg, mesh=Mesh(pts, faces, uv=uv), train_size=(32, 32)),
                 d / "tex")
    return {"seg": d / "seg", "tex": d / "tex"}


def _variant(src: Path, dest: Path, how: str) -> Path:
    import shutil

    if how == "empty":
        dest.mkdir()
        return dest
    shutil.copytree(src, dest)
    cfg = json.loads((dest / "config.json").read_text())
    if how == "stray-file":
        (dest / "notes.txt").write_text("the user's")
    elif how == "other-format":
        cfg["format"] = "someone-elses"
    elif how == "other-plugin":
        cfg["plugin"] = "dnr" if cfg["plugin"] == "texture" else "other"
    elif how == "no-config":
        (dest / "config.json").unlink()
        return dest
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


@pytest.mark.parametrize("plugin, source, how, owns", [
    ("unet3d", "seg", "as-written", True), ("unet3d", "seg", "stray-file", False),
    ("unet3d", "seg", "other-format", False), ("unet3d", "seg", "other-plugin", False),
    ("unet3d", "seg", "no-config", False), ("unet3d", "tex", "as-written", False), ("unet3d", "seg", "empty", False),
    ("texture", "tex", "as-written", True), ("texture", "tex", "stray-file", False),
    ("texture", "tex", "other-format", False), ("dnr", "tex", "as-written", False),
    ("dnr", "tex", "other-plugin", True), ("texture", "seg", "as-written", False),
], ids=lambda v: v if isinstance(v, str) else "")
def test_owns_checkpoint(plugin, source, how, owns, checkpoints, tmp_path):
    folder = checkpoints[source] if how == "as-written" else _variant(checkpoints[source], tmp_path / "ck", how)
    assert get_plugin(plugin).owns_checkpoint(folder) is owns


@pytest.mark.parametrize("source, plugin, keys", [("seg", "unet3d", SEG_KEYS), ("tex", "texture", NR_KEYS)])
def test_stored_keys_are_the_formats_and_load_back(source, plugin, keys, checkpoints):
    folder = checkpoints[source]
    cfg = json.loads((folder / "config.json").read_text())
    assert list(cfg) == keys  # file formats are interfaces: the same keys, in the same order
    assert cfg["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    model = get_plugin(plugin).load(folder)
    assert isinstance(model, TrainedModel) and model.plugin == plugin and model.config == cfg["config"]


def _tiny_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def _wider_net():  # the same tensor names, other shapes
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))


@pytest.mark.parametrize("damage, says", [
    ("none", None), ("hash", "truncated or does not belong"), ("fifo", "not a regular file"),
    ("missing", "missing"), ("other-network", "do not fit the network"), ("oversized", "not a checkpoint's"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_shared_weights_reader_refuses_damage(damage, says, tmp_path, monkeypatch):
    torch.manual_seed(1)
    net = _tiny_net()
    folder = write_checkpoint(tmp_path / "ck", net, {"plugin": "x"}, metadata={"format": "test"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((folder / "config.json").read_text())
    assert list(cfg) == ["plugin", "weights_sha256"]
    build = _tiny_net
    weights = folder / "model.safetensors"
    if damage == "hash":
        cfg["weights_sha256"] = "0" * 64
    elif damage == "fifo":
        weights.unlink()
        os.mkfifo(weights)
    elif damage == "missing":
        weights.unlink()
    elif damage == "other-network":
        build = _wider_net
    elif damage == "oversized":  # a sparse file just over a lowered bound: refused before it is hashed
        import viewer.plugins.checkpoint as ck

        monkeypatch.setattr(ck, "MAX_WEIGHTS_BYTES", 1 << 20)
        with open(weights, "r+b") as fh:
            fh.truncate((1 << 20) + 1)
    if says is None:
        loaded = load_weights(folder, cfg, build)
        for k, v in net.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
        return
    with pytest.raises(LoadError, match=says) as err:
        load_weights(folder, cfg, build)
    assert str(folder) in str(err.value)


def test_folders_are_hashed_file_by_file(tmp_path):
    (tmp_path / "series" / "b").mkdir(parents=True)
    (tmp_path / "series" / "a.dcm").write_bytes(b"first")
    (tmp_path / "series" / "b" / "c.dcm").write_bytes(b"second")
    assert sha256_file(tmp_path / "series") == hashlib.sha256(b"firstsecond").hexdigest()
    assert sha256_file(tmp_path / "series" / "a.dcm") == hashlib.sha256(b"first").hexdigest()


# typed previews -----------------------------------------------------------------------------------
def test_segmenter_preview_is_a_radiologists_slice_of_label_values():
    from tests.plugins.test_unet3d import SHAPE, SPACING, phantom_cases, tiny_config
    from viewer.samples.demo import ct_phantom

    previews = []
    plugin = get_plugin("unet3d")
    cases = phantom_cases([0, 1])
    model = plugin.train(cases, tiny_config(max_epochs=1), Progress(on_preview=previews.append))
    assert previews and all(isinstance(p, SlicePreview) for p in previews)
    p = previews[0]
    held = model.metrics["validation_cases"][0]
    assert p.case == held
    _, labels = ct_phantom(SHAPE, SPACING, seed=int(held.removeprefix("phantom")))
    table = {lab.value: lab.color for lab in labels.table}
    assert p.colors == {v: tuple(c) for v, c in table.items()}
    assert p.prediction.shape == p.reference.shape and p.prediction.dtype.kind == "u"
    assert set(np.unique(p.prediction)) <= {0, *table} and set(np.unique(p.reference)) <= {0, *table}
    # the reference is the axial slice with the most labelled voxels of the held-out case, as values
    arr = np.asarray(labels.array)
    assert np.count_nonzero(p.reference) == np.count_nonzero(arr, axis=(0, 1)).max()
    assert p.pixel_mm == (4.0, 4.0) and p.reference.shape == (SHAPE[1], SHAPE[0])
    # as a radiologist reads it: the patient's right (the liver, 1) on the image's left, the spine
    # (bone, 4: posterior) at the bottom
    rows, cols = np.nonzero(p.reference == 1)
    assert cols.mean() < p.reference.shape[1] / 2
    rows, cols = np.nonzero(p.reference == 4)
    assert rows.mean() > p.reference.shape[0] / 2


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory) -> Path:
    from tests.plugins.test_texture_dnr import capture_scene

    return capture_scene(tmp_path_factory.mktemp("contract_nr") / "globe", views=8, size=32)


def test_renderer_preview_is_the_render_beside_its_photo(small_scene):
    from viewer.io import load_path
    from viewer.io.photosets import load_viewset

    views, mesh = load_viewset(small_scene), load_path(small_scene / "mesh.obj")
    previews = []
    plugin = get_plugin("texture")
    plugin.fit(views, mesh, plugin.Config(iters=4, minutes=0, val_every=2), Progress(on_preview=previews.append))
    assert len(previews) >= 2 and all(isinstance(p, ImagePreview) for p in previews)
    p = previews[-1]
    assert p.view in {f.name for f in views.split("test")}
    assert p.image.dtype == np.uint8 and p.image.shape == (32, 32, 3)
    assert p.target is not None and p.target.dtype == np.uint8 and p.target.shape == p.image.shape
    photo = next(f for f in views.split("test") if f.name == p.view).rgb(views.background)
    assert np.abs(p.target.astype(float) - photo * 255).max() <= 1.0


def test_a_refit_reuses_the_parametrized_mesh_of_the_same_file(small_scene, tmp_path, monkeypatch):
    import viewer.geometry.uvatlas
    from viewer.io import load_path
    from viewer.io.photosets import load_viewset
    from viewer.model import Mesh

    views, m = load_viewset(small_scene), load_path(small_scene / "mesh.obj")
    bare = Mesh(m.points, m.faces)
    plugin = get_plugin("texture")
    cfg = plugin.Config(iters=2, minutes=0, val_every=2)
    sources = {"mesh": "/data/bare.ply", "mesh_sha256": "a" * 64, "scene": str(small_scene)}
    first = plugin.fit(views, bare, cfg, Progress(), checkpoint_dir=tmp_path / "ck", sources=sources)
    stored = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert stored["mesh"]["source"] == "/data/bare.ply" and stored["mesh"]["source_sha256"] == "a" * 64
    assert stored["scene"] == str(small_scene)

    def refuse(mesh, *a, **k):
        raise AssertionError("parametrized again")

    monkeypatch.setattr(viewer.geometry.uvatlas, "parametrize", refuse)
    again = plugin.fit(views, bare, cfg, Progress(), checkpoint_dir=tmp_path / "ck", sources=sources)
    np.testing.assert_allclose(again.mesh.uv, first.mesh.uv, atol=1e-6)
    with pytest.raises(AssertionError, match="parametrized again"):  # another mesh file: no reuse
        plugin.fit(views, bare, cfg, Progress(), checkpoint_dir=tmp_path / "ck", sources={**sources, "mesh_sha256": "b" * 64})
