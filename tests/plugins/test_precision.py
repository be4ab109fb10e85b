"""Mixed precision decided from the hardware (viewer.plugins.precision), and the methods that use it:
weights stay float32, checkpoints load and draw what they scored, in both precisions.

``LUCID3D_CPU_BF16=1`` forces bfloat16 on any CPU (emulated, slower, the same numbers as on AMX),
so these run the reduced-precision path whatever machine the suite is on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugins.unet3d import PLUGIN as UNET
from tests.plugins import two_threads  # noqa: F401  (autouse: two torch threads)
from tests.plugins.test_unet3d import phantom_cases, tiny_config
from viewer.analysis.metrics import dice_per_label
from viewer.jobs.progress import Progress
from viewer.plugins.precision import autocast, autocast_dtype, cpu_has_native_bf16, grad_scaler, precision_name


@pytest.mark.parametrize("device, amp, forced, want", [
    ("cuda", True, "", torch.float16),
    ("cuda:1", True, "0", torch.float16),     # the CPU switch says nothing about a GPU
    ("cuda", False, "", None),
    ("cpu", True, "1", torch.bfloat16),
    ("cpu", True, "0", None),
    ("cpu", False, "1", None),                # amp off: float32 whatever the CPU
], ids=["cuda", "cuda-cpu-switch", "cuda-off", "cpu-forced", "cpu-refused", "cpu-off"])
def test_autocast_dtype(monkeypatch, device, amp, forced, want):
    monkeypatch.setenv("LUCID3D_CPU_BF16", forced)
    assert autocast_dtype(device, amp) == want
    assert precision_name(device, amp) == str(want or torch.float32).removeprefix("torch.")
    if not device.startswith("cuda"):  # a scaler only for float16 (a CUDA one needs a GPU to build)
        assert not grad_scaler(device, amp).is_enabled()


def test_cpu_detection_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("LUCID3D_CPU_BF16", raising=False)
    assert cpu_has_native_bf16() == bool(torch.cpu._is_amx_tile_supported())
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # no oneDNN: bf16 would not be native
    assert not cpu_has_native_bf16()
    monkeypatch.undo()
    monkeypatch.setenv("LUCID3D_CPU_BF16", "1")
    with autocast("cpu"):
        out = torch.nn.Conv3d(1, 2, 3)(torch.randn(1, 1, 5, 5, 5))
    assert out.dtype == torch.bfloat16
    monkeypatch.setenv("LUCID3D_CPU_BF16", "0")
    with autocast("cpu"):
        out = torch.nn.Conv3d(1, 2, 3)(torch.randn(1, 1, 5, 5, 5))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("forced", ["1", "0"], ids=["bf16", "fp32"])
def test_unet_trains_and_segments_in_either_precision(monkeypatch, tmp_path, forced):
    """Weights and checkpoints stay float32; the loaded checkpoint segments exactly as the trained
    model does; both precisions learn the phantom's organs in the same steps."""
    monkeypatch.setenv("LUCID3D_CPU_BF16", forced)
    train, test = phantom_cases([0, 1])
    cfg = tiny_config(max_epochs=30, val_fraction=0.0, base_channels=8, levels=3)
    model = UNET.train([train], cfg, Progress(), checkpoint_dir=str(tmp_path))
    assert model.metrics["precision"] == {"1": "bfloat16", "0": "float32"}[forced]
    assert all(p.dtype == torch.float32 for p in model.net.parameters())
    seg, _ = UNET.predict(model, test.image, Progress())
    again, _ = UNET.predict(UNET.load(tmp_path), test.image, Progress())
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(seg.array))
    dice = dice_per_label(np.asarray(seg.array), np.asarray(test.labels.array), [1, 2, 3, 4])
    assert np.nanmean(list(dice.values())) > 0.3, dice


def test_dnr_fits_in_bfloat16_and_draws_as_it_scored(monkeypatch, tmp_path):
    """A DNR fitted with bfloat16 forwards keeps float32 weights and draws what it scored; a
    checkpoint stored before ``amp`` existed draws in float32 (as it was scored then)."""
    from plugins.dnr import PLUGIN as DNR
    from tests.plugins.test_texture_dnr import capture_scene
    from viewer.analysis.images import psnr
    from viewer.io import load_path
    from viewer.io.photosets import load_viewset

    monkeypatch.setenv("LUCID3D_CPU_BF16", "1")
    scene = capture_scene(tmp_path / "globe", views=12, size=48)
    views, mesh = load_viewset(scene), load_path(scene / "mesh.obj")
    cfg = DNR.Config(iters=60, minutes=0, val_every=100, seed=0, texture_size=64)
    model = DNR.fit(views, mesh, cfg, Progress(), checkpoint_dir=tmp_path / "ck")
    assert model.config["amp"] is True and model.metrics["precision"] == "bfloat16"
    assert all(p.dtype == torch.float32 for p in model.net.parameters())
    loaded = DNR.load(tmp_path / "ck")
    test = views.split("test")
    img = DNR.render(loaded, test[0].camera)
    assert img.dtype == np.float32 and np.isfinite(img).all()
    scores = [psnr(DNR.render(loaded, f.camera), f.rgb(views.background)) for f in test]
    assert np.mean(scores) == pytest.approx(model.metrics["heldout_psnr"], abs=0.05)
    # the same weights drawn in float32 differ, by little: what "as it was scored" guards
    old = dict(loaded.config)
    del old["amp"]
    loaded.config = old
    fp32 = DNR.render(loaded, test[0].camera)
    monkeypatch.setenv("LUCID3D_CPU_BF16", "0")
    np.testing.assert_array_equal(fp32, DNR.render(loaded, test[0].camera))
    assert 0 < np.abs(fp32 - img).max() < 0.1
